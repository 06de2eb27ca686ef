"""Service-tree pieces of a serving process: listening with a clear error, stopping
in order, and reloading credentials on SIGHUP."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from s3proxy import affinity, allocator
from s3proxy.auth.credentials import CredentialsError, load_credentials
from s3proxy.console import fatal, say


class ListeningService(StreamServerEndpointService):
    """Listens as the daemon starts; an endpoint it cannot listen on (a port in use, a
    bad address) stops the daemon with one line and exit status 1, not a traceback
    followed by a daemon that serves nothing."""

    def __init__(self, endpoint: Any, factory: Any, description: str) -> None:
        super().__init__(endpoint, factory)
        self.description = description
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except Exception as e:
            reason = getattr(e, "socketError", None) or e
            fatal(f"cannot listen on {self.description}: {reason}")


class ProcessPlacement(Service):
    """The first service of a serving process: one malloc arena and the CPU pinning
    (s3proxy/allocator.py, s3proxy/affinity.py), before any other service starts a
    thread, so the pool's threads inherit both. Done when the tree starts, not when it
    is built: tests build trees in their own process and must not pin it."""

    log = Logger()

    def __init__(self, cpus: tuple[int, ...] | None, worker_index: int | None) -> None:
        self.cpus = cpus
        self.worker_index = worker_index
        self.cpu: int | None = None
        self._placed = False

    def privilegedStartService(self) -> None:
        self._place()
        super().privilegedStartService()

    def startService(self) -> None:
        self._place()  # a worker starts its tree without the privileged step
        super().startService()

    def _place(self) -> None:
        if self._placed:
            return
        self._placed = True
        allocator.use_one_arena()
        self.cpu = affinity.pin_this_process(self.cpus, self.worker_index)
        if self.cpu is not None:
            self.log.info("serving from CPU {cpu} (--cpu-affinity)", cpu=self.cpu)


class Announcement(Service):
    """Tells whoever started the daemon that it serves, once every listener (started
    before it) is listening."""

    def __init__(self, message: str) -> None:
        self.message = message

    def startService(self) -> None:
        super().startService()
        say(self.message)


class InOrderMultiService(MultiService):
    """Stops its children one after another, last added first, each after the one
    before has finished stopping: the listeners, then the draining of requests in
    flight, and only then the thread pool those requests still use."""

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        d: Deferred[Any] = succeed(None)
        for child in reversed(list(self)):
            d.addBoth(_then_stop, child)
        return d.addBoth(lambda _: None)


def _then_stop(_: object, child: Any) -> Any:
    return child.stopService()


class CredentialsReloader(Service):
    """SIGHUP re-reads the --credentials file; a file that no longer parses is logged
    and the users already loaded stay."""

    log = Logger()

    def __init__(self, path: str, apply: Callable[[Any], None], reactor: Any) -> None:
        self.path = path
        self.apply = apply
        self.reactor = reactor
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._signalled)

    def stopService(self) -> None:
        super().stopService()
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)

    def _signalled(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self.reload)

    def reload(self) -> None:
        try:
            users = load_credentials(self.path)
        except CredentialsError as e:
            self.log.error("SIGHUP: keeping the users loaded before: {error}", error=str(e))
            return
        self.apply(users)
        self.log.info(
            "SIGHUP: reloaded {count} users from {path}", count=len(users), path=self.path
        )
