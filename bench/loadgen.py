"""The load generator: an asyncio HTTP/1.1 keep-alive client over raw sockets.

Every server in the benchmark is driven by this one client, so the request bytes and the
client's cost per request are the same whatever answers them:

* ``SigV4Signer`` signs with ``UNSIGNED-PAYLOAD``. The signing key is derived once per
  day (four HMACs) and the date string once per second; a request then costs one SHA-256
  of the canonical request and one HMAC, both one-shot C calls (``hashlib``,
  ``hmac.digest``). botocore's signer builds an ``AWSRequest`` and re-derives the key on
  every call, about ten times the cost, so it is not used here.
* ``HttpConnection`` is a non-blocking socket driven with ``loop.sock_sendall`` and
  ``loop.sock_recv_into`` into one preallocated buffer: no transport, no stream buffer,
  and bodies are streamed through a ``Sink`` rather than collected when they are large.
* ``Pattern`` is the generated payload of the large tests: a random block repeated,
  sent as slices of a doubled copy (never a whole object in memory) and checked on the
  way back with ``bytearray.startswith`` (a ``memcmp`` that allocates nothing).

The client's own CPU is measured by the caller with ``time.thread_time()`` on the event
loop's thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"
RECV_SIZE = 1024 * 1024
SEND_SIZE = 1024 * 1024
BLOCK_SIZE = 1024 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})


def uri_encode(text: str, safe: str = "-_.~") -> str:
    """AWS's URI encoding: everything but unreserved characters (and ``safe``)."""
    return quote(text, safe=safe)


def canonical_query(params: dict[str, str]) -> str:
    """The query string as sent and as signed: sorted, each name and value encoded."""
    return "&".join(
        f"{uri_encode(k)}={uri_encode(v)}" for k, v in sorted(params.items(), key=lambda i: i[0])
    )


