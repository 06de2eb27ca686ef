"""Reading an object through the cache: cached blocks from disk, the others from the
backend while they are written into the cache (the tee)."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from s3proxy.cache import files
from s3proxy.cache.fill import BlockFill, CacheDisk
from s3proxy.cache.index import Entry
from s3proxy.cache.pull import PullStream
from s3proxy.interfaces import IObjectReader
from s3proxy.model import ByteRange, ObjectInfo
from s3proxy.storage.streams import ChunkedReader

CHUNK = 256 * 1024

OpenBackend = Callable[[ByteRange], Deferred[IObjectReader]]


class VersionChanged(Exception):
    """The backend's object changed while a read that had started from the cache
    needed more of it: the read fails (the connection is aborted) rather than mix
    two versions."""


class ReadClosed(Exception):
    """The reader was closed while it waited for the backend."""


class BlockSource:
    """``read_at`` for a ChunkedReader over one cache entry. Reads are sequential. A
    block is served from the cache if it is there (verified first); otherwise the
    bytes come from a backend stream positioned at the block's start, so that the
    whole block can be written to the cache as it passes."""

    def __init__(
        self,
        disk: CacheDisk,
        entry: Entry,
        open_backend: OpenBackend,
        opened: PullStream | None,
    ) -> None:
        self.disk = disk
        self.index = disk.index
        self.entry = entry
        self._open_backend = open_backend
        # A miss opens the backend reader up front (it fixes the version served);
        # then everything is read from it.
        self._opened = opened
        self._stream: PullStream | None = None
        self._stream_pos = 0
        self._stream_end = 0
        self._fill: BlockFill | None = None
        self._block: tuple[int, bytes] | None = None
        self._end = entry.info.size
        self._closed = False
        self._bypass = False
        self.index.pin(entry)

    @property
    def block_size(self) -> int:
        return self.index.block_size

    def restrict(self, byte_range: ByteRange | None) -> None:
        size = self.entry.info.size
        first, last = (0, size - 1) if byte_range is None else (byte_range.first, byte_range.last)
        self._end = last + 1
        if self._opened is None or size == 0:
            return
        start = first // self.block_size * self.block_size
        end = min(size, (last // self.block_size + 1) * self.block_size)
        whole = start == 0 and end == size
        self._opened.reader.restrict(None if whole else ByteRange(start, end - 1))
        self._stream, self._stream_pos, self._stream_end = self._opened, start, end

    def read_at(self, offset: int, size: int) -> Deferred[bytes]:
        return Deferred.fromCoroutine(self._read(offset, size))

    async def _read(self, offset: int, size: int) -> bytes:
        parts = []
        while size > 0:
            if self._closed:  # stopped while a read was in flight: open nothing more
                raise ReadClosed()
            block = offset // self.block_size
            n = min(size, (block + 1) * self.block_size - offset)
            parts.append(await self._read_in_block(block, offset, n))
            offset, size = offset + n, size - n
        if offset >= self._end:
            self._finish_tail()
        return b"".join(parts)

    async def _read_in_block(self, block: int, offset: int, n: int) -> bytes:
        start = offset - block * self.block_size
        if self._block is not None and self._block[0] == block:
            return self._from_cache(self._block[1], start, n)
        stream = self._stream
        if stream is None or not self._stream_pos <= offset < self._stream_end:
            data = None if self._opened is not None or self._bypass else await self._load(block)
            if data is not None:
                self._block = (block, data)
                return self._from_cache(data, start, n)
            await self._open_stream(block)
        return await self._from_stream(offset, n)

    def _from_cache(self, data: bytes, start: int, n: int) -> bytes:
        self.index.counters["bytes_from_cache"] += n
        return data[start : start + n]

    async def _load(self, block: int) -> bytes | None:
        record = self.entry.blocks.get(block)
        if record is None:
            return None
        path = self.entry.block_path(block)
        try:
            data = await self.disk.run(files.read_block, path, record.length, record.crc32)
        except files.CorruptBlock:
            self.index.counters["corrupt"] += 1
        except Exception:
            self.disk.failed(Failure(), "reading a block")
            self._bypass = True  # the disk is failing: the rest from the backend
        else:
            self.index.touch(self.entry, block)
            self.index.counters["hits"] += 1
            return data
        if self.entry.blocks.get(block) is record:
            self.index.discard_block(self.entry, block)
            self.disk.delete([path])
        return None

    async def _open_stream(self, block: int) -> None:
        """A backend stream over the run of blocks from ``block`` that the cache
        lacks, up to the end of the range being read."""
        self._close_stream()
        last_block = (self._end - 1) // self.block_size
        stop = block + 1
        while stop <= last_block and (self._bypass or stop not in self.entry.blocks):
            stop += 1
        start, end = block * self.block_size, min(self.entry.info.size, stop * self.block_size)
        reader = await self._open_backend(ByteRange(start, end - 1))
        if self._closed:
            reader.close()
            raise ReadClosed()
        if not self.entry.matches(reader.info):
            reader.close()
            self.disk.drop(self.entry, "stale")
            raise VersionChanged(f"{self.entry.bucket}/{self.entry.key} changed while read")
        self._stream, self._stream_pos, self._stream_end = PullStream(reader), start, end

    async def _from_stream(self, offset: int, n: int) -> bytes:
        assert self._stream is not None
        parts = []
        while self._stream_pos < offset + n:
            chunk = await self._next_from_stream(offset + n)
            skip = max(0, offset - (self._stream_pos - len(chunk)))
            if skip < len(chunk):
                parts.append(chunk[skip:])
        data = b"".join(parts)
        self.index.counters["bytes_from_backend"] += len(data)
        return data

    async def _next_from_stream(self, limit: int) -> bytes:
        """The next piece of the stream, never past ``limit`` nor a block's end; fed
        to the block's fill, which is committed at the block's end."""
        if self._closed or self._stream is None:
            raise ReadClosed()
        if self._stream_pos % self.block_size == 0:
            self.index.counters["misses"] += 1
            self._fill = self.disk.start_fill(self.entry, self._stream_pos // self.block_size)
        block_end = (self._stream_pos // self.block_size + 1) * self.block_size
        want = min(limit, block_end) - self._stream_pos
        chunk = await self._stream.read(want)
        if self._closed:
            raise ReadClosed()
        if not chunk:
            raise VersionChanged(f"{self.entry.bucket}/{self.entry.key} ended early")
        self._stream_pos += len(chunk)
        fill = self._fill
        if fill is not None:
            await fill.feed(chunk)
            if self._stream_pos == min(block_end, self.entry.info.size):
                self._fill = None
                await fill.commit()
        return chunk

    def _finish_tail(self) -> None:
        """The range ended inside a block being filled: read the rest of that block
        in the background, so that a range read caches the whole blocks it touched."""
        if self._fill is None or self._stream is None:
            return
        self.index.pin(self.entry)
        stream, fill, self._stream, self._fill = self._stream, self._fill, None, None
        if self._opened is stream:
            self._opened = None  # the tail owns it now
        tail = Deferred.fromCoroutine(self._drain(stream, fill))
        tail.addErrback(lambda f: fill.abort())
        tail.addBoth(lambda _: self._after_tail(stream))

    async def _drain(self, stream: PullStream, fill: BlockFill) -> None:
        while fill.written < fill.length:
            chunk = await stream.read(fill.length - fill.written)
            if not chunk:
                raise VersionChanged("ended early")
            await fill.feed(chunk)
        await fill.commit()

    def _after_tail(self, stream: PullStream) -> None:
        stream.close()
        self.disk.delete(self.index.unpin(self.entry))

    def _close_stream(self) -> None:
        if self._fill is not None:
            self._fill.abort()
            self._fill = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_stream()
        if self._opened is not None:
            self._opened.close()  # never started (HEAD), or already stopped: harmless
        self._block = None
        self.disk.delete(self.index.unpin(self.entry))


class CachedObjectReader(ChunkedReader):
    """The IObjectReader handed to the web layer: a ChunkedReader over a BlockSource."""

    def __init__(self, info: ObjectInfo, source: BlockSource, byte_range: ByteRange | None) -> None:
        self._source = source
        super().__init__(info, source.read_at, source.close, CHUNK, byte_range)

    def restrict(self, byte_range: ByteRange | None) -> None:
        super().restrict(byte_range)
        self._source.restrict(byte_range)
