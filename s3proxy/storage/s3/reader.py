"""An object's bytes pushed from the upstream GET answer into our consumer: pausing
our consumer pauses the upstream connection, so nothing piles up in between."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IConsumer, IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IResponse
from zope.interface import implementer

from s3proxy.errors import ServiceUnavailable
from s3proxy.interfaces import IObjectReader
from s3proxy.model import ByteRange, ObjectInfo


class _Discard(Protocol):
    """Takes an unwanted body and drops its connection at once, rather than
    downloading an object nobody reads."""

    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()


def discard(response: IResponse) -> None:
    response.deliverBody(_Discard())


class _Pump(Protocol):
    def __init__(self, reader: UpstreamReader) -> None:
        self.reader = reader

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.reader._connected(transport)

    def dataReceived(self, data: bytes) -> None:
        self.reader._data(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if reason.check(ResponseDone, PotentialDataLoss):
            self.reader._end(None)
        else:
            self.reader._end(reason)


@implementer(IObjectReader)
class UpstreamReader:
    """``response`` answers a GET of ``byte_range``; ``refetch(range)`` sends another
    GET of the same version (If-Match) when ``restrict`` asks for another range."""

    def __init__(
        self,
        info: ObjectInfo,
        response: IResponse,
        byte_range: ByteRange | None,
        refetch: Callable[[ByteRange | None], Deferred[IResponse]],
        clock: IReactorTime | None = None,
        idle_timeout: float = 60.0,
    ) -> None:
        self.info = info
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._watchdog: IDelayedCall | None = None
        self.byte_range = byte_range
        self._response: IResponse | None = response
        self._fetched_range = byte_range
        self._refetch = refetch
        self._consumer: IConsumer | None = None
        self._transport: IPushProducer | None = None
        self._paused = False
        self._stopped = False
        self._held: list[bytes] = []
        self._finished_body = False
        self._ended = False
        self._done: Deferred[None] | None = None

    def restrict(self, byte_range: ByteRange | None) -> None:
        self.byte_range = byte_range

    def close(self) -> None:
        self._stopped = True
        response, self._response = self._response, None
        if response is not None:
            discard(response)

    def start(self, consumer: IConsumer) -> Deferred[None]:
        self._consumer = consumer
        done: Deferred[None] = Deferred(lambda _: self.stopProducing())
        self._done = done
        consumer.registerProducer(self, True)
        ensureDeferred(self._begin()).addErrback(self._end)
        return done

    async def _begin(self) -> None:
        response, self._response = self._response, None
        if self.byte_range != self._fetched_range:
            if response is not None:
                discard(response)
            response = await self._refetch(self.byte_range)
        if response is None:
            return
        if self._stopped:
            discard(response)
            return
        response.deliverBody(_Pump(self))

    # -- from the body protocol --------------------------------------------------------

    def _connected(self, transport: IPushProducer) -> None:
        self._transport = transport
        if self._paused:
            transport.pauseProducing()
        self._watch()

    def _watch(self) -> None:
        """(Re)start the idle timer while we wait for the upstream, not for our consumer."""
        self._unwatch()
        if self._clock is not None and not self._paused and not self._ended:
            self._watchdog = self._clock.callLater(self._idle_timeout, self._idle)

    def _unwatch(self) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None

    def _idle(self) -> None:
        self._watchdog = None
        if self._transport is not None and not self._finished_body:
            self._transport.stopProducing()
        self._end(Failure(ServiceUnavailable("The upstream store stopped sending.")))

    def _data(self, data: bytes) -> None:
        self._watch()
        if self._stopped or self._consumer is None:
            return
        if self._paused:
            self._held.append(data)  # at most what one read of the socket delivered
            return
        self._consumer.write(data)

    def _end(self, failure: Failure | None) -> None:
        self._unwatch()
        if failure is None and (self._held or self._paused) and not self._stopped:
            self._finished_body = True  # deliver the rest once resumed
            return
        self._ended = True
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.unregisterProducer()
        done, self._done = self._done, None
        if done is None or done.called:
            return
        if failure is None or self._stopped:
            done.callback(None)
        else:
            done.errback(failure)

    # -- IPushProducer, for our consumer ---------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True
        self._unwatch()
        # Once the body is complete its connection may be back in the pool: leave it.
        if self._transport is not None and not self._finished_body and not self._ended:
            self._transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        while self._held and not self._paused and self._consumer is not None:
            self._consumer.write(self._held.pop(0))
        if self._paused:
            return
        if self._finished_body:
            self._end(None)
        elif self._transport is not None and not self._ended:
            self._watch()
            self._transport.resumeProducing()

    def stopProducing(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._held = []
        if self._transport is not None and not self._finished_body and not self._ended:
            self._transport.stopProducing()
        self._end(None)
