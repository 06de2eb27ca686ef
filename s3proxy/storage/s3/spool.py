"""A body of unknown length, longer than the writer holds in memory, kept in an
unlinked temporary file until its end, then sent upstream with its Content-Length.

AWS and Ceph RGW answer a chunked PUT with 411, so a client's ``Transfer-Encoding:
chunked`` upload can only go on once its length is known. The file is written and
read in the reactor's thread pool; the client is paused while writes queue up."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import IO, Any

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

READ_SIZE = 1024 * 1024


class Spool:
    """Bytes appended in order by pool threads; ``queued`` is what is not written yet."""

    def __init__(self, on_progress: Callable[[], None]) -> None:
        # One open() on the reactor: cheap next to the 8 MiB that were held before.
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="s3proxy-spool-")
        self._on_progress = on_progress
        self._writing: Deferred[Any] = succeed(None)
        self.queued = 0

    def write(self, data: bytes) -> None:
        self.queued += len(data)

        def written(result: object) -> object:
            self.queued -= len(data)
            self._on_progress()
            return result  # a failed write skips the later ones; flush() raises it

        self._writing.addCallback(lambda _: deferToThread(self._file.write, data))
        self._writing.addBoth(written)

    def flush(self) -> Deferred[None]:
        """Fires once every byte is written (fails with the first write's failure).
        Not ``await self._writing``: awaited while its callbacks run (a write made
        from on_progress), a Deferred gives its current result without waiting."""
        done: Deferred[None] = Deferred()

        def report(result: object) -> object:
            if isinstance(result, Failure):
                done.errback(result)
            else:
                done.callback(None)
            return result

        self._writing.addBoth(report)
        return done

    def body(self, length: int) -> IBodyProducer:
        return _SpooledBody(self._file, length)

    def close(self) -> None:
        self._writing.addBoth(lambda _: self._file.close())


@implementer(IBodyProducer)
class _SpooledBody:
    """The spool's bytes, read back from its start, as an upstream request's body."""

    def __init__(self, file: IO[bytes], length: int) -> None:
        self._file = file
        self.length = length
        self._resumed: Deferred[None] | None = None
        self._stopped = False

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        done: Deferred[None] = Deferred()

        def report(result: object) -> None:
            if not self._stopped:  # IBodyProducer: after stopProducing, never fire
                done.callback(None) if not isinstance(result, Failure) else done.errback(result)

        ensureDeferred(self._pump(consumer)).addBoth(report)
        return done

    async def _pump(self, consumer: IConsumer) -> None:
        await deferToThread(self._file.seek, 0)
        while not self._stopped:
            if self._resumed is not None:
                await self._resumed
                continue
            chunk = await deferToThread(self._file.read, READ_SIZE)
            if not chunk or self._stopped:
                return
            consumer.write(chunk)

    def pauseProducing(self) -> None:
        if self._resumed is None:
            self._resumed = Deferred()

    def resumeProducing(self) -> None:
        resumed, self._resumed = self._resumed, None
        if resumed is not None:
            resumed.callback(None)

    def stopProducing(self) -> None:
        self._stopped = True
        self.resumeProducing()
