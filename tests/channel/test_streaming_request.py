"""Byte-level tests of the streaming request path: HTTPChannel over a StringTransport.

No sockets and no running reactor: the site's reactor is a ``Clock`` (advancing it
starts the early processing ``S3Request.gotLength`` schedules), and MemoryStorage
answers synchronously, so every response is in ``transport.value()`` as soon as the
bytes that complete it were fed.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IConsumer, IProducer, IPushProducer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.python.failure import Failure
from twisted.web import http
from zope.interface import implementer

from s3proxy.config import Settings
from s3proxy.errors import NoSuchKey
from s3proxy.interfaces import IObjectWriter
from s3proxy.model import ObjectAttributes, ObjectInfo
from s3proxy.storage.memory import MemoryStorage
from s3proxy.web.app import S3Application
from s3proxy.web.request import S3Request, make_site

BUCKET = "bkt"
T = TypeVar("T")


# -- plumbing ------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def parse_responses(data: bytes, methods: list[str] | None = None) -> list[Response]:
    """Every response in ``data`` (interim 1xx ones included). ``methods`` names the
    request each final response answers, so that HEAD responses have no body."""
    methods = list(methods or [])
    out: list[Response] = []
    pos = 0
    while pos < len(data):
        end = data.index(b"\r\n\r\n", pos)
        lines = data[pos:end].decode("latin-1").split("\r\n")
        pos = end + 4
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        assert version == "HTTP/1.1", lines[0]
        response = Response(int(status), reason)
        for line in lines[1:]:
            name, _, value = line.partition(":")
            response.headers.setdefault(name.strip().lower(), []).append(value.strip())
        out.append(response)
        if 100 <= response.status < 200:
            continue
        method = methods.pop(0) if methods else "GET"
        if method == "HEAD" or response.status in (204, 304):
            continue
        length = response.header("content-length")
        if length is not None:
            response.body = data[pos : pos + int(length)]
            assert len(response.body) == int(length), "truncated response body"
            pos += int(length)
        elif response.header("transfer-encoding") == "chunked":
            body = bytearray()
            while True:
                line_end = data.index(b"\r\n", pos)
                size = int(data[pos:line_end].split(b";")[0], 16)
                pos = line_end + 2
                body += data[pos : pos + size]
                pos += size + 2
                if size == 0:
                    break
            response.body = bytes(body)
        else:
            response.body = data[pos:]
            pos = len(data)
    return out


def request_bytes(
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    length: int | None = None,
) -> bytes:
    """A request's bytes: the head, then ``body`` if given. ``length`` sets
    Content-Length for a body the test feeds separately."""
    lines = [f"{method} {target} HTTP/1.1", "Host: s3.example.com"]
    headers = dict(headers or {})
    if length is not None:
        headers["Content-Length"] = str(length)
    elif body is not None and not any(k.lower() == "transfer-encoding" for k in headers):
        headers["Content-Length"] = str(len(body))
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def http_chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def crc32_b64(payload: bytes) -> bytes:
    return base64.b64encode(zlib.crc32(payload).to_bytes(4, "big"))


def aws_chunked_unsigned(payload: bytes, size: int, crc: bytes | None = None) -> bytes:
    """boto3's framing: the CRC32 of the payload (or ``crc``) in the trailer."""
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    trailer = crc if crc is not None else crc32_b64(payload)
    return framed + b"0\r\nx-amz-checksum-crc32:" + trailer + b"\r\n\r\n"


def aws_chunked_signed(payload: bytes, size: int) -> bytes:
    signature = b"c0ffee" + b"0" * 58
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)] + [b""]
    return b"".join(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(p), signature, p) for p in pieces)


