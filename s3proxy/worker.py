"""A worker process of ``--workers N`` (started by ``s3proxy.workers``):
``python -m s3proxy.worker FDS FAMILIES INDEX [s3proxy options]``."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from twisted.internet import reactor
from twisted.logger import globalLogBeginner, textFileLogObserver


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the supervisor dies, even by SIGKILL, so no worker
    outlives it holding the port."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM))
    except (OSError, AttributeError):
        pass
    # The supervisor may have died before the line above ran.
    if os.getppid() != int(os.environ.get("S3PROXY_SUPERVISOR_PID", os.getppid())):
        sys.exit(0)


def main(argv: list[str]) -> None:
    from s3proxy.observe.jsonlog import json_file_observer
    from s3proxy.tap import Options, make_serving_service

    _die_with_parent()
    fds = [int(f) for f in argv[1].split(",") if f]
    families = [int(f) for f in argv[2].split(",") if f]
    index = int(argv[3])
    config = Options()
    config.parseOptions(argv[4:])
    json_log = config["log-format"] == "json"
    observer = json_file_observer(sys.stdout) if json_log else textFileLogObserver(sys.stdout)
    globalLogBeginner.beginLoggingTo([observer])
    endpoints = [AdoptedPort(fd, family) for fd, family in zip(fds, families, strict=True)]
    service = make_serving_service(config, reactor, endpoints, worker=index)
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    # The supervisor stops us with SIGTERM; Twisted's handler stops the reactor cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reactor.callWhenRunning(_stop_once_on_sigterm)
    reactor.run()


def _stop_once_on_sigterm() -> None:
    """systemd (KillMode=control-group) signals every process of the unit and the
    supervisor forwards its SIGTERM too: a worker gets two. Twisted's handler would
    stop the stopped reactor a second time and log ReactorNotRunning; pass on only the
    first."""
    twisted_handler = signal.getsignal(signal.SIGTERM)
    if not callable(twisted_handler):
        return
    handled = False

    def once(signum: int, frame: Any) -> None:
        nonlocal handled
        if not handled:
            handled = True
            twisted_handler(signum, frame)

    signal.signal(signal.SIGTERM, once)


class AdoptedPort:
    """A server endpoint that listens on an inherited, already listening socket."""

    def __init__(self, fd: int, family: int) -> None:
        self.fd = fd
        self.family = family

    def listen(self, factory: object) -> object:
        from twisted.internet.defer import succeed

        port: Any = reactor.adoptStreamPort(self.fd, self.family, factory)  # type: ignore[attr-defined]
        _accept_one_at_a_time(port)
        return succeed(port)


class _OneAcceptPerWakeUp:
    """Twisted accepts up to 100+ connections per wake-up; with workers sharing one
    socket, the first to wake would take a whole burst of clients. One at a time lets
    the kernel's wake-ups spread them over the workers."""

    numberAccepts = property(lambda self: 1, lambda self, value: None)


def _accept_one_at_a_time(port: Any) -> None:
    port.__class__ = type("FairPort", (_OneAcceptPerWakeUp, port.__class__), {})


if __name__ == "__main__":
    main(sys.argv)
