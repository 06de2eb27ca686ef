"""Bodies on the wire: disconnects mid-upload, 1 GiB through a small daemon, 100-continue,
slow and pipelining clients, and errors answered before the body was read.

Everything goes over a raw socket (or http.client) so the test controls exactly which
bytes are sent and when, and never holds a large body in memory.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import struct
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, read_status

MiB = 1024 * 1024


# -- a raw HTTP/1.1 connection --------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def __str__(self) -> str:
        return f"{self.status} {self.headers} {self.body[:300]!r}"


class Connection:
    """One keep-alive connection: send bytes as they are, read responses in order."""

    def __init__(self, daemon: Daemon, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=timeout)
        self.rfile = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        return self.rfile.readline(65537)

    def read_response(self, head: bool = False) -> RawResponse:
        status_line = self.read_line()
        assert status_line.startswith(b"HTTP/1.1 "), f"bad status line {status_line!r}"
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = self.read_line()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if head or status in (100, 204, 304):
            return RawResponse(status, headers, b"")
        if "content-length" in headers:
            return RawResponse(status, headers, self._read_exactly(int(headers["content-length"])))
        assert headers.get("transfer-encoding", "").lower() == "chunked", headers
        parts = []
        while size := int(self.read_line().split(b";")[0], 16):
            parts.append(self._read_exactly(size))
            self.read_line()
        while self.read_line() not in (b"\r\n", b""):
            pass
        return RawResponse(status, headers, b"".join(parts))

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        assert len(data) == size, f"short body: {len(data)} of {size}"
        return data

    def close(self, reset: bool = False) -> None:
        if reset:  # RST instead of FIN
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.sock.close()


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def simple(daemon: Daemon, method: str, path: str, body: bytes = b"") -> RawResponse:
    conn = Connection(daemon)
    try:
        headers = {"Content-Length": str(len(body))} if method in ("PUT", "POST") else {}
        conn.send(request_head(method, path, headers) + body)
        return conn.read_response(head=method == "HEAD")
    finally:
        conn.close()


def error_code(response: RawResponse) -> str:
    assert response.headers.get("content-type", "").startswith("application/xml"), str(response)
    root = ET.fromstring(response.body)
    assert root.tag == "Error", str(response)
    fields = {child.tag: child.text or "" for child in root}
    assert {"Code", "Message", "Resource", "RequestId"} <= set(fields), str(response)
    assert fields["RequestId"] == response.headers.get("x-amz-request-id"), str(response)
    return fields["Code"]


def etag_of(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def root_of(daemon: Daemon) -> Path:
    root: Path = daemon.root  # type: ignore[attr-defined]
    return root


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def raw_bucket(fs_daemon: Daemon) -> Iterator[str]:
    name = f"stream-{uuid.uuid4().hex[:12]}"
    assert simple(fs_daemon, "PUT", f"/{name}").status == 200
    yield name
    bucket_dir = root_of(fs_daemon) / name
    for path in sorted(bucket_dir.rglob("*"), reverse=True):
        if path.is_file():
            simple(fs_daemon, "DELETE", f"/{name}/{path.relative_to(bucket_dir).as_posix()}")
    simple(fs_daemon, "DELETE", f"/{name}")


# -- disconnects in the middle of an upload -------------------------------------------

TOTAL = 50 * MiB
SENT_BEFORE_CUT = 20 * MiB


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def aws_frame(data: bytes, signed: bool) -> bytes:
    extension = b";chunk-signature=" + b"0" * 64 if signed else b""
    return b"%x%s\r\n%s\r\n" % (len(data), extension, data)


def upload(framing: str, total: int) -> tuple[dict[str, str], Callable[[bytes], bytes]]:
    """Headers for a ``total``-byte upload in ``framing``, and how to frame a piece."""
    if framing == "content-length":
        return {"Content-Length": str(total)}, lambda piece: piece
    if framing == "chunked":
        return {"Transfer-Encoding": "chunked"}, http_chunk
    if framing == "aws-chunked":  # boto3 >= 1.36: aws-chunked frames inside HTTP chunks
        headers = {
            "Transfer-Encoding": "chunked",
            "Content-Encoding": "aws-chunked",
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "x-amz-decoded-content-length": str(total),
            "x-amz-trailer": "x-amz-checksum-crc32",
        }
        return headers, lambda piece: http_chunk(aws_frame(piece, signed=False))
    assert framing == "aws-chunked-signed"  # SigV4 streaming: aws-chunked, Content-Length
    pieces, rest = divmod(total, MiB)
    encoded = pieces * len(aws_frame(b"x" * MiB, True)) + len(aws_frame(b"", True))
    if rest:
        encoded += len(aws_frame(b"x" * rest, True))
    headers = {
        "Content-Length": str(encoded),
        "Content-Encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-decoded-content-length": str(total),
    }
    return headers, lambda piece: aws_frame(piece, signed=True)


FRAMINGS = ["content-length", "chunked", "aws-chunked", "aws-chunked-signed"]


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("framing", FRAMINGS)
def test_disconnect_mid_upload(
    fs_daemon: Daemon, raw_bucket: str, framing: str, reset: bool
) -> None:
    root = root_of(fs_daemon)
    tmp = root / ".s3proxy" / "tmp"
    headers, frame = upload(framing, TOTAL)
    block = os.urandom(MiB)
    conn = Connection(fs_daemon)
    try:
        conn.send(request_head("PUT", f"/{raw_bucket}/cut", headers))
        for _ in range(SENT_BEFORE_CUT // MiB):
            conn.send(frame(block))
        framed = frame(block)
        conn.send(framed[: len(framed) // 2])  # cut inside a frame
        # The body is streaming into a temporary file, not buffered whole.
        assert wait_for(lambda: any(tmp.iterdir())), "no temporary file while uploading"
    finally:
        conn.close(reset=reset)

    def gone() -> bool:
        return not any(tmp.iterdir()) and not any((root / raw_bucket).iterdir())

    assert wait_for(gone), (
        f"left behind: {list(tmp.iterdir())} {list((root / raw_bucket).iterdir())}"
    )
    reply = simple(fs_daemon, "HEAD", f"/{raw_bucket}/cut")
    assert reply.status == 404, str(reply)
    reply = simple(fs_daemon, "GET", f"/{raw_bucket}?list-type=2")
    assert reply.status == 200 and b"<Key>" not in reply.body, str(reply)


def test_truncated_aws_chunked_body_in_a_complete_request(
    fs_daemon: Daemon, raw_bucket: str
) -> None:
    """The HTTP framing ends cleanly but the aws-chunked frames inside it do not."""
    headers, _ = upload("aws-chunked", 3 * MiB)
    body = aws_frame(os.urandom(MiB), False) + aws_frame(os.urandom(MiB), False)[:1000]
    conn = Connection(fs_daemon)
    try:
        conn.send(request_head("PUT", f"/{raw_bucket}/short", headers))
        conn.send(http_chunk(body) + b"0\r\n\r\n")
        reply = conn.read_response()
    finally:
        conn.close()
    assert 400 <= reply.status < 500, str(reply)
    assert error_code(reply) in ("IncompleteBody", "InvalidRequest")
    assert simple(fs_daemon, "HEAD", f"/{raw_bucket}/short").status == 404
    assert wait_for(lambda: not any((root_of(fs_daemon) / ".s3proxy" / "tmp").iterdir()))


# -- 1 GiB through a daemon that stays small ------------------------------------------

GiB = 1024 * MiB
RSS_LIMIT_KB = 100 * 1000  # 100 MB


class RssSampler(threading.Thread):
    """VmRSS of ``pid`` every 50 ms, until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kb = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                rss = read_status(self.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            self.peak_kb = max(self.peak_kb, rss)
            self.samples += 1
            self._stop_event.wait(0.05)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak_kb


@pytest.fixture
def big_daemon(make_daemon: Callable[..., Daemon]) -> Iterator[Daemon]:
    """A dedicated filesystem daemon whose data is removed as soon as the test ends."""
    daemon = make_daemon(None, "--no-fsync")
    yield daemon
    daemon.stop()
    shutil.rmtree(daemon.workdir / "data", ignore_errors=True)


def blocks(block: bytes, count: int) -> Iterator[bytes]:
    for _ in range(count):
        yield block


def test_one_gib_put_and_get_keep_rss_small(big_daemon: Daemon) -> None:
    data_root = big_daemon.workdir / "data"
    assert simple(big_daemon, "PUT", "/big").status == 200
    block = os.urandom(MiB)
    sampler = RssSampler(big_daemon.pid)
    sampler.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", big_daemon.port, timeout=120)
        conn.putrequest("PUT", "/big/one-gib", skip_accept_encoding=True)
        conn.putheader("Content-Length", str(GiB))
        conn.endheaders()
        sent = hashlib.md5()
        started = time.monotonic()
        for piece in blocks(block, GiB // MiB):
            conn.send(piece)
            sent.update(piece)
        response = conn.getresponse()
        put_body = response.read()
        put_seconds = time.monotonic() - started
        assert response.status == 200, put_body
        assert response.getheader("ETag") == f'"{sent.hexdigest()}"'
        assert (data_root / "big" / "one-gib").stat().st_size == GiB

        conn.request("GET", "/big/one-gib")
        started = time.monotonic()
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") == str(GiB)
        received = hashlib.md5()
        size = 0
        while piece := response.read(MiB):
            received.update(piece)
            size += len(piece)
        get_seconds = time.monotonic() - started
        conn.close()
    finally:
        peak_kb = sampler.stop()
    hwm_kb = read_status(big_daemon.pid)["VmHWM"]
    print(
        f"\n1 GiB PUT {GiB / MiB / put_seconds:.0f} MB/s, GET {GiB / MiB / get_seconds:.0f} MB/s;"
        f" daemon RSS peak {peak_kb / 1000:.1f} MB ({sampler.samples} samples),"
        f" VmHWM {hwm_kb / 1000:.1f} MB"
    )
    assert size == GiB
    assert received.hexdigest() == sent.hexdigest()
    assert sampler.samples > 10
    assert peak_kb < RSS_LIMIT_KB, f"RSS peaked at {peak_kb} kB"
    assert hwm_kb < RSS_LIMIT_KB, f"VmHWM {hwm_kb} kB"
    assert simple(big_daemon, "DELETE", "/big/one-gib").status == 204
    assert not (data_root / "big" / "one-gib").exists()
    assert not any((data_root / ".s3proxy" / "tmp").iterdir())


# -- Expect: 100-continue -------------------------------------------------------------


def test_expect_100_continue(fs_daemon: Daemon, raw_bucket: str) -> None:
    body = os.urandom(MiB + 17)
    conn = Connection(fs_daemon, timeout=5)
    try:
        headers = {"Content-Length": str(len(body)), "Expect": "100-continue"}
        conn.send(request_head("PUT", f"/{raw_bucket}/continued", headers))
        # Nothing of the body has been sent yet.
        assert conn.read_line() == b"HTTP/1.1 100 Continue\r\n"
        assert conn.read_line() == b"\r\n"
        conn.send(body)
        reply = conn.read_response()
        assert reply.status == 200, str(reply)
        assert reply.headers["etag"] == etag_of(body)
        conn.send(request_head("GET", f"/{raw_bucket}/continued", {}))
        reply = conn.read_response()
        assert reply.status == 200 and reply.body == body
    finally:
        conn.close()


# -- slow and pipelining clients ------------------------------------------------------


def test_slow_client(fs_daemon: Daemon, raw_bucket: str) -> None:
    body = os.urandom(2 * MiB)
    piece = 64 * 1024
    conn = Connection(fs_daemon)
    try:
        conn.send(request_head("PUT", f"/{raw_bucket}/slow", {"Content-Length": str(len(body))}))
        for offset in range(0, len(body), piece):
            conn.send(body[offset : offset + piece])
            time.sleep(0.02)
        reply = conn.read_response()
    finally:
        conn.close()
    assert reply.status == 200, str(reply)
    assert reply.headers["etag"] == etag_of(body)
    reply = simple(fs_daemon, "GET", f"/{raw_bucket}/slow")
    assert reply.status == 200 and reply.body == body
    assert (root_of(fs_daemon) / raw_bucket / "slow").read_bytes() == body


def test_keep_alive_puts_on_one_connection(fs_daemon: Daemon, raw_bucket: str) -> None:
    first, second = os.urandom(300_000), os.urandom(2 * MiB + 1)
    conn = Connection(fs_daemon)
    try:
        for key, body in (("first", first), ("second", second)):
            headers = {"Content-Length": str(len(body))}
            conn.send(request_head("PUT", f"/{raw_bucket}/{key}", headers) + body)
            reply = conn.read_response()
            assert reply.status == 200, str(reply)
            assert reply.headers["etag"] == etag_of(body)
            assert reply.headers.get("connection", "").lower() != "close"
        for key, body in (("first", first), ("second", second)):
            conn.send(request_head("GET", f"/{raw_bucket}/{key}", {}))
            reply = conn.read_response()
            assert reply.status == 200 and reply.body == body
    finally:
        conn.close()


def test_pipelined_requests(fs_daemon: Daemon, raw_bucket: str) -> None:
    """Three requests in one write: two PUTs (one large enough to be paused for) and a
    GET; the answers come back in order, each for its own request."""
    first, second = os.urandom(5 * MiB), os.urandom(200_000)
    wire = (
        request_head("PUT", f"/{raw_bucket}/p1", {"Content-Length": str(len(first))})
        + first
        + request_head("PUT", f"/{raw_bucket}/p2", {"Content-Length": str(len(second))})
        + second
        + request_head("GET", f"/{raw_bucket}/p1", {})
        + request_head("HEAD", f"/{raw_bucket}/p2", {})
    )
    conn = Connection(fs_daemon)
    sender = threading.Thread(target=conn.send, args=(wire,), daemon=True)
    try:
        sender.start()
        put1, put2 = conn.read_response(), conn.read_response()
        get1, head2 = conn.read_response(), conn.read_response(head=True)
        sender.join(10)
    finally:
        conn.close()
    assert (put1.status, put1.headers["etag"]) == (200, etag_of(first))
    assert (put2.status, put2.headers["etag"]) == (200, etag_of(second))
    assert get1.status == 200 and get1.body == first
    assert head2.status == 200 and head2.headers["content-length"] == str(len(second))


# -- errors before the body was read --------------------------------------------------

EARLY_ERRORS = [
    # (path, extra headers, status, code)
    ("/no-such-bucket-{u}/key", {}, 404, "NoSuchBucket"),
    ("/no-such-bucket-{u}/key", {"Expect": "100-continue"}, 404, "NoSuchBucket"),
    ("/{b}/../x", {}, 400, "InvalidArgument"),
    ("/{b}/" + "k" * 1100, {}, 400, "KeyTooLongError"),
]


@pytest.mark.parametrize(("path", "extra", "status", "code"), EARLY_ERRORS)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_early_error_with_unread_body(
    fs_daemon: Daemon,
    raw_bucket: str,
    path: str,
    extra: dict[str, str],
    status: int,
    code: str,
    framing: str,
) -> None:
    total = 5 * MiB
    headers, frame = upload(framing, total)
    target = path.format(u=uuid.uuid4().hex[:8], b=raw_bucket)
    block = os.urandom(MiB)
    conn = Connection(fs_daemon, timeout=15)
    send_errors: list[BaseException] = []

    def send_body() -> None:
        # A client sends its whole body while (maybe) the answer is already there.
        try:
            for _ in range(total // MiB):
                conn.send(frame(block))
            if framing == "chunked":
                conn.send(b"0\r\n\r\n")
        except OSError as e:
            send_errors.append(e)

    try:
        conn.send(request_head("PUT", target, {**headers, **extra}))
        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        line = conn.read_line()
        if line == b"HTTP/1.1 100 Continue\r\n":
            assert conn.read_line() == b"\r\n"
            line = conn.read_line()
        assert line.startswith(b"HTTP/1.1 %d " % status), line
        # The rest of the response, with the status line already read.
        rest = RawResponse(status, {}, b"")
        while (header := conn.read_line()) not in (b"\r\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            rest.headers[name.strip().lower()] = value.strip()
        rest.body = conn._read_exactly(int(rest.headers["content-length"]))
        sender.join(15)
        assert error_code(rest) == code
        if rest.headers.get("connection", "").lower() != "close":
            # Still in step: the body was read to its end, not taken for a request.
            conn.send(request_head("HEAD", f"/{raw_bucket}", {}))
            assert conn.read_response(head=True).status == 200
    finally:
        conn.close()
    assert not any((root_of(fs_daemon) / raw_bucket).iterdir())
