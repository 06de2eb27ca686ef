"""Reading a backend's push producer one piece at a time."""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IProducer, IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from s3proxy.interfaces import IObjectReader


@implementer(IConsumer)
class PullStream:
    """Consumes an IObjectReader and hands its bytes out on request with ``read``.
    At most ``high_water`` bytes wait here: past that the reader is paused until
    ``read`` has taken them, so memory does not grow with the object."""

    def __init__(self, reader: IObjectReader, high_water: int = 512 * 1024) -> None:
        self.reader = reader
        self._high_water = high_water
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._producer: IPushProducer | None = None
        self._paused = False
        self._started = False
        self._finished = False
        self._failure: Failure | None = None
        self._waiter: Deferred[None] | None = None

    # IConsumer
    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        assert streaming, "object readers are push producers"
        self._producer = producer  # type: ignore[assignment]

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        if data:
            self._buffer.append(data)
            self._buffered += len(data)
        if self._buffered >= self._high_water and not self._paused and self._producer:
            self._paused = True
            self._producer.pauseProducing()
        self._wake()

    def _done(self, result: object) -> None:
        self._finished = True
        if isinstance(result, Failure):
            self._failure = result
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(None)

    async def read(self, max_size: int) -> bytes:
        """Up to ``max_size`` bytes, at least one unless the reader is done (then b"")."""
        if not self._started:
            self._started = True
            self.reader.start(self).addBoth(self._done)
        while not self._buffer:
            if self._failure is not None:
                self._failure.raiseException()
            if self._finished:
                return b""
            self._resume()
            if self._buffer or self._finished:
                continue
            self._waiter = Deferred()
            await self._waiter
        chunk = self._buffer.popleft()
        if len(chunk) > max_size:
            chunk, rest = chunk[:max_size], chunk[max_size:]
            self._buffer.appendleft(rest)
        self._buffered -= len(chunk)
        if self._buffered < self._high_water // 2:
            self._resume()
        return chunk

    def _resume(self) -> None:
        if self._paused and self._producer is not None:
            self._paused = False
            self._producer.resumeProducing()

    def close(self) -> None:
        """Stop the reader (or release it if it never started)."""
        if not self._started:
            self._started = self._finished = True
            self.reader.close()
        elif not self._finished:
            self.reader.stopProducing()
        self._buffer.clear()
        self._buffered = 0
