"""Crash consistency: ``kill -9`` of the daemon (or of one worker of ``--workers 2``) in
the middle of 50 concurrent uploads and of part uploads, and in the middle of a
multipart completion; then a restart on the same data root (or the supervisor's restart
of the worker). Whatever was acknowledged reads back byte for byte, nothing partial is
visible under any key, uploads in progress continue and complete, and the dead
process's temporary files are swept. Both metadata modes, default durability (fsync)."""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration import crashload
from tests.integration.conftest import boto3_client
from tests.integration.crashload import Upload, md5_hex
from tests.integration.daemon import Daemon

KiB, MiB = 1024, 1024 * 1024
MIN_PART = 256 * KiB
PARTS = 32  # of 1 MiB: a completion long enough to be caught in the act
BUCKET = "crash"
MODES = [
    pytest.param(("xattr", 1), id="xattr"),
    pytest.param(("sidecar", 1), id="sidecar"),
    pytest.param(("xattr", 2), id="xattr-workers"),
    pytest.param(("sidecar", 2), id="sidecar-workers"),
]


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@dataclass
class Cluster:
    """A daemon on one data root; ``crash`` kills it (or one worker) and brings the
    service back the way it would come back: a restart, or the supervisor's."""

    root: Path
    workdir: Path
    metadata: str
    workers: int
    daemons: list[Daemon] = field(default_factory=list)

    def start(self) -> Daemon:
        args = ["--fs-metadata", self.metadata, "--min-part-size", str(MIN_PART)]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        daemon = Daemon(backend=f"file:{self.root}", workdir=self.workdir, extra_args=args)
        self.daemons.append(daemon.start())
        if self.workers > 1:
            crashload.wait_until(lambda: len(children(daemon.pid)) == self.workers, 20, 0.05)
        return daemon

    @property
    def daemon(self) -> Daemon:
        return self.daemons[-1]

    def victim(self, busy: str = "") -> int:
        """The process to kill: the daemon, or the worker with the most of our
        temporary files open (``busy``: a path it must have open)."""
        if self.workers == 1:
            return self.daemon.pid
        workers = children(self.daemon.pid)
        if busy:
            holding = [w for w in workers if any(busy in f for f in open_files(w))]
            return holding[0] if holding else 0
        return max(workers, key=lambda w: len(crashload.open_temp_files(w, self.root)))

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def recover(self, killed: int) -> None:
        if self.workers == 1:
            self.daemon.process.wait(timeout=10)  # type: ignore[union-attr]
            self.start()
            return
        supervisor = self.daemon.pid
        crashload.wait_until(
            lambda: (
                len(children(supervisor)) == self.workers and killed not in children(supervisor)
            ),
            20,
            0.05,
        )

    def stop(self) -> None:
        for daemon in self.daemons:
            daemon.stop()

    def temporary_files(self) -> list[str]:
        return os.listdir(self.root / ".s3proxy" / "tmp")


def open_files(pid: int) -> list[str]:
    found = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass
    except FileNotFoundError:
        pass
    return found


@pytest.fixture(params=MODES)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    metadata, workers = request.param
    cluster = Cluster(tmp_path / "data", tmp_path, metadata, workers)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def body(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def test_kill_mid_uploads_and_part_uploads(cluster: Cluster) -> None:
    rng = random.Random(1)
    s3 = boto3_client(cluster.daemon.endpoint)
    s3.create_bucket(Bucket=BUCKET)
    # Objects acknowledged before the load; stalled uploads overwrite them.
    earlier = [Upload(f"old-{i}", body(rng, 300 * KiB + i), status=200) for i in range(6)]
    for upload in earlier:
        s3.put_object(Bucket=BUCKET, Key=upload.key, Body=upload.body)
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="mp")["UploadId"]

    release = threading.Event()
    small = [Upload(f"small-{i}", body(rng, rng.choice([0, 1, 4 * KiB, 300 * KiB]) + i))
             for i in range(38)]  # fmt: skip
    big = [Upload(f"big-{i}", body(rng, 3 * MiB + rng.randrange(MiB))) for i in range(6)]
    stalled = [Upload(f"old-{i}", body(rng, 2 * MiB + i), hold=release) for i in range(6)]
    parts = [
        Upload(
            "mp",
            body(rng, 512 * KiB + n),
            query=f"?partNumber={n}&uploadId={upload_id}",
            hold=release if n > 6 else None,
        )
        for n in range(1, 13)
    ]
    objects = small + big + stalled
    assert len(objects) == 50
    load = small + big + parts
    rng.shuffle(load)
    threads = crashload.start(cluster.daemon.port, BUCKET, [*stalled, *load])

    # Kill while most, not all, of the free-running uploads are acknowledged and every
    # stalled one is mid-body.
    crashload.wait_until(
        lambda: (
            sum(u.done.is_set() for u in load) >= len(load) * 2 // 3
            and all(u.holding for u in stalled + parts[6:])
        )
    )
    victim = cluster.victim()
    assert crashload.open_temp_files(victim, cluster.root), "nothing in flight to cut"
    cluster.kill(victim)
    release.set()
    for thread in threads:
        thread.join(60)
    cluster.recover(victim)
    acknowledged = [u for u in load + stalled if u.acknowledged]
    lost = [u for u in load + stalled if not u.acknowledged]
    assert acknowledged and lost, "the kill came before or after the whole load"
    if cluster.workers > 1:
        # The other worker kept serving, and the restarted worker's start-up sweep left
        # its uploads in progress alone: the stalled ones it had finished fine.
        assert any(u.acknowledged for u in stalled + parts[6:])

    # The dead process's temporary files are gone; nothing else is left over.
    crashload.wait_until(lambda: cluster.temporary_files() == [], 10, 0.05)

    # Every object: an acknowledged one reads back exactly; none is ever partial.
    endpoint = cluster.daemon.endpoint
    s3 = boto3_client(endpoint)
    crashload.check_objects(endpoint, BUCKET, earlier + objects)

    # The upload continues: every acknowledged part is listed whole; a part cut off
    # is absent or whole (its commit may have finished before the kill).
    port = cluster.daemon.port
    listed = crashload.list_parts(port, BUCKET, "mp", upload_id)
    for number, part in enumerate(parts, 1):
        if part.acknowledged:
            assert listed[number] == (len(part.body), md5_hex(part.body)), number
        elif number in listed:
            assert listed[number] == (len(part.body), md5_hex(part.body)), number
    missing = [Upload("mp", p.body, query=p.query) for n, p in enumerate(parts, 1)
               if n not in listed]  # fmt: skip
    for thread in crashload.start(port, BUCKET, missing):
        thread.join(60)
    assert all(u.acknowledged for u in missing)
    etags = {n: md5_hex(p.body) for n, p in enumerate(parts, 1)}
    result = crashload.complete(port, BUCKET, "mp", upload_id, sorted(etags), etags)
    assert crashload.completed(result), result
    whole = b"".join(p.body for p in parts)
    assert s3.get_object(Bucket=BUCKET, Key="mp")["Body"].read() == whole


