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

# A process that makes temporary files the way a daemon does (kept open while it
# writes them), says which, and waits.
WRITER = textwrap.dedent(
    """
    import os, sys
    from s3proxy.storage.fstemp import TemporaryFiles
    temporary = TemporaryFiles(sys.argv[1])
    held = [temporary.create() for n in range(3)]
    for path, f in held:
        f.write(b"half an upload")
        f.flush()
    print(" ".join(os.path.basename(path) for path, f in held), flush=True)
    sys.stdin.read()
    """
)


class Writer:
    def __init__(self, root: Path) -> None:
        self.tmp = root / INTERNAL_DIR / "tmp"
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(self.tmp)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.names = sorted(self.process.stdout.readline().split())
        assert len(self.names) == 3

    def files(self) -> list[str]:
        """Which of its files are still there."""
        return sorted(set(self.names) & set(os.listdir(self.tmp)))

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
        assert live.files() == live.names and dead.files() == dead.names
        dead.kill()
        tmp = root / INTERNAL_DIR / "tmp"
        (tmp / "crashed-upload.part").write_bytes(b"an older version's leftover")
        restarted = storage(root, pool)
        assert dead.files() == []
        assert live.files() == live.names
        assert all((tmp / name).read_bytes() == b"half an upload" for name in live.names)
        assert not (tmp / "crashed-upload.part").exists()
        # A file this process has open survives another storage's sweep too.
        own, file = restarted.temporary.create()
        with file:
            file.write(b"mine")
            file.flush()
            storage(root, pool)
            assert Path(own).read_bytes() == b"mine"
        assert live.files() == live.names
    finally:
        live.stop()
        dead.stop()
    # Once the live writer has ended and ours is closed, they go at the next start-up.
    storage(root, pool)
    assert os.listdir(root / INTERNAL_DIR / "tmp") == []


def test_a_file_swept_before_its_flock_makes_the_writer_start_again(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweeper may take a file that was just created (not yet locked) for a dead
    writer's and remove it: the writer notices and makes another."""
    real_flock = fcntl.flock
    stolen: list[str] = []

    def flock_after_a_sweeper(fd: int, operation: int) -> None:
        if not stolen:
            path = os.readlink(f"/proc/self/fd/{fd}")
            stolen.append(os.path.basename(path))
            os.unlink(path)
        real_flock(fd, operation)

    monkeypatch.setattr(fstemp.fcntl, "flock", flock_after_a_sweeper)
    temporary = TemporaryFiles(str(root / "tmp"))
    path, file = temporary.create()
    monkeypatch.undo()
    with file:
        assert stolen and stolen[0] != os.path.basename(path)
        assert os.listdir(root / "tmp") == [os.path.basename(path)]
        # And the file is really held: no sweep can take it.
        fd = os.open(path, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        assert temporary.sweep() == 0
        assert os.path.exists(path)
    assert temporary.sweep() == 1
    assert os.listdir(root / "tmp") == []


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
