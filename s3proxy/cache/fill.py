"""Writing one block into the cache while it streams past (the tee of a miss)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from s3proxy.cache import files
from s3proxy.cache.index import CacheIndex, Entry

T = TypeVar("T")


class CacheDisk:
    """The index plus the thread pool its files are read and written on. Failures of
    the disk never reach a client: they are counted, logged and the cache stays out of
    the way (no new blocks) for ``cooldown`` seconds."""

    log = Logger()

    def __init__(
        self, index: CacheIndex, reactor: Any, pool: ThreadPool, cooldown: float = 30.0
    ) -> None:
        self.index = index
        self.reactor = reactor
        self.pool = pool
        self.cooldown = cooldown
        self._disabled_until = 0.0

    def run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(self.reactor, self.pool, fn, *args)

    def delete(self, paths: list[str]) -> None:
        if paths:
            self.run(files.remove_all, paths).addErrback(self.failed, "deleting cache files")

    def drop(self, entry: Entry, reason: str) -> None:
        """Forget ``entry`` (counted under ``reason`` once); its files go when its
        last reader does."""
        if not entry.dead:
            self.index.counters[reason] += 1
        self.delete(self.index.drop(entry))

    def failed(self, failure: Failure, doing: str) -> None:
        self.index.counters["errors"] += 1
        self._disabled_until = self.reactor.seconds() + self.cooldown
        self.log.warn(
            "read cache: {doing} failed ({error}); passing reads through for {cooldown} s",
            doing=doing,
            error=failure.getErrorMessage(),
            cooldown=self.cooldown,
        )

    def writable(self) -> bool:
        return self.reactor.seconds() >= self._disabled_until

    def start_fill(self, entry: Entry, index: int) -> BlockFill | None:
        """A fill for block ``index`` of ``entry`` if the cache wants it."""
        if not self.writable():
            return None
        ok, victims = self.index.claim(entry, index)
        self.delete(victims)
        return BlockFill(self, entry, index) if ok else None


class BlockFill:
    """Writes are queued one behind the other on the pool; ``feed`` waits for the
    previous write, so a slow disk slows the stream instead of filling memory."""

    def __init__(self, disk: CacheDisk, entry: Entry, index: int) -> None:
        self.disk = disk
        self.entry = entry
        self.index = index
        self.written = 0
        self._file: BinaryIO | None = None
        self._temp: str | None = None
        self._crc32 = 0
        self._last: Deferred[None] = succeed(None)
        self._over = False

    @property
    def length(self) -> int:
        return self.disk.index.block_length(self.entry, self.index)

    async def feed(self, data: bytes) -> None:
        await self._last
        if self._over:
            return
        self.written += len(data)
        self._last = self.disk.run(self._write, data).addErrback(self._fail, "writing a block")

    def _write(self, data: bytes) -> None:
        # On a pool thread; the writes of one fill never overlap.
        if self._file is None:
            self._file, self._temp = files.open_temp(self.entry.directory, self.index)
        self._crc32 = files.write_chunk(self._file, data, self._crc32)

    async def commit(self) -> None:
        await self._last
        if self._over:
            return
        if self.written != self.length or self.entry.dead or self._file is None:
            self.abort()
            return
        self._over = True
        f, temp, self._file, self._temp = self._file, self._temp, None, None
        assert temp is not None
        # The name carries the checksum (for a human looking) and the temp file's
        # unique suffix.
        name = f"{self.index}-{self._crc32:08x}-{temp.rsplit('-', 1)[1]}"
        final = os.path.join(self.entry.directory, name)
        try:
            await self.disk.run(files.publish, f, temp, final)
        except Exception:
            self.disk.failed(Failure(), "storing a block")
            self.disk.index.abandon(self.entry, self.index)
            self.disk.delete([temp])
            return
        if not self.disk.index.commit(self.entry, self.index, self._crc32, name):
            self.disk.delete([final])

    def abort(self) -> None:
        """Give up on this block (safe to call twice, and while a write is queued)."""
        if self._over:
            return
        self._over = True
        self.disk.index.abandon(self.entry, self.index)
        self._last.addCallback(lambda _: self._discard())

    def _discard(self) -> None:
        f, temp, self._file, self._temp = self._file, self._temp, None, None
        if f is not None or temp is not None:
            self.disk.run(files.discard, f, temp).addErrback(self.disk.failed, "discarding")

    def _fail(self, failure: Failure, doing: str) -> None:
        self.disk.failed(failure, doing)
        self.abort()
