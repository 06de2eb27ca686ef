"""Hostile and slow clients against the real daemon: oversized header sections,
slowloris (while http.client and boto3 clients are served), an idle keep-alive
connection, a client that stops reading a 1 GiB GET, and more connections than
--max-connections. Everything runs on 127.0.0.1, with short timeouts so that the
whole module takes a few seconds."""

from __future__ import annotations

import http.client
import os
import selectors
import socket
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import boto3_client
from tests.integration.daemon import Daemon, read_status

HEADER_TIMEOUT = 2.0
IDLE_TIMEOUT = 1.0
SEND_TIMEOUT = 2.0
CAP = 5


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A filesystem daemon with short timeouts (data root: ``.root``)."""
    workdir = tmp_path_factory.mktemp("strict")
    root = workdir / "data"
    daemon = Daemon(
        backend=f"file:{root}",
        workdir=workdir,
        extra_args=[
            "--no-fsync",
            f"--header-timeout={HEADER_TIMEOUT:g}s",
            f"--idle-timeout={IDLE_TIMEOUT:g}s",
            f"--send-timeout={SEND_TIMEOUT:g}s",
            "--max-connections=400",
        ],
    ).start()
    daemon.root = root  # type: ignore[attr-defined]
    yield daemon
    daemon.stop()


@pytest.fixture
def bucket_of(strict: Daemon) -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def make() -> str:
        name = f"slow-{uuid.uuid4().hex[:12]}"
        assert request(strict, "PUT", f"/{name}")[0] == 200
        made.append(name)
        return name

    yield make
    for name in made:
        root: Path = strict.root  # type: ignore[attr-defined]
        for entry in os.listdir(root / name):
            request(strict, "DELETE", f"/{name}/{entry}")
        request(strict, "DELETE", f"/{name}")


def request(
    daemon: Daemon, method: str, path: str, body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes, float]:
    """(status, body, seconds taken) of one request on a new connection."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=timeout)
    try:
        conn.request(method, path, body)
        response = conn.getresponse()
        data = response.read()
        return response.status, data, time.monotonic() - started
    finally:
        conn.close()


