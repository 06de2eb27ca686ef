"""Graceful shutdown: on SIGTERM stop accepting, let requests in flight finish within
a grace period, close idle keep-alive connections, then close what is left.

A request cut off by the grace period loses its connection: an upload in progress is
then discarded by its writer (nothing partial is ever visible), while a multipart
upload's parts already stored stay and can be continued after the restart.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web import http

POLL_INTERVAL = 0.05
AFTER_ABORT = 0.2


class Connections:
    """The site's open connections (the connection guard's set, kept as they open and
    close) and its requests in flight."""

    def __init__(self, channels: Collection[Any]) -> None:
        self.channels = channels
        self.requests: set[http.Request] = set()
        self.draining = False

    def request_started(self, request: http.Request) -> None:
        self.requests.add(request)
        request.notifyFinish().addBoth(lambda _: self.requests.discard(request))
        if self.draining:
            _last_on_its_connection(request)

    def in_flight(self) -> int:
        """Connections with a request begun and not answered yet."""
        return sum(1 for channel in self.open_channels() if _busy(channel))

    def close_idle(self) -> None:
        for request in self.requests:
            _last_on_its_connection(request)
        for channel in self.open_channels():
            if not _busy(channel):
                channel.transport.loseConnection()

    def abort_all(self) -> None:
        for channel in self.open_channels():
            channel.transport.abortConnection()

    def open_channels(self) -> list[Any]:
        """The HTTP channels still connected."""
        return [c for c in list(self.channels) if not getattr(c.transport, "disconnected", False)]


def _busy(channel: Any) -> bool:
    """A request's first line is in and its response not finished (Twisted's channel
    queues it from its first line; our request set only from ``process``, which an
    upload reaches a reactor turn after its headers), or part of a line is."""
    return bool(getattr(channel, "requests", None)) or bool(getattr(channel, "_buffer", b""))


def _last_on_its_connection(request: http.Request) -> None:
    """Serve the request, then close its connection, saying so ("Connection: close"),
    so the client reconnects (to another daemon) for its next request. (A response
    already started cannot say so; its connection is closed once idle.)"""
    channel: Any = request.channel
    if channel is not None:
        channel.persistent = False
    if not request.startedWriting:
        request.responseHeaders.setRawHeaders(b"connection", [b"close"])


class DrainService(Service):
    """Stopped before the listening services' ports close (it is started after them),
    it waits for the requests in flight."""

    log = Logger()

    def __init__(
        self,
        connections: Connections,
        reactor: IReactorTime,
        grace: float,
        on_stop: Callable[[], None] = lambda: None,
    ) -> None:
        self.connections = connections
        self.reactor = reactor
        self.grace = grace
        self.on_stop = on_stop

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self.on_stop()
        connections = self.connections
        connections.draining = True
        in_flight = connections.in_flight()
        self.log.info(
            "shutting down: {count} requests in flight, waiting up to {grace:g} s",
            count=in_flight,
            grace=self.grace,
        )
        connections.close_idle()
        # Done once every connection is closed, not when the last request finished:
        # a finished response may still sit in its transport's buffer, and stopping
        # the reactor then would cut it off (closed connections have flushed theirs).
        if not connections.open_channels():
            return succeed(None)
        done: Deferred[None] = Deferred()
        deadline = self.reactor.seconds() + self.grace

        def check() -> None:
            connections.close_idle()
            if not connections.open_channels():
                if in_flight:
                    self.log.info("shutdown: every request in flight finished")
                done.callback(None)
            elif self.reactor.seconds() >= deadline:
                self.log.warn(
                    "shutdown: closing {count} connections still busy after {grace:g} s",
                    count=connections.in_flight(),
                    grace=self.grace,
                )
                connections.abort_all()
                # The aborted requests' writers discard their temporary files on the
                # I/O pool: give them a few turns of the reactor to get there.
                self.reactor.callLater(AFTER_ABORT, done.callback, None)
            else:
                self.reactor.callLater(POLL_INTERVAL, check)

        check()
        return done
