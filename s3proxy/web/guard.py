"""Limits on what clients may hold: how long a request's headers may take, how long a
client may leave our responses unread, and how many connections may be open.

One periodic call looks at every open connection (``S3Channel`` keeps the marks it
reads), so requests pay for no timer of their own. The idle timeout (no byte received
on a connection that is not busy with a request) is Twisted's own per-connection
timeout (``Site.timeOut``), which it re-arms on every read anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from s3proxy.errors import RequestTimeout, SlowDown
from s3proxy.web.channel import http_error, linger_close

# Refused connections linger (linger_close) only while this few do, so that a flood
# of connections beyond the cap costs bounded descriptors; the rest close at once.
MAX_LINGERING_REFUSALS = 64
_CLOSED = Failure(ConnectionDone())


@dataclass(frozen=True)
class Limits:
    """0 turns a limit off."""

    header_timeout: float = 60.0
    idle_timeout: float = 60.0
    send_timeout: float = 60.0
    max_connections: int = 1024

    def sweep_interval(self) -> float | None:
        """Often enough that a connection overstays a limit by at most a quarter."""
        timeouts = [t for t in (self.header_timeout, self.send_timeout) if t]
        if not timeouts:
            return None
        return min(1.0, max(0.05, min(timeouts) / 4))


class ConnectionGuard:
    log = Logger()

    def __init__(self, limits: Limits, reactor: IReactorTime) -> None:
        self.limits = limits
        self.reactor = reactor
        self.channels: set[Any] = set()
        self.lingering = 0
        self.refused = 0
        self._refused_logged = 0
        self._quiet = True
        self._loop: LoopingCall | None = None
        # channel -> (its send_pauses, when it was first seen blocked at that count)
        self._blocked: dict[Any, tuple[int, float]] = {}

    # -- the connections ---------------------------------------------------------

    def connection_made(self, channel: Any) -> None:
        self.channels.add(channel)

    def connection_lost(self, channel: Any) -> None:
        self.channels.discard(channel)
        self._blocked.pop(channel, None)

    def full(self) -> bool:
        cap = self.limits.max_connections
        return bool(cap) and len(self.channels) >= cap

    def refusal(self) -> Protocol:
        self.refused += 1
        # The first refusal after a quiet sweep is logged at once, the next ones
        # together by the following sweep: about a line a second at most.
        if self._quiet or self._loop is None:
            self._quiet = False
            self._log_refused(self.refused - self._refused_logged)
            self._refused_logged = self.refused
        return Refusal(self)

    def _log_refused(self, count: int) -> None:
        self.log.warn(
            "refused {count} connections over --max-connections {cap}",
            count=count,
            cap=self.limits.max_connections,
        )

    # -- the periodic look -------------------------------------------------------

    def start(self) -> None:
        interval = self.limits.sweep_interval()
        if interval is None or self._loop is not None:
            return
        self._loop = LoopingCall(self.sweep)
        self._loop.clock = self.reactor
        self._loop.start(interval, now=False).addErrback(
            lambda f: self.log.failure("connection guard stopped", f)
        )

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def sweep(self) -> None:
        now = self.reactor.seconds()
        send_timeout = self.limits.send_timeout
        for channel in list(self.channels):
            deadline = channel.header_deadline
            if deadline is not None and deadline >= 0 and now > deadline:
                self.log.info(
                    "closing {peer}: request headers not received in {timeout:g} s",
                    peer=_peer(channel),
                    timeout=self.limits.header_timeout,
                )
                channel.reject(RequestTimeout())
            elif send_timeout and channel.send_blocked:
                self._check_send(channel, now, send_timeout)
        if self.refused != self._refused_logged:
            self._log_refused(self.refused - self._refused_logged)
            self._refused_logged = self.refused
        else:
            self._quiet = True

    def _check_send(self, channel: Any, now: float, send_timeout: float) -> None:
        """A client whose socket stayed full, without taking any of what we send,
        for ``send_timeout``: cut (what is sent cannot be taken back, nor finished)."""
        pauses = channel.send_pauses
        seen = self._blocked.get(channel)
        if seen is None or seen[0] != pauses:
            self._blocked[channel] = (pauses, now)
        elif now - seen[1] > send_timeout:
            self.log.info(
                "closing {peer}: our response was not read for {timeout:g} s",
                peer=_peer(channel),
                timeout=send_timeout,
            )
            del self._blocked[channel]
            channel.transport.abortConnection()


class Refusal(Protocol):
    """A connection over the cap: "503 SlowDown" without reading the request, then
    closed (lingering, so that the client reads the answer rather than a reset)."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard
        self.counted = False
        self.cut: IDelayedCall | None = None

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.write(http_error(SlowDown()))
        if self.guard.lingering >= MAX_LINGERING_REFUSALS:
            transport.loseConnection()
            return
        self.guard.lingering += 1
        self.counted = True
        self.cut = linger_close(transport, self.guard.reactor.callLater)

    def dataReceived(self, data: bytes) -> None:
        """Dropped: the request is never read."""

    def connectionLost(self, reason: Failure = _CLOSED) -> None:
        if self.cut is not None and self.cut.active():
            self.cut.cancel()
        if self.counted:
            self.guard.lingering -= 1
            self.counted = False


def _peer(channel: Any) -> str:
    transport = channel.transport
    return str(transport.getPeer()) if transport is not None else "?"
