"""A push producer over any chunk source, shared by the backends' object readers."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.python.failure import Failure
from zope.interface import implementer

from s3proxy.interfaces import IObjectReader
from s3proxy.model import ByteRange, ObjectInfo


@implementer(IObjectReader)
class ChunkedReader:
    """Pushes an object's bytes, read with ``read_at(offset, size)`` (a Deferred of
    bytes), into a consumer, honouring pause/resume. One chunk is read ahead while the
    consumer sends the previous one, so the disk and the socket work in parallel;
    memory stays at two chunks whatever the object's size. ``prefetched`` holds the
    object's first bytes when the backend read them while opening it (small objects
    then need no further read)."""

    def __init__(
        self,
        info: ObjectInfo,
        read_at: Callable[[int, int], Deferred[bytes]],
        release: Callable[[], None],
        chunk_size: int,
        byte_range: ByteRange | None = None,
        prefetched: bytes = b"",
    ) -> None:
        self.info = info
        self._read_at = read_at
        self._chunk_size = chunk_size
        self._prefetched = prefetched
        self._release = release
        self.restrict(byte_range)
        self._consumer: IConsumer | None = None
        self._done: Deferred[None] | None = None
        self._paused = False
        self._reading = False
        self._ready: bytes | None = None  # the chunk read ahead
        self._eof = False
        self._closed = False
        self._pumping = False

    def start(self, consumer: IConsumer) -> Deferred[None]:
        self._consumer = consumer
        # Keep our own reference: a synchronous source may finish (and clear
        # ``self._done``) before ``_pump`` returns.
        done: Deferred[None] = Deferred(lambda _: self.stopProducing())
        self._done = done
        consumer.registerProducer(self, True)
        self._pump()
        return done

    def restrict(self, byte_range: ByteRange | None) -> None:
        self.byte_range = byte_range
        if byte_range is None:
            self._position, self._stop_at = 0, self.info.size
        else:
            self._position, self._stop_at = byte_range.first, byte_range.last + 1

    def _read_chunk(self) -> Deferred[bytes]:
        if self._position >= self._stop_at:
            return succeed(b"")
        offset = self._position
        size = min(self._chunk_size, self._stop_at - offset)
        self._position += size
        if offset + size <= len(self._prefetched):
            return succeed(self._prefetched[offset : offset + size])
        return self._read_at(offset, size)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    # IPushProducer
    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        self._end(None)

    def _pump(self) -> None:
        # Re-entrancy guard: a synchronous source or consumer calls back into us.
        if self._pumping:
            return
        self._pumping = True
        try:
            while not self._closed:
                if self._ready is not None and not self._paused:
                    chunk, self._ready = self._ready, None
                    assert self._consumer is not None
                    self._consumer.write(chunk)
                    continue
                if self._ready is None and self._eof:
                    self._end(None)
                    return
                if self._ready is None and not self._reading:
                    self._reading = True
                    d = self._read_chunk()
                    d.addCallbacks(self._got_chunk, self._end)
                    if self._reading:  # not answered synchronously
                        return
                    continue
                return
        finally:
            self._pumping = False

    def _got_chunk(self, chunk: bytes) -> None:
        self._reading = False
        if self._closed:
            return
        if chunk:
            self._ready = chunk
        else:
            self._eof = True
        self._pump()

    def _end(self, failure: Failure | None) -> None:
        if self._closed:
            return
        self.close()
        if self._consumer is not None:
            self._consumer.unregisterProducer()
        done, self._done = self._done, None
        if done is not None:
            if failure is None:
                done.callback(None)
            else:
                done.errback(failure)
