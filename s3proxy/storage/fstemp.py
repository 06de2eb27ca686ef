"""The filesystem backend's temporary files, and the start-up sweep of those a crashed
process left behind.

Several processes may write into one ``<root>/.s3proxy/tmp`` at once (``--workers``,
or several daemons sharing a root), so the sweep must tell a dead writer's file from a
live one's. Every temporary file is held under ``flock`` by its writer from its
creation until it has been renamed into place or removed; the kernel drops the lock
when the writer's process ends, however it ends (kill -9 included). So the sweep
removes exactly the files whose lock it can take: no clock and no pid is trusted (pids
are reused; a slow upload can leave its file untouched for minutes), and no descriptor
stays open while nothing is being written. A file of an older s3proxy (never locked)
is removed, as older versions removed every file at start-up.

Creation races a sweep: a file just created is not locked yet, so a sweeper may take
it and remove it. The writer then finds, once it holds the lock, that the name no
longer leads to its file, and starts again with a new name.

(On NFS, Linux emulates flock with POSIX locks, which are per process: there the rule
holds between processes, not between two storages in one process.)
"""

from __future__ import annotations

import fcntl
import itertools
import os
from collections.abc import Iterable
from typing import Any

from twisted.logger import Logger

# At most this many buffers per writev(2) (Linux's IOV_MAX).
IOV_MAX = 1024


class TempFile:
    """A temporary file open for writing with plain write(2) and writev(2): no buffer,
    and none of the fstat, ioctl and lseek calls that making a Python file object
    costs. On the pool every system call hands the GIL to the reactor and back (see
    s3proxy/affinity.py), so a small PUT is cheaper by each call it does not make."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError("I/O operation on closed file")
        return self._fd

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        size = len(view)
        while view:
            # A short write (a full disk) is followed by one that raises ENOSPC.
            view = view[os.write(self.fileno(), view) :]
        return size

    def writelines(self, chunks: Iterable[bytes]) -> None:
        pending = [memoryview(c) for c in chunks if len(c)]
        first = 0
        while first < len(pending):
            batch = pending[first : first + IOV_MAX]
            written = os.writev(self.fileno(), batch)
            for chunk in batch:
                if written < len(chunk):
                    pending[first] = chunk[written:]
                    break
                written -= len(chunk)
                first += 1

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class TemporaryFiles:
    log = Logger()

    def __init__(self, tmp_dir: str) -> None:
        self.tmp_dir = tmp_dir
        # Names: a random prefix per instance and a counter (no getrandom per file).
        self._prefix = os.urandom(8).hex()
        self._numbers = itertools.count()
        try:
            os.makedirs(tmp_dir, exist_ok=True)
        except OSError as e:
            # A read-only root: the daemon still starts and serves reads.
            self.log.warn("cannot make {dir}: {e}", dir=tmp_dir, e=e)

    def create(self, suffix: str = "part") -> tuple[str, TempFile]:
        """A new temporary file, open for writing and locked until it is closed: keep
        it open until it is renamed into place or removed."""
        while True:
            name = f"{self._prefix}{next(self._numbers):x}.{suffix}"
            path = os.path.join(self.tmp_dir, name)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            except FileExistsError:
                continue  # another process drew the same prefix: take the next number
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a sweeper holds it
                # Names are never reused, so a file a sweeper took for a dead
                # writer's and unlinked has no link left.
                ours = os.fstat(fd).st_nlink > 0
            except BaseException:
                os.close(fd)
                raise
            if ours:
                return path, TempFile(fd)
            os.close(fd)

    def sweep(self) -> int:
        """Remove every temporary file no live process holds; how many were removed."""
        removed = 0
        try:
            entries = list(os.scandir(self.tmp_dir))
        except OSError:
            return 0  # never made (a read-only root): nothing to sweep
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and self._remove_if_unheld(entry.path):
                removed += 1
        if removed:
            self.log.info(
                "removed {count} temporary files left by processes that ended", count=removed
            )
        return removed

    @staticmethod
    def _remove_if_unheld(path: str) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return False  # gone already, or not ours to judge
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False  # a live writer holds it
        try:
            os.unlink(path)  # (under our lock: no writer can take it meanwhile)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
