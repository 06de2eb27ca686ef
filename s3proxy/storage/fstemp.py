"""The filesystem backend's temporary files, and the start-up sweep of those a crashed
process left behind.

Several processes may write into one ``<root>/.s3proxy/tmp`` at once (``--workers``,
or several daemons sharing a root), so the sweep must tell a dead writer's file from a
live one's. Each storage claims an *owner* id and holds ``flock`` on
``<root>/.s3proxy/owners/<owner>.lock`` for its whole life; every temporary file it
makes is named ``<owner>.<random>.<suffix>``. The kernel drops the lock when the
process ends, however it ends (kill -9 included), so at start-up:

- a file whose owner's lock can be taken (or has no lock file: an owner creates its
  lock before any file) belongs to a dead process and is removed;
- a file whose owner's lock is held belongs to a live process and is left alone.

No clock and no pid is trusted (pids are reused; a slow upload can leave a file
untouched for minutes). A file named without an owner (an older s3proxy's) has no
live owner by this rule and is removed, as older versions did at every start-up.
(On NFS, Linux emulates flock with POSIX locks, which are per process: there the
rule holds between processes, not between two storages in one process.)
"""

from __future__ import annotations

import fcntl
import os
import secrets
import threading
import uuid
import weakref

from twisted.logger import Logger

_SEP = "."
_LOCK = ".lock"


class TemporaryFiles:
    """Names temporary files for one storage (one owner) and sweeps dead owners'."""

    log = Logger()

    def __init__(self, tmp_dir: str, owners_dir: str) -> None:
        self.tmp_dir = tmp_dir
        self.owners_dir = owners_dir
        self._claiming = threading.Lock()
        self._claimed = False
        self.owner = ""
        try:
            self._claim()
        except OSError as e:
            # A read-only or full root: the daemon still starts and serves reads. No
            # file can be made now; the claim is tried again before the first one.
            self.log.warn("cannot claim temporary files under {dir}: {e}", dir=tmp_dir, e=e)
            self.owner = f"{os.getpid()}-unclaimed-{secrets.token_hex(4)}"

    def _lock_path(self, owner: str) -> str:
        return os.path.join(self.owners_dir, owner + _LOCK)

    def _claim(self) -> None:
        """Take a fresh owner id with its lock held. A sweeper may take a lock file
        between its creation and our flock (it then looks dead) and remove it: the
        inode check sees that, and we start again with a new id. The lock lasts as long
        as this object (a daemon: its whole life); its file is left behind on exit,
        and the next start-up sweep removes it."""
        os.makedirs(self.tmp_dir, exist_ok=True)
        os.makedirs(self.owners_dir, exist_ok=True)
        while True:
            owner = f"{os.getpid()}-{secrets.token_hex(4)}"
            path = self._lock_path(owner)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                ours = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                ours = False
            if ours:
                weakref.finalize(self, os.close, fd)
                self.owner = owner
                self._claimed = True
                return
            os.close(fd)

    def path(self, suffix: str = "part") -> str:
        """A new temporary file's path (the file is not created)."""
        if not self._claimed:
            with self._claiming:
                if not self._claimed:
                    try:
                        self._claim()
                    except OSError:
                        pass  # still refused: so will the file be
        return os.path.join(self.tmp_dir, f"{self.owner}{_SEP}{uuid.uuid4().hex}.{suffix}")

    def sweep(self) -> int:
        """Remove the temporary files and lock files of dead owners; the count of
        temporary files removed."""
        dead: dict[str, int | None] = {}  # owner -> its lock, held while we sweep
        alive: set[str] = set()
        removed = 0
        if not os.path.isdir(self.tmp_dir) or not os.path.isdir(self.owners_dir):
            return 0  # never made (a read-only root): nothing to sweep
        try:
            for entry in os.scandir(self.tmp_dir):
                if not entry.is_file(follow_symlinks=False):
                    continue
                owner = entry.name.split(_SEP, 1)[0]
                if owner == self.owner or owner in alive:
                    continue
                if owner not in dead and not self._judge(owner, dead, alive):
                    continue
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
            for entry in os.scandir(self.owners_dir):
                owner = entry.name.removesuffix(_LOCK)
                if not entry.name.endswith(_LOCK) or owner == self.owner or owner in alive:
                    continue
                if owner not in dead and not self._judge(owner, dead, alive):
                    continue
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass
        finally:
            for fd in dead.values():
                if fd is not None:
                    os.close(fd)
        if removed:
            self.log.info(
                "removed {count} temporary files left by processes that ended", count=removed
            )
        return removed

    def _judge(self, owner: str, dead: dict[str, int | None], alive: set[str]) -> bool:
        """Whether ``owner`` is dead, noted in ``dead`` (with its lock, now held by
        us, if it has a lock file) or in ``alive``."""
        try:
            fd = os.open(self._lock_path(owner), os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            dead[owner] = None  # an owner creates its lock before any file
            return True
        except OSError:
            alive.add(owner)  # unreadable: not ours to judge
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            alive.add(owner)
            return False
        dead[owner] = fd
        return True