def payload_of(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def quoted_md5(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


class Connection:
    """One client connection to a fresh site."""

    def __init__(self, storage: MemoryStorage | None = None, disconnecting: bool = False) -> None:
        self.clock = Clock()
        self.storage = storage if storage is not None else MemoryStorage()
        self.site = make_site(S3Application(self.storage, Settings()).resource(), self.clock)
        self.protocol: http.HTTPChannel = self.site.buildProtocol(None)
        self.transport: StringTransport
        if disconnecting:
            transport = StringTransportWithDisconnection()
            transport.protocol = self.protocol
            self.transport = transport
        else:
            self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def feed(self, data: bytes, size: int | None = None) -> None:
        step = size or max(len(data), 1)
        for i in range(0, len(data), step):
            self.protocol.dataReceived(data[i : i + step])

    def start(self) -> None:
        """Let the reactor run what S3Request.gotLength scheduled."""
        self.clock.advance(0)

    def take(self, methods: list[str] | None = None) -> list[Response]:
        """The responses written since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return parse_responses(data, methods)

    def call(self, method: str, target: str, **kwargs: Any) -> Response:
        self.feed(request_bytes(method, target, **kwargs))
        self.start()
        [response] = self.take([method])
        return response

    def create_bucket(self, name: str = BUCKET) -> None:
        assert self.call("PUT", f"/{name}").status == 200

    def stored(self, key: str, bucket: str = BUCKET) -> bytes | None:
        """The object's bytes as the storage holds them, or None if there is none."""
        try:
            reader = result_of(self.storage.open_reader(bucket, key, None))
        except NoSuchKey:
            return None
        consumer = Collector()
        result_of(reader.start(consumer))
        return b"".join(consumer.parts)

    def keys(self, bucket: str = BUCKET) -> list[str]:
        page = result_of(self.storage.list_objects(bucket, "", "", "", 1000))
        return [info.key for info in page.objects]

    def buckets(self) -> list[str]:
        return [b.name for b in result_of(self.storage.list_buckets())]


def result_of(d: Deferred[T]) -> T:
    """The result of a Deferred that has already fired (MemoryStorage is synchronous)."""
    results: list[T] = []
    failures: list[Failure] = []
    d.addCallbacks(results.append, failures.append)
    if failures:
        failures[0].raiseException()
    assert results, "the Deferred has not fired"
    return results[0]


@implementer(IConsumer)
class Collector:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.parts.append(data)


@pytest.fixture
def conn() -> Connection:
    c = Connection()
    c.create_bucket()
    return c


def assert_error(response: Response, status: int, code: str) -> None:
    assert response.status == status
    assert response.header("content-type") == "application/xml"
    assert response.header("content-length") == str(len(response.body))
    assert re.search(rb"<Code>%s</Code>" % code.encode(), response.body), response.body


# -- PutObject with Content-Length, in slices ---------------------------------------------


@pytest.mark.parametrize("early", [True, False], ids=["streamed", "buffered-first"])
@pytest.mark.parametrize(
    ("slice_size", "size"),
    [(1, 5_000), (7, 70_001), (64 * 1024, 3 * 64 * 1024 + 123)],
    ids=["1B", "7B", "64KiB"],
)
def test_put_object_in_slices(conn: Connection, slice_size: int, size: int, early: bool) -> None:
    body = payload_of(size)
    conn.feed(request_bytes("PUT", f"/{BUCKET}/key", length=size))
    if early:
        conn.start()  # the handler runs and attaches the storage writer now
    assert conn.transport.value() == b""
    conn.feed(body, slice_size)
    [response] = conn.take(["PUT"])
    assert response.status == 200, response
    assert response.header("etag") == quoted_md5(body)
    assert response.header("content-length") == "0"
    assert response.header("connection") is None
    assert conn.stored("key") == body

    got = conn.call("GET", f"/{BUCKET}/key")
    assert got.status == 200
    assert got.header("content-length") == str(size)
    assert got.header("etag") == quoted_md5(body)
    assert got.body == body


def test_put_object_under_the_prefix(conn: Connection) -> None:
    body = b"prefixed"
    response = conn.call("PUT", f"/api/v1/s3/{BUCKET}/a%2Fb//c", body=body)
    assert response.status == 200
    assert conn.stored("a/b//c") == body
    assert conn.call("GET", f"/{BUCKET}/a%2Fb//c").body == body


def test_put_empty_object(conn: Connection) -> None:
    response = conn.call("PUT", f"/{BUCKET}/empty", body=b"")
    assert response.status == 200
    assert response.header("etag") == quoted_md5(b"")
    got = conn.call("GET", f"/{BUCKET}/empty")
    assert got.status == 200
    assert got.header("content-length") == "0"
    assert got.body == b""


# -- Transfer-Encoding: chunked and aws-chunked -------------------------------------------


@pytest.mark.parametrize("slice_size", [1, 5, 4096])
def test_put_object_transfer_encoding_chunked(conn: Connection, slice_size: int) -> None:
    body = payload_of(20_000, seed=2)
    head = request_bytes("PUT", f"/{BUCKET}/chunked", headers={"Transfer-Encoding": "chunked"})
    conn.feed(head)
    conn.start()
    conn.feed(http_chunked(body, 3000), slice_size)
    [response] = conn.take(["PUT"])
    assert response.status == 200
    assert response.header("etag") == quoted_md5(body)
    assert conn.call("GET", f"/{BUCKET}/chunked").body == body


def _aws_headers(decoded_length: int, signed: bool) -> dict[str, str]:
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(decoded_length),
        "Content-Type": "text/plain",
    }
    if signed:
        headers["x-amz-content-sha256"] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    else:
        headers["x-amz-content-sha256"] = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        headers["x-amz-trailer"] = "x-amz-checksum-crc32"
    return headers


@pytest.mark.parametrize("slice_size", [1, 13, 64 * 1024])
def test_put_object_aws_chunked_boto3_style(conn: Connection, slice_size: int) -> None:
    """boto3 >= 1.36: Transfer-Encoding chunked around aws-chunked with a trailer."""
    payload = payload_of(9_000 if slice_size == 1 else 150_000, seed=3)
    framed = aws_chunked_unsigned(payload, 8192)
    headers = _aws_headers(len(payload), signed=False) | {"Transfer-Encoding": "chunked"}
    conn.feed(request_bytes("PUT", f"/{BUCKET}/aws", headers=headers))
    conn.start()
    conn.feed(http_chunked(framed, 5000), slice_size)
    [response] = conn.take(["PUT"])
    assert response.status == 200, response
    assert response.header("etag") == quoted_md5(payload)
    assert conn.stored("aws") == payload

    head = conn.call("HEAD", f"/{BUCKET}/aws")
    assert head.header("content-length") == str(len(payload))
    assert head.header("content-encoding") is None  # the framing is not the object's
    assert head.header("content-type") == "text/plain"
    got = conn.call("GET", f"/{BUCKET}/aws")
    assert got.body == payload


@pytest.mark.parametrize("early", [True, False], ids=["streamed", "buffered-first"])
def test_put_object_aws_chunked_signed_with_content_length(conn: Connection, early: bool) -> None:
    payload = payload_of(70_000, seed=4)
    framed = aws_chunked_signed(payload, 65536)
    headers = _aws_headers(len(payload), signed=True) | {"Content-Encoding": "aws-chunked,gzip"}
    conn.feed(request_bytes("PUT", f"/{BUCKET}/signed", headers=headers, length=len(framed)))
    if early:
        conn.start()
    conn.feed(framed, 1000)
    [response] = conn.take(["PUT"])
    assert response.status == 200, response
    assert response.header("etag") == quoted_md5(payload)
    assert conn.stored("signed") == payload
    got = conn.call("GET", f"/{BUCKET}/signed")
    assert got.body == payload
    assert got.header("content-encoding") == "gzip"


@pytest.mark.parametrize(
    ("framed", "code"),
    [
        (b"5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n", "InvalidRequest"),
        (b"5\r\nhelloXX0\r\n\r\n", "InvalidRequest"),
        (b"5\r\nhello\r\n0\r\n\r\ntrailing garbage", "InvalidRequest"),
        (b"5\r\nhello\r\n", "IncompleteBody"),
    ],
    ids=["bad-hex", "no-crlf", "after-final", "truncated"],
)
@pytest.mark.parametrize("early", [True, False], ids=["streamed", "buffered-first"])
def test_put_object_aws_chunked_malformed(
    conn: Connection, framed: bytes, code: str, early: bool
) -> None:
    headers = _aws_headers(5, signed=False)
    conn.feed(request_bytes("PUT", f"/{BUCKET}/bad", headers=headers, length=len(framed)))
    if early:
        conn.start()
    conn.feed(framed)
    [response] = conn.take(["PUT"])
    assert_error(response, 400, code)
    assert conn.stored("bad") is None


def test_put_object_aws_chunked_wrong_decoded_length(conn: Connection) -> None:
    framed = aws_chunked_unsigned(b"hello", 5)
    headers = _aws_headers(6, signed=False) | {"Transfer-Encoding": "chunked"}
    conn.feed(request_bytes("PUT", f"/{BUCKET}/short", headers=headers))
    conn.start()
    conn.feed(http_chunked(framed, 100))
    [response] = conn.take(["PUT"])
    assert_error(response, 400, "IncompleteBody")
    assert conn.stored("short") is None


# -- Expect: 100-continue ------------------------------------------------------------------


def test_expect_100_continue(conn: Connection) -> None:
    body = payload_of(10_000, seed=5)
    headers = {"Expect": "100-continue"}
    conn.feed(request_bytes("PUT", f"/{BUCKET}/expect", headers=headers, length=len(body)))
    # The interim response goes out before any body byte was sent...
    assert conn.transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.start()
    assert conn.transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.feed(body[:5000], 999)
    assert conn.transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.feed(body[5000:], 999)
    # ...and the final response after the body.
    interim, final = conn.take(["PUT"])
    assert interim.status == 100
    assert final.status == 200
    assert final.header("etag") == quoted_md5(body)
    assert conn.stored("expect") == body


# -- backpressure --------------------------------------------------------------------------


@implementer(IObjectWriter)
class PausingWriter:
    """Wraps a storage writer; pauses its producer on the first write, until the test
    calls ``resume``."""

    def __init__(self, inner: IObjectWriter) -> None:
        self.inner = inner
        self.producer: IPushProducer | None = None
        self.writes = 0
        self.unregistered = False
        self.aborted = False

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        assert streaming and IPushProducer.providedBy(producer)
        self.producer = IPushProducer(producer)
        self.inner.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.unregistered = True
        self.inner.unregisterProducer()

    def write(self, data: bytes) -> None:
        self.inner.write(data)
        self.writes += 1
        if self.writes == 1:
            assert self.producer is not None
            self.producer.pauseProducing()

    def resume(self) -> None:
        assert self.producer is not None
        self.producer.resumeProducing()

    def finish(self, checksums: Mapping[str, str] | None = None) -> Deferred[ObjectInfo]:
        return self.inner.finish(checksums)

    def abort(self) -> Deferred[None]:
        self.aborted = True
        return self.inner.abort()


class PausingStorage(MemoryStorage):
    """MemoryStorage whose writers pause the upload on their first write."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: list[PausingWriter] = []

    def open_writer(
        self,
        bucket: str,
        key: str,
        attributes: ObjectAttributes,
        content_md5: bytes | None,
        expected_size: int | None,
        create_only: bool = False,
    ) -> Deferred[Any]:
        def wrap(inner: IObjectWriter) -> PausingWriter:
            writer = PausingWriter(inner)
            self.writers.append(writer)
            return writer

        d: Deferred[Any] = super().open_writer(
            bucket, key, attributes, content_md5, expected_size, create_only
        )
        return d.addCallback(wrap)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_backpressure_pauses_and_resumes_the_transport(chunked: bool) -> None:
    storage = PausingStorage()
    conn = Connection(storage)
    conn.create_bucket()
    body = payload_of(200_000, seed=6)
    if chunked:
        head = request_bytes("PUT", f"/{BUCKET}/slow", headers={"Transfer-Encoding": "chunked"})
        wire = http_chunked(body, 10_000)
    else:
        head = request_bytes("PUT", f"/{BUCKET}/slow", length=len(body))
        wire = body
    conn.feed(head)
    assert storage.writers == []
    conn.start()  # processing starts on the site's reactor, before any body byte
    [writer] = storage.writers
    assert conn.transport.producerState == "producing"

    conn.feed(wire[:20_000], 4096)
    assert writer.writes == 1
    assert conn.transport.producerState == "paused"
    # The client keeps sending what was already in flight: it waits, unread by storage.
    conn.feed(wire[20_000:150_000], 4096)
    assert conn.transport.producerState == "paused"
    assert writer.writes == 1
    assert conn.transport.value() == b""

    writer.resume()
    assert conn.transport.producerState == "producing"
    assert writer.writes > 1
    conn.feed(wire[150_000:], 4096)
    [response] = conn.take(["PUT"])
    assert response.status == 200
    assert response.header("etag") == quoted_md5(body)
    assert writer.unregistered
    assert not writer.aborted
    assert conn.stored("slow") == body
    assert conn.transport.producerState == "producing"


def test_body_buffer_pauses_the_transport_until_a_consumer_attaches(conn: Connection) -> None:
    """Before the handler attached a writer, at most about 1 MiB is buffered."""
    body = payload_of(3 * 1024 * 1024, seed=7)
    conn.feed(request_bytes("PUT", f"/{BUCKET}/big", length=len(body)))
    conn.feed(body[: 1024 * 1024 + 64 * 1024], 64 * 1024)
    assert conn.transport.producerState == "paused"
    conn.start()
    assert conn.transport.producerState == "producing"
    conn.feed(body[1024 * 1024 + 64 * 1024 :], 64 * 1024)
    [response] = conn.take(["PUT"])
    assert response.status == 200
    assert response.header("etag") == quoted_md5(body)
    assert conn.stored("big") == body


# -- bodies are never parsed as forms ------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz"],
)
@pytest.mark.parametrize("early", [True, False], ids=["streamed", "buffered-first"])
def test_form_put_body_is_stored_verbatim(conn: Connection, content_type: str, early: bool) -> None:
    body = b"a=1&b=%20two&c=" + b"x" * 300 + b"\r\n--xyz--\r\n"
    conn.feed(
        request_bytes("PUT", f"/{BUCKET}/form", headers={"Content-Type": content_type}, body=body)
    )
    if early:
        conn.start()
    [response] = conn.take(["PUT"])
    assert response.status == 200
    got = conn.call("GET", f"/{BUCKET}/form")
    assert got.body == body
    assert got.header("content-type") == content_type


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz"],
)
def test_form_post_body_reaches_the_handler(conn: Connection, content_type: str) -> None:
    assert conn.call("PUT", f"/{BUCKET}/doomed", body=b"x").status == 200
    document = b"<Delete><Object><Key>doomed</Key></Object></Delete>"
    response = conn.call(
        "POST", f"/{BUCKET}?delete", headers={"Content-Type": content_type}, body=document
    )
    assert response.status == 200, response
    assert b"<Deleted><Key>doomed</Key></Deleted>" in response.body
    assert conn.stored("doomed") is None


# -- HEAD and pipelining -------------------------------------------------------------------


def test_head_has_content_length_and_no_body(conn: Connection) -> None:
    body = payload_of(12_345, seed=8)
    assert conn.call("PUT", f"/{BUCKET}/h", body=body).status == 200
    # HEAD then GET on one connection: any stray body byte would break the second parse.
    conn.feed(request_bytes("HEAD", f"/{BUCKET}/h") + request_bytes("GET", f"/{BUCKET}/h"))
    conn.start()
    raw = conn.transport.value()
    head, get = conn.take(["HEAD", "GET"])
    assert head.status == 200
    assert head.header("content-length") == str(len(body))
    assert head.header("etag") == quoted_md5(body)
    assert head.body == b""
    assert raw.count(b"HTTP/1.1 ") == 2
    assert raw.index(b"HTTP/1.1 200", 1) == raw.index(b"\r\n\r\n") + 4
    assert get.body == body


def test_head_missing_key_has_no_body(conn: Connection) -> None:
    conn.feed(request_bytes("HEAD", f"/{BUCKET}/nope") + request_bytes("GET", f"/{BUCKET}/"))
    conn.start()
    raw = conn.transport.value()
    head, listing = conn.take(["HEAD", "GET"])
    assert head.status == 404
    assert raw.index(b"HTTP/1.1 200", 1) == raw.index(b"\r\n\r\n") + 4
    assert listing.status == 200


@pytest.mark.parametrize("early", [True, False], ids=["streamed", "buffered-first"])
def test_pipelined_request_after_put(conn: Connection, early: bool) -> None:
    body = payload_of(30_000, seed=9)
    put = request_bytes("PUT", f"/{BUCKET}/p", body=body)
    get = request_bytes("GET", f"/{BUCKET}/p")
    if early:
        head_len = len(put) - len(body)
        conn.feed(put[:head_len])
        conn.start()
        conn.feed(put[head_len:] + get)
    else:
        conn.feed(put + get)
    conn.start()
    first, second = conn.take(["PUT", "GET"])
    assert first.status == 200
    assert first.header("etag") == quoted_md5(body)
    assert second.status == 200
    assert second.body == body
    # ...and the connection is still usable after both.
    assert conn.call("GET", f"/{BUCKET}/p").body == body


def test_pipelined_puts_in_one_segment(conn: Connection) -> None:
    bodies = [payload_of(n, seed=n) for n in (10, 0, 70_000, 3)]
    wire = b"".join(request_bytes("PUT", f"/{BUCKET}/k{i}", body=b) for i, b in enumerate(bodies))
    conn.feed(wire, 1000)
    conn.start()
    responses = conn.take(["PUT"] * 4)
    assert [r.status for r in responses] == [200] * 4
    assert [r.header("etag") for r in responses] == [quoted_md5(b) for b in bodies]
    for i, b in enumerate(bodies):
        assert conn.stored(f"k{i}") == b


# -- errors before the body was read -------------------------------------------------------


@pytest.mark.parametrize("early", [True, False], ids=["streamed", "buffered-first"])
def test_put_to_missing_bucket(conn: Connection, early: bool) -> None:
    body = payload_of(50_000, seed=10)
    wire = request_bytes("PUT", "/nobucket/k", body=body)
    head_len = len(wire) - len(body)
    conn.feed(wire[:head_len])
    if early:
        conn.start()
    conn.feed(body, 4096)
    conn.start()
    [response] = conn.take(["PUT"])
    assert_error(response, 404, "NoSuchBucket")
    assert b"<BucketName>nobucket</BucketName>" in response.body
    assert b"<Resource>/nobucket/k</Resource>" in response.body
    assert conn.buckets() == [BUCKET]
    # The rest of the body was not taken for a request: the connection still works.
    assert conn.call("GET", f"/{BUCKET}?list-type=2").status == 200


def test_invalid_key_with_body(conn: Connection) -> None:
    body = b"z" * 5000
    wire = request_bytes("PUT", f"/{BUCKET}/" + "k" * 1100, body=body)
    conn.feed(wire[: -len(body)])
    conn.start()
    conn.feed(body, 100)
    [response] = conn.take(["PUT"])
    assert_error(response, 400, "KeyTooLongError")
    assert conn.call("GET", f"/{BUCKET}?list-type=2").status == 200


# -- disconnects ---------------------------------------------------------------------------


def test_disconnect_mid_body_stores_nothing() -> None:
    conn = Connection(disconnecting=True)
    conn.create_bucket()
    body = payload_of(100_000, seed=11)
    conn.feed(request_bytes("PUT", f"/{BUCKET}/gone", length=len(body)))
    conn.start()
    conn.feed(body[:40_000], 4096)
    conn.transport.loseConnection()
    conn.clock.advance(120)
    assert conn.transport.value() == b""
    assert conn.stored("gone") is None
    assert conn.keys() == []


def test_disconnect_before_processing_started() -> None:
    conn = Connection(disconnecting=True)
    conn.create_bucket()
    body = payload_of(10_000, seed=12)
    conn.feed(request_bytes("PUT", f"/{BUCKET}/gone", length=len(body)))
    conn.feed(body[:5000], 999)
    conn.transport.loseConnection()
    conn.clock.advance(120)  # the early processing was cancelled with the connection
    assert conn.transport.value() == b""
    assert conn.stored("gone") is None


def test_disconnect_while_the_writer_is_paused() -> None:
    storage = PausingStorage()
    conn = Connection(storage, disconnecting=True)
    conn.create_bucket()
    body = payload_of(100_000, seed=13)
    conn.feed(request_bytes("PUT", f"/{BUCKET}/gone", length=len(body)))
    conn.start()
    conn.feed(body[:50_000], 4096)
    [writer] = storage.writers
    assert conn.transport.producerState == "paused"
    conn.protocol.connectionLost(Failure(ConnectionLost()))
    conn.clock.advance(120)
    assert writer.aborted
    assert conn.stored("gone") is None
    assert conn.transport.value() == b""


def test_request_is_an_s3request(conn: Connection) -> None:
    assert conn.site.requestFactory is S3Request
    assert conn.site.reactor is conn.clock
