"""A fault-injecting HTTP/1.1 proxy on a loopback port, in front of an upstream S3 (moto).

It relays requests and answers byte for byte, keep-alive included, and counts every
request it sees. Rules, matched by method and path, make it misbehave instead:

* ``answer(status, code)``: answer with an S3 ``<Error>`` itself (the upstream never
  sees the request), ``times`` times or for ever; ``early``: before the request's body
  is read, and close the connection (as S3 sheds load);
* ``cut(after)``: relay the answer's head and ``after`` body bytes, then close both
  connections (the upstream died mid-answer);
* ``stall(after)``: relay the head and ``after`` body bytes, then send nothing more;
* ``hang()``: take the request and never answer.

Threads, one per connection, blocking sockets: simple, and the test's own process
stays free to drive the gateway. Stopped by ``stop()`` (sockets closed, threads end).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

HOST = "127.0.0.1"
PIECE = 64 * 1024

Action = Literal["answer", "cut", "stall", "hang"]


@dataclass
class Rule:
    action: Action
    method: str | None  # None: any method
    path: str  # the request path, without the query
    times: int | None  # None: for ever
    status: int = 503
    code: str = "SlowDown"
    after: int = 0
    early: bool = False  # answer before the request's body is read, then close

    def matches(self, method: str, path: str) -> bool:
        return (self.method in (None, method)) and path == self.path


@dataclass
class Seen:
    at: float  # time.monotonic()
    method: str
    path: str
    query: str


@dataclass
class Head:
    line: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes = b""

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class Closed(Exception):
    """The other side closed the connection."""


def read_head(stream: BinaryIO) -> Head:
    raw = b""
    line = stream.readline(65536)
    while line in (b"\r\n", b"\n"):  # stray empty lines between messages
        line = stream.readline(65536)
    if not line:
        raise Closed()
    raw += line
    head = Head(line.decode("latin-1").rstrip("\r\n"))
    while True:
        line = stream.readline(65536)
        if not line:
            raise Closed()
        raw += line
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        head.headers.append((name.strip(), value.strip()))
    head.raw = raw
    return head


def copy_exactly(source: BinaryIO, sink: socket.socket | None, length: int) -> None:
    while length:
        data = source.read(min(PIECE, length))
        if not data:
            raise Closed()
        if sink is not None:
            sink.sendall(data)
        length -= len(data)


def copy_chunked(source: BinaryIO, sink: socket.socket | None) -> None:
    while True:
        line = source.readline(65536)
        if not line:
            raise Closed()
        if sink is not None:
            sink.sendall(line)
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                line = source.readline(65536)
                if not line:
                    raise Closed()
                if sink is not None:
                    sink.sendall(line)
                if line in (b"\r\n", b"\n"):
                    return
        copy_exactly(source, sink, size + 2)  # the data and its CRLF


def copy_body(head: Head, source: BinaryIO, sink: socket.socket | None) -> None:
    """A request's body (none, Content-Length or chunked), relayed or dropped."""
    if "chunked" in (head.get("transfer-encoding") or "").lower():
        copy_chunked(source, sink)
    else:
        copy_exactly(source, sink, int(head.get("content-length") or 0))


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.seen: list[Seen] = []
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._released = threading.Event()  # wakes hung and stalled connections
        self._stopping = False
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> FaultProxy:
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        self._stopping = True
        self._released.set()
        _close(self._listener)  # shutdown() wakes the accept() (close() alone does not)
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            _close(sock)
        for thread in self._threads:
            thread.join(timeout=5)

    # -- rules -----------------------------------------------------------------------

    def _add(self, rule: Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def answer(
        self,
        path: str,
        method: str | None = None,
        status: int = 503,
        code: str = "SlowDown",
        times: int | None = None,
        early: bool = False,
    ) -> None:
        self._add(Rule("answer", method, path, times, status=status, code=code, early=early))

    def cut(self, path: str, after: int, method: str | None = "GET") -> None:
        self._add(Rule("cut", method, path, None, after=after))

    def stall(self, path: str, after: int, method: str | None = "GET") -> None:
        self._add(Rule("stall", method, path, None, after=after))

    def hang(self, path: str, method: str | None = None) -> None:
        self._add(Rule("hang", method, path, None))

    def clear(self) -> None:
        """No more faults; connections held by hang or stall are closed."""
        with self._lock:
            self._rules = []
        self._released.set()
        self._released = threading.Event()

    @contextmanager
    def faults(self) -> Iterator[FaultProxy]:
        try:
            yield self
        finally:
            self.clear()

    def requests(self, method: str, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and s.path == path]

    def _rule_for(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path) and rule.times != 0:
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    # -- connections -----------------------------------------------------------------

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._stopping:
                return False
            self._sockets.add(sock)
            return True

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._track(client):
                self._spawn(self._serve, client)
            else:
                _close(client)

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        from_client = client.makefile("rb")
        from_upstream: BinaryIO | None = None
        try:
            while True:
                head = read_head(from_client)
                method, target = head.line.split(" ")[:2]
                path, _, query = target.partition("?")
                with self._lock:
                    self.seen.append(Seen(time.monotonic(), method, path, query))
                rule = self._rule_for(method, path)
                if rule is not None and rule.early:
                    client.sendall(_error_answer(rule.status, rule.code, close=True))
                    return
                if rule is not None and rule.action in ("answer", "hang"):
                    copy_body(head, from_client, None)
                    if rule.action == "hang":
                        self._released.wait()
                        return
                    client.sendall(_error_answer(rule.status, rule.code))
                    continue
                if upstream is None:
                    upstream = socket.create_connection((HOST, self.upstream_port))
                    if not self._track(upstream):
                        return
                    from_upstream = upstream.makefile("rb")
                assert from_upstream is not None
                upstream.sendall(head.raw)
                copy_body(head, from_client, upstream)
                if not self._relay_answer(method, from_upstream, client, rule):
                    return
        except (Closed, OSError, ValueError):
            return
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    _close(sock)
                    with self._lock:
                        self._sockets.discard(sock)

    def _relay_answer(
        self, method: str, source: BinaryIO, client: socket.socket, rule: Rule | None
    ) -> bool:
        """Relay one answer; False when the connection is to be closed."""
        head = read_head(source)
        client.sendall(head.raw)
        status = int(head.line.split(" ")[1])
        bodiless = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        if rule is not None and not bodiless:
            copy_exactly(source, client, rule.after)
            if rule.action == "stall":
                self._released.wait()
            return False  # cut: the upstream is gone
        if bodiless:
            return True
        if "chunked" in (head.get("transfer-encoding") or "").lower():
            copy_chunked(source, client)
        elif head.get("content-length") is not None:
            copy_exactly(source, client, int(head.get("content-length") or 0))
        else:
            while data := source.read1(PIECE):  # type: ignore[attr-defined]
                client.sendall(data)
            return False
        return (head.get("connection") or "").lower() != "close"


def _error_answer(status: int, code: str, close: bool = False) -> bytes:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>Injected by the fault proxy.</Message><RequestId>fault</RequestId></Error>"
    ).encode()
    head = f"HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode() + body


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