def test_kill_mid_completion(cluster: Cluster) -> None:
    rng = random.Random(2)
    s3 = boto3_client(cluster.daemon.endpoint)
    s3.create_bucket(Bucket=BUCKET)
    old = body(rng, 100 * KiB)
    s3.put_object(Bucket=BUCKET, Key="big", Body=old)
    uploads = cluster.root / ".s3proxy" / "uploads" / BUCKET
    for _attempt in range(3):
        port = cluster.daemon.port
        upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="big")["UploadId"]
        parts = [Upload("big", body(rng, MiB), query=f"?partNumber={n}&uploadId={upload_id}")
                 for n in range(1, PARTS + 1)]  # fmt: skip
        for thread in crashload.start(port, BUCKET, parts):
            thread.join(60)
        assert all(p.acknowledged for p in parts)
        etags = {n: p.etag for n, p in enumerate(parts, 1)}
        completer, outcome = crashload.complete_in_thread(port, BUCKET, "big", upload_id, etags)
        claim = f"{upload_id}.completing"
        victim = 0
        while completer.is_alive() and not victim:
            if (uploads / claim).exists():
                victim = cluster.victim(busy=claim)
        if not victim:  # done before we saw it: try again with a longer upload
            completer.join()
            assert crashload.completed(outcome[0]), outcome
            assert s3.get_object(Bucket=BUCKET, Key="big")["Body"].read() == b"".join(
                p.body for p in parts
            )
            old = b"".join(p.body for p in parts)
            continue
        cluster.kill(victim)
        completer.join(60)
        break
    else:
        pytest.fail("no completion was caught in progress in three tries")
    cluster.recover(victim)
    port = cluster.daemon.port
    s3 = boto3_client(cluster.daemon.endpoint)
    whole = b"".join(p.body for p in parts)
    assert not crashload.completed(outcome[0])

    # The object is the one before, or the whole assembly (if the kill came after its
    # rename); never a part of it.
    present = crashload.check_objects(
        cluster.daemon.endpoint,
        BUCKET,
        [Upload("big", old, status=200), Upload("big", whole, status=None)],
    )
    crashload.wait_until(lambda: not (uploads / claim).exists(), 10, 0.05)
    listed = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    if not listed:
        # The kill landed after the completion had removed the upload: it is done.
        assert present["big"] == whole
        return
    # The claim was given back: the upload is listed with all its parts, takes
    # another, and completes.
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("big", upload_id)]
    assert crashload.list_parts(port, BUCKET, "big", upload_id) == {
        n: (len(p.body), md5_hex(p.body)) for n, p in enumerate(parts, 1)
    }
    last = Upload("big", body(rng, 10 * KiB), query=f"?partNumber={PARTS + 1}&uploadId={upload_id}")
    crashload.send(port, BUCKET, last)
    assert last.acknowledged
    etags[PARTS + 1] = last.etag
    result = crashload.complete(port, BUCKET, "big", upload_id, sorted(etags), etags)
    assert crashload.completed(result), result
    assert s3.get_object(Bucket=BUCKET, Key="big")["Body"].read() == whole + last.body
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    crashload.wait_until(lambda: cluster.temporary_files() == [], 10, 0.05)


def test_a_second_daemon_on_the_root_leaves_uploads_in_progress_alone(tmp_path: Path) -> None:
    """Starting another daemon on a root sweeps only dead processes' temporary files:
    an upload stalled mid-body in the first daemon survives it and completes."""
    root = tmp_path / "data"
    first = Daemon(backend=f"file:{root}", workdir=tmp_path).start()
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second = Daemon(backend=f"file:{root}", workdir=second_dir)
    try:
        boto3_client(first.endpoint).create_bucket(Bucket=BUCKET)
        release = threading.Event()
        stalled = Upload("stalled", os.urandom(2 * MiB), hold=release)
        (thread,) = crashload.start(first.port, BUCKET, [stalled])
        crashload.wait_until(lambda: stalled.holding)
        crashload.wait_until(lambda: crashload.open_temp_files(first.pid, root) != [])
        temporary = crashload.open_temp_files(first.pid, root)
        second.start()
        assert all(os.path.exists(path) for path in temporary)
        release.set()
        thread.join(60)
        assert stalled.acknowledged
        got = boto3_client(second.endpoint).get_object(Bucket=BUCKET, Key="stalled")
        assert got["Body"].read() == stalled.body
    finally:
        second.stop()
        first.stop()
