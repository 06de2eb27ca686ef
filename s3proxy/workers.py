"""``--workers N``: N processes serving the same ports.

The first process binds every ``tcp:`` listen endpoint itself, once per worker with
SO_REUSEPORT, starts N workers (``python -m s3proxy.worker``) that inherit their
sockets as file descriptors and adopt them into their reactors, and restarts any
worker that dies. All state lives in the storage (the filesystem root or the upstream
store), so any worker can serve any request; the kernel spreads connections evenly.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from s3proxy.console import fatal

RESTART_DELAY = 1.0
# Workers still busy this long after SIGTERM get SIGKILL (a worker that got SIGTERM
# while still starting up may have missed it).
STOP_GRACE = 5.0
# Listen backlog of our tcp: sockets unless the description names one. Twisted's own
# default, 50, overflows when a few hundred clients connect at once to a busy daemon:
# the kernel then resets connections whose clients already sent their request.
DEFAULT_BACKLOG = 1024


def endpoint_fields(description: str) -> list[str]:
    """The fields of an endpoint description, separated by unescaped colons (IPv6
    addresses are written ``\\:\\:1``), unescaped."""
    return [p.replace("\\:", ":") for p in re.split(r"(?<!\\):", description)]


def with_backlog(description: str) -> str:
    """A tcp: or ssl: endpoint description with DEFAULT_BACKLOG unless it has a backlog."""
    parts = endpoint_fields(description)
    if parts[0] not in ("tcp", "tcp6", "ssl") or any(p.startswith("backlog=") for p in parts):
        return description
    return f"{description}:backlog={DEFAULT_BACKLOG}"


def tcp_address(description: str) -> tuple[str, int, int]:
    """(interface, port, backlog) of a ``tcp:`` endpoint description."""
    parts = endpoint_fields(description)
    if parts[0] != "tcp":
        raise ValueError(f"only tcp: endpoints can be shared by workers, not {description!r}")
    interface, port, backlog = "", None, DEFAULT_BACKLOG
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        if not eq:
            port = int(part)
        elif name == "port":
            port = int(value)
        elif name == "interface":
            interface = value
        elif name == "backlog":
            backlog = int(value)
    if port is None:
        raise ValueError(f"no port in {description!r}")
    return interface, port, backlog


def bind(description: str) -> socket.socket:
    interface, port, backlog = tcp_address(description)
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # One listening socket per worker on the same port: the kernel spreads new
    # connections evenly over them (one shared socket lets whichever worker wakes
    # first take a whole burst of clients).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((interface or ("::" if family == socket.AF_INET6 else ""), port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


class _Worker(ProcessProtocol):
    def __init__(self, supervisor: WorkerSupervisor, index: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.supervisor.worker_ended(self, reason)


class WorkerSupervisor(Service):
    log = Logger()

    def __init__(
        self,
        reactor: Any,
        listen: list[str],
        args: list[str],
        count: int,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        self.reactor = reactor
        self.stop_grace = stop_grace
        self.listen = listen
        self.args = _without_workers(args)
        self.count = count
        # Worker index -> its own listening sockets, one per --listen endpoint. They
        # stay open here, so connections wait in their queue while a worker restarts.
        self.sockets: dict[int, list[socket.socket]] = {}
        self.workers: dict[int, _Worker] = {}

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        try:
            for index in range(self.count):
                self.sockets[index] = [bind(d) for d in self.listen]
        except OSError as e:
            fatal(f"cannot listen on {', '.join(self.listen)}: {e}")

    def startService(self) -> None:
        super().startService()
        if not self.sockets:
            self.privilegedStartService()
        self._previous_hup = signal.signal(signal.SIGHUP, self._forward_hup)
        for index in range(self.count):
            self._spawn(index)

    def _forward_hup(self, signum: int, frame: Any) -> None:
        """Each worker reloads its credentials itself."""
        for worker in list(self.workers.values()):
            _signal(worker, signal.SIGHUP)

    def _spawn(self, index: int) -> None:
        if not self.running:
            return
        fds = {0: 0, 1: 1, 2: 2}
        inherited = []
        sockets = self.sockets[index]
        for offset, sock in enumerate(sockets):
            fds[3 + offset] = sock.fileno()
            inherited.append(str(3 + offset))
        families = [str(int(s.family)) for s in sockets]
        worker = _Worker(self, index)
        argv = [
            sys.executable,
            "-m",
            "s3proxy.worker",
            ",".join(inherited),
            ",".join(families),
            str(index),
            *self.args,
        ]
        env = dict(os.environ, S3PROXY_SUPERVISOR_PID=str(os.getpid()))
        process = self.reactor.spawnProcess(worker, sys.executable, argv, env=env, childFDs=fds)
        self.workers[index] = worker
        self.log.info("started worker {index} (pid {pid})", index=index, pid=process.pid)

    def worker_ended(self, worker: _Worker, reason: Failure) -> None:
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        if self.running:
            self.log.warn(
                "worker {index} ended ({reason}); restarting it",
                index=worker.index,
                reason=reason.getErrorMessage(),
            )
            self.reactor.callLater(RESTART_DELAY, self._spawn, worker.index)

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        workers = list(self.workers.values())
        for worker in workers:
            _signal(worker, signal.SIGTERM)

        def kill_all() -> None:
            for worker in workers:
                _signal(worker, signal.SIGKILL)

        kill = self.reactor.callLater(self.stop_grace, kill_all)
        done = DeferredList([w.ended for w in workers])

        def finished(result: object) -> object:
            if kill.active():
                kill.cancel()
            for sockets in self.sockets.values():
                for sock in sockets:
                    sock.close()
            return result

        return done.addBoth(finished)


def _signal(worker: _Worker, number: int) -> None:
    transport: Any = worker.transport
    if transport is not None and transport.pid is not None:
        try:
            os.kill(transport.pid, number)
        except ProcessLookupError:
            pass


def _without_workers(args: list[str]) -> list[str]:
    """The options a worker gets: everything but --workers."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("--workers", "-w"):
            skip = True
            continue
        if arg.startswith("--workers=") or (arg.startswith("-w") and len(arg) > 2):
            continue
        out.append(arg)
    return out
