"""The start-up sweep of the filesystem backend's temporary directory removes what
processes that died left behind, and never a file of a process that still runs (other
workers, other daemons on the same root, other storages in this process)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet import task
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.python.threadpool import ThreadPool

from s3proxy.model import ObjectAttributes
from s3proxy.storage import fstemp
from s3proxy.storage.filesystem import INTERNAL_DIR, WRITE_BATCH_MIN, FilesystemStorage
from s3proxy.storage.fstemp import TemporaryFiles

# A process that makes temporary files the way a daemon does, says where, and waits.
WRITER = textwrap.dedent(
    """
    import sys
    from s3proxy.storage.fstemp import TemporaryFiles
    temporary = TemporaryFiles(sys.argv[1], sys.argv[2])
    for n in range(3):
        with open(temporary.path(), "wb") as f:
            f.write(b"half an upload")
    print(temporary.owner, flush=True)
    sys.stdin.read()
    """
)


class Writer:
    def __init__(self, root: Path) -> None:
        internal = root / INTERNAL_DIR
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(internal / "tmp"), str(internal / "owners")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.owner = self.process.stdout.readline().strip()
        assert self.owner

    def files(self, root: Path) -> list[str]:
        tmp = root / INTERNAL_DIR / "tmp"
        return sorted(n for n in os.listdir(tmp) if n.startswith(self.owner + "."))

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    pool = ThreadPool(minthreads=0, maxthreads=2, name="sweep")
    pool.start()
    yield pool
    pool.stop()


def the_reactor() -> IReactorThreads:
    from twisted.internet import reactor

    return cast(IReactorThreads, reactor)


def storage(root: Path, pool: ThreadPool) -> FilesystemStorage:
    return FilesystemStorage(str(root), the_reactor(), pool, fsync=False)


def test_dead_processes_leftovers_vanish_live_ones_survive(root: Path, pool: ThreadPool) -> None:
    storage(root, pool)  # makes the layout
    live, dead = Writer(root), Writer(root)
    try:
        live_files = live.files(root)
        assert len(live_files) == 3 and len(dead.files(root)) == 3
        dead.kill()
        tmp = root / INTERNAL_DIR / "tmp"
        (tmp / "crashed-upload.part").write_bytes(b"an older version's leftover")
        restarted = storage(root, pool)
        assert dead.files(root) == []
        assert not (root / INTERNAL_DIR / "owners" / f"{dead.owner}.lock").exists()
        assert live.files(root) == live_files
        assert all((tmp / name).read_bytes() == b"half an upload" for name in live_files)
        assert (root / INTERNAL_DIR / "owners" / f"{live.owner}.lock").exists()
        assert not (tmp / "crashed-upload.part").exists()
        # The restarted storage's own files are named for it, and survive another sweep.
        own = restarted.temporary.path()
        Path(own).write_bytes(b"mine")
        storage(root, pool)
        assert Path(own).read_bytes() == b"mine"
        assert live.files(root) == live_files
    finally:
        live.stop()
        dead.stop()
    # Once the live writer has ended too, its files go at the next start-up.
    storage(root, pool)
    assert live.files(root) == []
    assert sorted(os.listdir(root / INTERNAL_DIR / "tmp")) == [Path(own).name]


def test_a_lock_file_taken_before_its_flock_makes_the_owner_start_again(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweeper may judge a lock file that was just created (not yet locked) dead
    and remove it: the new owner notices and claims another id."""
    real_flock = fcntl.flock
    stolen: list[str] = []

    def flock_after_a_sweeper(fd: int, operation: int) -> None:
        if not stolen:
            path = os.readlink(f"/proc/self/fd/{fd}")
            stolen.append(os.path.basename(path))
            os.unlink(path)
        real_flock(fd, operation)

    monkeypatch.setattr(fstemp.fcntl, "flock", flock_after_a_sweeper)
    owners = root / "owners"
    temporary = TemporaryFiles(str(root / "tmp"), str(owners))
    monkeypatch.undo()
    assert stolen and stolen[0] != f"{temporary.owner}.lock"
    assert os.listdir(owners) == [f"{temporary.owner}.lock"]
    # And the lock is really held: nobody else can take it.
    fd = os.open(owners / f"{temporary.owner}.lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


@pytest_twisted.ensureDeferred
async def test_an_upload_in_progress_survives_another_storage_starting(
    root: Path, pool: ThreadPool
) -> None:
    """Two storages on one root in one process (as two daemons): the second one's
    start-up sweep leaves the first one's half-written upload alone."""
    first = storage(root, pool)
    await first.create_bucket("bkt")
    body = os.urandom(WRITE_BATCH_MIN * 3)
    writer = await first.open_writer("bkt", "key", ObjectAttributes(), None, len(body))
    writer.write(body[: WRITE_BATCH_MIN * 2])
    tmp = root / INTERNAL_DIR / "tmp"

    def sizes() -> list[int]:
        return [p.stat().st_size for p in tmp.iterdir()]

    for _ in range(500):  # the first batch reaches the disk on the pool
        if sizes() == [WRITE_BATCH_MIN * 2]:
            break
        await task.deferLater(cast(IReactorTime, the_reactor()), 0.01, lambda: None)
    assert sizes() == [WRITE_BATCH_MIN * 2]
    storage(root, pool)
    writer.write(body[WRITE_BATCH_MIN * 2 :])
    info = await writer.finish()
    assert info.size == len(body)
    assert (root / "bkt" / "key").read_bytes() == body
    assert list(tmp.iterdir()) == []


def test_an_abort_cut_short_is_finished_at_start_up(root: Path, pool: ThreadPool) -> None:
    """An abort renames the upload away, then removes it; a crash in between leaves
    the renamed directory, which the next start-up removes (uploads stay)."""
    storage(root, pool)
    uploads = root / INTERNAL_DIR / "uploads" / "bkt"
    doomed = uploads / "0123abcd.aborting-5e1f"
    doomed.mkdir(parents=True)
    (doomed / "00001").write_bytes(b"part of an aborted upload")
    kept = uploads / "4567ef01"
    kept.mkdir()
    (kept / "upload.json").write_text("{}")
    storage(root, pool)
    assert sorted(os.listdir(uploads)) == ["4567ef01"]
    assert (kept / "upload.json").read_text() == "{}"