class SigV4Signer:
    """AWS Signature Version 4 for ``UNSIGNED-PAYLOAD`` requests, with the ``host``,
    ``x-amz-content-sha256`` and ``x-amz-date`` headers signed."""

    def __init__(
        self, access_key: str, secret_key: str, region: str = "us-east-1", service: str = "s3"
    ) -> None:
        self.access_key = access_key
        self._secret = secret_key
        self.region = region
        self.service = service
        self._second = -1
        self._day = ""
        self._amz_date = ""
        self._key = b""
        self._scope = ""
        self._auth_prefix = ""

    def _refresh(self, now: int) -> None:
        self._second = now
        self._amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = self._amz_date[:8]
        if day == self._day:
            return
        key = hmac.digest(f"AWS4{self._secret}".encode(), day.encode(), "sha256")
        for part in (self.region, self.service, "aws4_request"):
            key = hmac.digest(key, part.encode(), "sha256")
        self._day = day
        self._key = key
        self._scope = f"{day}/{self.region}/{self.service}/aws4_request"
        self._auth_prefix = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{self._scope}, "
            f"SignedHeaders={SIGNED_HEADERS}, Signature="
        )

    def headers(self, method: str, host: str, path: str, query: str) -> str:
        """The signing header lines (CRLF-terminated) for a request whose request-target
        is ``path`` (already URI-encoded) and ``?query`` (canonical, possibly empty)."""
        now = int(time.time())
        if now != self._second:
            self._refresh(now)
        amz_date = self._amz_date
        canonical = (
            f"{method}\n{path}\n{query}\nhost:{host}\n"
            f"x-amz-content-sha256:{UNSIGNED_PAYLOAD}\nx-amz-date:{amz_date}\n\n"
            f"{SIGNED_HEADERS}\n{UNSIGNED_PAYLOAD}"
        )
        string_to_sign = (
            f"AWS4-HMAC-SHA256\n{amz_date}\n{self._scope}\n"
            f"{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.digest(self._key, string_to_sign.encode(), "sha256").hex()
        return (
            f"X-Amz-Date: {amz_date}\r\nX-Amz-Content-Sha256: {UNSIGNED_PAYLOAD}\r\n"
            f"Authorization: {self._auth_prefix}{signature}\r\n"
        )


def build_request(
    method: str,
    host: str,
    path: str,
    query: str = "",
    signer: SigV4Signer | None = None,
    content_length: int | None = None,
) -> bytes:
    """The request head. ``path`` is URI-encoded already; ``query`` is canonical."""
    target = f"{path}?{query}" if query else path
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"
    if signer is not None:
        head += signer.headers(method, host, path, query)
    if content_length is not None:
        head += f"Content-Length: {content_length}\r\n"
    return (head + "\r\n").encode("latin-1")


# -- payloads ----------------------------------------------------------------------------


class Pattern:
    """An endless stream of one random block repeated. Byte ``i`` of an object that starts
    at ``offset`` is ``block[(offset + i) % len(block)]``."""

    def __init__(self, block: bytes) -> None:
        self.block = block
        self.size = len(block)
        self._double = memoryview(block + block)
        self._md5s: dict[tuple[int, int], str] = {}

    def slice(self, position: int, length: int) -> memoryview:
        """``length`` (at most the block size) bytes from stream position ``position``."""
        start = position % self.size
        return self._double[start : start + length]

    def iter_views(self, offset: int, length: int, size: int = SEND_SIZE) -> _PatternViews:
        return _PatternViews(self, offset, length, min(size, self.size))

    def md5(self, offset: int, length: int) -> str:
        """The hex MD5 of ``length`` bytes from ``offset`` (computed once, then cached)."""
        key = (offset % self.size, length)
        if key not in self._md5s:
            digest = hashlib.md5()
            for view in self.iter_views(offset, length):
                digest.update(view)
            self._md5s[key] = digest.hexdigest()
        return self._md5s[key]


class _PatternViews:
    def __init__(self, pattern: Pattern, offset: int, length: int, size: int) -> None:
        self._pattern = pattern
        self._position = offset
        self._end = offset + length
        self._size = size

    def __iter__(self) -> _PatternViews:
        return self

    def __next__(self) -> memoryview:
        if self._position >= self._end:
            raise StopIteration
        length = min(self._size, self._end - self._position)
        view = self._pattern.slice(self._position, length)
        self._position += length
        return view


@dataclass
class GeneratedBody:
    """A request body of ``length`` pattern bytes starting at ``offset``."""

    pattern: Pattern
    offset: int
    length: int


class Sink(Protocol):
    def feed(self, buffer: bytearray, start: int, end: int) -> None:
        """Take ``buffer[start:end]``; the buffer is reused after the call returns."""


class Collect:
    """Keeps the body (small responses: errors, listings, 1 KiB objects)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def feed(self, buffer: bytearray, start: int, end: int) -> None:
        self._parts.append(bytes(buffer[start:end]))

    @property
    def data(self) -> bytes:
        return b"".join(self._parts)


class PatternCheck:
    """Compares a streamed body with the pattern as it arrives; keeps nothing."""

    def __init__(self, pattern: Pattern, offset: int = 0) -> None:
        self._pattern = pattern
        self._position = offset
        self.received = 0
        self.mismatch_at: int | None = None

    def feed(self, buffer: bytearray, start: int, end: int) -> None:
        while start < end:
            length = min(end - start, self._pattern.size)
            if self.mismatch_at is None and not buffer.startswith(
                self._pattern.slice(self._position, length), start, start + length
            ):
                self.mismatch_at = self.received
            start += length
            self._position += length
            self.received += length


# -- the connection ----------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""

    def describe(self) -> str:
        return f"HTTP {self.status}: {self.body[:400]!r}"


class HttpError(RuntimeError):
    pass


class HttpConnection:
    """One keep-alive connection. Reconnects by itself after the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reconnects = 0
        self._sock: socket.socket | None = None
        self._buf = bytearray()  # received, not yet consumed (response heads)
        self._recv = bytearray(RECV_SIZE)  # what recv_into fills

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await loop.sock_connect(sock, (self.host, self.port))
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._buf.clear()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf.clear()

    async def request(
        self,
        head: bytes,
        body: bytes | GeneratedBody | None = None,
        sink: Sink | None = None,
        method_is_head: bool = False,
    ) -> Response:
        """Send one request and read its response. The body goes to ``sink`` when one is
        given (``Response.body`` is then empty), and is collected otherwise."""
        if self._sock is None:
            await self.connect()
            self.reconnects += 1
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        sock = self._sock
        try:
            if body is None or isinstance(body, bytes):
                await loop.sock_sendall(sock, head + body if body else head)
            else:
                await loop.sock_sendall(sock, head)
                for view in body.pattern.iter_views(body.offset, body.length):
                    await loop.sock_sendall(sock, view)
        except (BrokenPipeError, ConnectionResetError):
            # The server may have answered (an error) and closed before taking the body.
            pass
        response = await self._read_response(sock, sink, method_is_head)
        if response.headers.get("connection", "").lower() == "close":
            self.close()
        return response

    async def _fill(self, sock: socket.socket) -> None:
        n = await asyncio.get_running_loop().sock_recv_into(sock, self._recv)
        if n == 0:
            self.close()
            raise HttpError("connection closed by the server")
        self._buf += memoryview(self._recv)[:n]

    async def _read_response(
        self, sock: socket.socket, sink: Sink | None, method_is_head: bool
    ) -> Response:
        while True:
            end = self._buf.find(b"\r\n\r\n")
            while end < 0:
                await self._fill(sock)
                end = self._buf.find(b"\r\n\r\n")
            lines = self._buf[:end].decode("latin-1").split("\r\n")
            del self._buf[: end + 4]
            status = int(lines[0].split(" ", 2)[1])
            if 100 <= status < 200:
                continue  # 100 Continue and friends: the real response follows
            break
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        collect = Collect() if sink is None else None
        target: Sink = collect if collect is not None else sink  # type: ignore[assignment]
        if method_is_head or status in _NO_BODY_STATUSES:
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            await self._read_chunked(sock, target)
        elif "content-length" in headers:
            await self._read_length(sock, int(headers["content-length"]), target)
        else:  # the body runs to the end of the connection
            await self._read_to_close(sock, target)
        return Response(status, headers, collect.data if collect is not None else b"")

    async def _read_length(self, sock: socket.socket, length: int, sink: Sink) -> None:
        take = min(length, len(self._buf))
        if take:
            sink.feed(self._buf, 0, take)
            del self._buf[:take]
        remaining = length - take
        loop = asyncio.get_running_loop()
        view = memoryview(self._recv)
        while remaining:
            n = await loop.sock_recv_into(sock, view[: min(RECV_SIZE, remaining)])
            if n == 0:
                self.close()
                raise HttpError(f"connection closed with {remaining} body bytes missing")
            sink.feed(self._recv, 0, n)
            remaining -= n

    async def _read_line(self, sock: socket.socket) -> bytes:
        end = self._buf.find(b"\r\n")
        while end < 0:
            await self._fill(sock)
            end = self._buf.find(b"\r\n")
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    async def _read_chunked(self, sock: socket.socket, sink: Sink) -> None:
        while True:
            size = int((await self._read_line(sock)).split(b";")[0], 16)
            if size == 0:
                while await self._read_line(sock):  # trailers, up to the empty line
                    pass
                return
            await self._read_length(sock, size, sink)
            await self._read_line(sock)

    async def _read_to_close(self, sock: socket.socket, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        if self._buf:
            sink.feed(self._buf, 0, len(self._buf))
            self._buf.clear()
        while n := await loop.sock_recv_into(sock, self._recv):
            sink.feed(self._recv, 0, n)
        self.close()


async def open_connections(
    host: str, port: int, count: int, stagger: float = 0.01
) -> list[HttpConnection]:
    """``count`` connections, opened ``stagger`` seconds apart: as clients arrive, not in
    one burst (a burst lets the first process of a multi-process server that wakes up
    accept every connection; see docs/benchmark.md)."""
    connections = []
    for _ in range(count):
        connection = HttpConnection(host, port)
        await connection.connect()
        connections.append(connection)
        if stagger:
            await asyncio.sleep(stagger)
    return connections


def close_all(connections: list[HttpConnection]) -> None:
    for connection in connections:
        connection.close()


async def run_ops(
    connections: list[HttpConnection],
    count: int,
    op: Callable[[HttpConnection, int], Awaitable[None]],
) -> list[float]:
    """Run ``op(connection, i)`` for i in range(count), one at a time per connection, all
    connections at once; return each op's latency in seconds."""
    latencies: list[float] = []
    counter = iter(range(count))
    clock = time.perf_counter

    async def worker(connection: HttpConnection) -> None:
        for i in counter:
            started = clock()
            await op(connection, i)
            latencies.append(clock() - started)

    await asyncio.gather(*(worker(c) for c in connections))
    return latencies