def raw_exchange(daemon: Daemon, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a new connection, then read until the daemon closes it."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_to_end(sock)


def read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def logged(daemon: Daemon, text: str, within: float = 5.0) -> bool:
    """Whether the daemon logs ``text`` soon (its log is written in batches)."""
    deadline = time.monotonic() + within
    while text not in daemon.log_text():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def error_code(response: bytes, status: int) -> str:
    """The code of the S3 <Error> in a whole raw response, checked for its framing."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} "), response[:300]
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    assert headers["content-type"] == "application/xml"
    assert int(headers["content-length"]) == len(body)
    assert headers["connection"] == "close"
    root = ET.fromstring(body)
    fields = {child.tag: child.text or "" for child in root}
    assert fields["RequestId"] == headers["x-amz-request-id"]
    return fields["Code"]


# -- limits answered with S3 errors ---------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GET /b/k HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"x-amz-meta-m%d: %s\r\n" % (i, b"v" * 100) for i in range(90))
        + b"\r\n",
        b"GET /b/" + b"k" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /b/k HTTP/1.1\r\nHost: x\r\nx-long: " + b"v" * 20000 + b"\r\n\r\n",
        b"GET /b/k HTTP/1.1\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(600)) + b"\r\n",
    ],
    ids=["header-section-9k", "request-line-9k", "one-header-20k", "600-headers"],
)
def test_oversized_header_section(strict: Daemon, data: bytes) -> None:
    response = raw_exchange(strict, data)
    assert error_code(response, 400) == "RequestHeaderSectionTooLarge"
    assert b"<MaxSizeAllowed>8192</MaxSizeAllowed>" in response
    assert request(strict, "GET", "/")[0] == 200


def test_oversized_headers_followed_by_a_large_body_still_get_the_answer(strict: Daemon) -> None:
    """The daemon reads and drops what follows, so the client sees the error rather
    than a connection reset."""
    head = b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\nx-big: "
    data = head + b"v" * 10000 + b"\r\n\r\n" + b"b" * 4_000_000
    response = raw_exchange(strict, data)
    assert error_code(response, 400) == "RequestHeaderSectionTooLarge"


def test_not_http_is_bad_request(strict: Daemon) -> None:
    response = raw_exchange(strict, b"\x16\x03\x01 not http at all\r\n\r\n")
    assert error_code(response, 400) == "BadRequest"


def test_limits_answered_by_the_application_keep_the_connection(
    strict: Daemon, bucket_of: Callable[[], str]
) -> None:
    """A key over 1024 bytes and metadata over 2 KB: S3 errors, and the same
    keep-alive connection serves the next request."""
    bucket = bucket_of()
    conn = http.client.HTTPConnection("127.0.0.1", strict.port, timeout=10)
    try:
        conn.request("PUT", f"/{bucket}/{'k' * 1025}", b"x")
        response = conn.getresponse()
        assert (response.status, ET.fromstring(response.read()).findtext("Code")) == (
            400,
            "KeyTooLongError",
        )
        conn.request("PUT", f"/{bucket}/k", b"x", {"x-amz-meta-big": "v" * 2100})
        response = conn.getresponse()
        fields = ET.fromstring(response.read())
        assert (response.status, fields.findtext("Code")) == (400, "MetadataTooLarge")
        assert fields.findtext("MaxSizeAllowed") == "2048"
        conn.request("PUT", f"/{bucket}/k", b"x")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("method", "query"),
    [("PUT", "?tagging"), ("PUT", "?acl"), ("POST", "?uploadId={upload}")],
    ids=["PutObjectTagging", "PutObjectAcl", "CompleteMultipartUpload"],
)
def test_xml_body_over_the_limit(
    strict: Daemon, bucket_of: Callable[[], str], method: str, query: str
) -> None:
    bucket = bucket_of()
    assert request(strict, "PUT", f"/{bucket}/k", b"x")[0] == 200
    status, body, _ = request(strict, "POST", f"/{bucket}/k?uploads")
    assert status == 200
    upload = ET.fromstring(body).findtext("{http://s3.amazonaws.com/doc/2006-03-01/}UploadId")
    oversized = b"<Tagging>" + b" " * (3 * 1024 * 1024) + b"</Tagging>"
    conn = http.client.HTTPConnection("127.0.0.1", strict.port, timeout=10)
    try:
        conn.request(method, f"/{bucket}/k{query.format(upload=upload)}", oversized)
        response = conn.getresponse()
        answer = response.read()
        assert response.status == 400, answer
        assert ET.fromstring(answer).findtext("Code") == "MalformedXML"
        # The body was read to its end: the connection goes on with the next request.
        conn.request("GET", f"/{bucket}/k")
        second = conn.getresponse()
        assert (second.status, second.read()) == (200, b"x")
    finally:
        conn.close()
    request(strict, "DELETE", f"/{bucket}/k?uploadId={upload}")


# -- slowloris ------------------------------------------------------------------------

SLOWLORIS = 300


class Slowloris(threading.Thread):
    """Connections, opened a batch at a time, that each send a request's headers a
    byte at a time, forever, and collect whatever the daemon answers."""

    BATCH = 25
    ROUND = 0.05

    def __init__(self, port: int, count: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.count = count
        self.seconds = seconds
        self.socks: list[socket.socket] = []
        self.received: dict[int, bytes] = {}
        self.sent: dict[int, int] = {}
        self.opened_at: dict[int, float] = {}
        self.lasted: dict[int, float] = {}  # from opening to the daemon closing it

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        head = b"GET /slow HTTP/1.1\r\nHost: x\r\nx-slow: "
        started = time.monotonic()
        while time.monotonic() - started < self.seconds and len(self.lasted) < self.count:
            for _ in range(min(self.BATCH, self.count - len(self.socks))):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", self.port))
                selector.register(sock, selectors.EVENT_READ)
                self.socks.append(sock)
                fd = sock.fileno()
                self.received[fd], self.sent[fd] = b"", 0
                self.opened_at[fd] = time.monotonic()
            for sock in self.socks:
                fd = sock.fileno()
                if fd not in self.lasted:
                    try:
                        self.sent[fd] += sock.send(head[self.sent[fd] :][:1] or b"a")
                    except OSError:
                        pass  # still connecting, or cut after its answer (read below)
            for key, _ in selector.select(timeout=self.ROUND):
                self._read(key.fileobj, selector)  # type: ignore[arg-type]
        selector.close()

    def _read(self, sock: socket.socket, selector: selectors.BaseSelector) -> None:
        fd = sock.fileno()
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        self.received[fd] += data
        if not data:
            self.lasted[fd] = time.monotonic() - self.opened_at[fd]
            selector.unregister(sock)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def test_slowloris_does_not_stop_other_clients(
    strict: Daemon, bucket_of: Callable[[], str]
) -> None:
    bucket = bucket_of()
    s3 = boto3_client(strict.endpoint)
    s3.list_buckets()  # boto3's first call loads its models
    attack = Slowloris(strict.port, SLOWLORIS, HEADER_TIMEOUT + 8)
    try:
        attack.start()
        latencies = []
        number = 0
        while attack.is_alive() and len(attack.lasted) < SLOWLORIS / 2:
            status, _, seconds = request(strict, "PUT", f"/{bucket}/k{number}", b"data")
            assert status == 200
            started = time.monotonic()
            assert s3.get_object(Bucket=bucket, Key=f"k{number}")["Body"].read() == b"data"
            latencies += [seconds, time.monotonic() - started]
            number += 1
        attack.join(timeout=30)
        assert not attack.is_alive()
    finally:
        attack.close()
    assert number >= 5, "the other client barely got served"
    assert max(latencies) < 2.0, latencies
    # Every slow connection got its answer and was closed, soon after the timeout.
    assert len(attack.lasted) == SLOWLORIS
    for received in attack.received.values():
        assert error_code(received, 400) == "RequestTimeout"
    assert HEADER_TIMEOUT - 0.1 <= min(attack.lasted.values()), attack.lasted
    assert max(attack.lasted.values()) < HEADER_TIMEOUT + 4, attack.lasted


def test_idle_keepalive_connection_is_closed(strict: Daemon) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        rest = read_to_end(sock)  # the daemon closes it
        waited = time.monotonic() - started
    assert IDLE_TIMEOUT - 0.1 <= waited < IDLE_TIMEOUT + 2, waited
    assert b"HTTP/" not in rest  # closed without a word: it asked nothing


# -- a client that stops reading ------------------------------------------------------

GIB = 1024 * 1024 * 1024


def test_stalled_reader_of_a_1_gib_get(strict: Daemon, bucket_of: Callable[[], str]) -> None:
    bucket = bucket_of()
    root: Path = strict.root  # type: ignore[attr-defined]
    big = root / bucket / "big"
    with open(big, "wb") as f:  # a sparse file another program dropped in the bucket
        f.truncate(GIB)
    assert request(strict, "PUT", f"/{bucket}/small", b"small")[0] == 200
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    try:
        sock.connect(("127.0.0.1", strict.port))
        sock.sendall(f"GET /{bucket}/big HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = len(sock.recv(1024))
        started = time.monotonic()
        samples = []
        while time.monotonic() - started < SEND_TIMEOUT - 0.5:
            samples.append(read_status(strict.pid)["VmRSS"])
            status, body, seconds = request(strict, "GET", f"/{bucket}/small")
            assert (status, body) == (200, b"small") and seconds < 2.0, seconds
            time.sleep(0.1)
        assert max(samples) - min(samples) < 16 * 1024, samples  # kB: no growth
        # The daemon gives up on it (still unread: reading now would be progress).
        assert logged(strict, "our response was not read for", within=10)
        waited = time.monotonic() - started
        samples.append(read_status(strict.pid)["VmRSS"])
        assert max(samples) - min(samples) < 16 * 1024, samples
        # What was in flight arrives, then the cut.
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    assert received < 64 * 1024 * 1024
    assert waited < SEND_TIMEOUT + 5, waited


# -- the connection cap ---------------------------------------------------------------


def test_connections_over_the_cap_get_slow_down(make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon("memory:", f"--max-connections={CAP}")
    time.sleep(0.2)  # the daemon has seen the end of the launcher's probe connection
    held = [socket.create_connection(("127.0.0.1", daemon.port), timeout=10) for _ in range(CAP)]
    try:
        for sock in held:  # each one served: each one counted
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        status, body, _ = request(daemon, "GET", "/")
        assert status == 503
        assert ET.fromstring(body).findtext("Code") == "SlowDown"
        # An upload over the cap is answered without its body being taken first.
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
            head = b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
            sock.sendall(head)
            assert error_code(read_to_end(sock), 503) == "SlowDown"
        held.pop().close()
        deadline = time.monotonic() + 5
        while (status := request(daemon, "GET", "/")[0]) == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 200
    finally:
        for sock in held:
            sock.close()
    assert logged(daemon, "over --max-connections 5")
