"""CompleteMultipartUpload that takes long: byte-level, in process, on a ``Clock``.

S3 answers a completion that is still assembling after a moment with 200 and then
whitespace, every few seconds, until the result (or an ``<Error>`` document) can be
sent; clients (boto3, the aws CLI) read that body and raise the error it holds. Here
the storage's completion is a Deferred the test fires, and the clock is advanced by
hand past ``keepalive_delay`` and ``keepalive_interval``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from lxml import etree
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock, LoopingCall
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import http

from s3proxy.config import Settings
from s3proxy.errors import NoSuchKey, NoSuchUpload
from s3proxy.model import ObjectAttributes, ObjectInfo
from s3proxy.storage.memory import MemoryStorage
from s3proxy.web.app import S3Application
from s3proxy.web.request import make_site
from tests.channel.test_streaming_request import parse_responses, request_bytes, result_of

BUCKET = "bkt"
KEY = "big/object"
DELAY = 1.0
INTERVAL = 5.0
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


# -- plumbing ------------------------------------------------------------------------------


@dataclass
class Call:
    args: tuple[str, str, str, list[tuple[int, str]], int]
    result: Deferred[ObjectInfo]


class SlowCompletionStorage(MemoryStorage):
    """MemoryStorage whose completions wait until the test calls ``release``, and
    then run for real (so a wrong part list fails as it would have)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []

    def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[tuple[int, str]],
        min_part_size: int,
        create_only: bool = False,
    ) -> Deferred[ObjectInfo]:
        d: Deferred[ObjectInfo] = Deferred()
        self.calls.append(Call((bucket, key, upload_id, parts, min_part_size, create_only), d))
        return d

    def release(self) -> None:
        [call] = self.calls
        self.calls = []
        super().complete_multipart_upload(*call.args).chainDeferred(call.result)


class Site:
    """One site over a SlowCompletionStorage, with its clock; connections on demand."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.storage = SlowCompletionStorage()
        settings = Settings(keepalive_delay=DELAY, keepalive_interval=INTERVAL)
        app = S3Application(self.storage, settings, self.clock)
        self.site = make_site(app.resource(), self.clock)
        result_of(self.storage.create_bucket(BUCKET))

    def connect(self) -> tuple[http.HTTPChannel, StringTransport]:
        protocol: http.HTTPChannel = self.site.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def upload(self, *datas: bytes) -> tuple[str, list[str]]:
        """An upload of ``datas`` as parts 1..N: its ID and the parts' ETags."""
        upload = result_of(
            self.storage.create_multipart_upload(BUCKET, KEY, ObjectAttributes("text/plain"))
        )
        etags = []
        for number, data in enumerate(datas, 1):
            writer = result_of(
                self.storage.open_part_writer(BUCKET, KEY, upload.upload_id, number, None, None)
            )
            writer.write(data)
            etags.append(result_of(writer.finish()).etag)
        return upload.upload_id, etags

    def keepalive_loops(self) -> list[object]:
        """The LoopingCalls still scheduled on the clock."""
        calls: Sequence[Any] = self.clock.getDelayedCalls()  # DelayedCalls: they have .func
        return [c for c in calls if isinstance(c.func, LoopingCall)]


def complete_request(upload_id: str, parts: list[tuple[int, str]]) -> bytes:
    body = "<CompleteMultipartUpload>{}</CompleteMultipartUpload>".format(
        "".join(f'<Part><PartNumber>{n}</PartNumber><ETag>"{e}"</ETag></Part>' for n, e in parts)
    ).encode()
    return request_bytes("POST", f"/{BUCKET}/{KEY}?uploadId={upload_id}", body=body)


@dataclass
class Partial:
    """A response read so far: the head, and the body bytes of the chunks received."""

    status: int
    headers: dict[str, list[str]]
    body: bytes
    finished: bool

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def read_partial(data: bytes) -> Partial:
    """Parse a chunked response that may not have ended yet."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    assert headers.get("transfer-encoding") == ["chunked"], headers
    body = bytearray()
    pos = 0
    while pos < len(rest):
        line_end = rest.index(b"\r\n", pos)
        size = int(rest[pos:line_end], 16)
        pos = line_end + 2
        chunk = rest[pos : pos + size]
        assert len(chunk) == size and rest[pos + size : pos + size + 2] == b"\r\n"
        pos += size + 2
        if size == 0:
            assert pos == len(rest), "bytes after the last chunk"
            return Partial(status, headers, bytes(body), True)
        body += chunk
    return Partial(status, headers, bytes(body), False)


def multipart_etag(*datas: bytes) -> str:
    digests = b"".join(hashlib.md5(d).digest() for d in datas)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(datas)}"'


def text_of(root: Any, tag: str) -> str | None:
    found = root.find(tag)
    return None if found is None else str(found.text)


@pytest.fixture
def site() -> Site:
    return Site()


# -- (a) and (d): done before keepalive_delay: an ordinary response -------------------------


def test_fast_completion_answers_normally(site: Site) -> None:
    datas = (b"a" * 5 * 1024 * 1024, b"tail")
    upload_id, etags = site.upload(*datas)
    protocol, transport = site.connect()
    protocol.dataReceived(complete_request(upload_id, list(enumerate(etags, 1))))
    site.clock.advance(0)
    assert len(site.storage.calls) == 1
    site.clock.advance(DELAY / 2)
    assert transport.value() == b""  # nothing before the result or the delay
    site.storage.release()

    [response] = parse_responses(transport.value(), ["POST"])
    assert response.status == 200
    assert response.header("content-length") == str(len(response.body))
    assert response.header("transfer-encoding") is None
    assert response.header("content-type") == "application/xml"
    assert response.body.startswith(b"<?xml")
    root = etree.fromstring(response.body)
    assert root.tag == f"{{{S3_NS}}}CompleteMultipartUploadResult"
    assert text_of(root, f"{{{S3_NS}}}ETag") == multipart_etag(*datas)
    assert text_of(root, f"{{{S3_NS}}}Bucket") == BUCKET
    assert text_of(root, f"{{{S3_NS}}}Key") == KEY
    # No keepalive was ever started, and the delay's timer is gone.
    site.clock.advance(DELAY + 3 * INTERVAL)
    assert parse_responses(transport.value(), ["POST"]) == [response]
    assert site.keepalive_loops() == []
    assert result_of(site.storage.head_object(BUCKET, KEY)).etag == multipart_etag(*datas)[1:-1]


def test_fast_failure_answers_with_its_status(site: Site) -> None:
    upload_id, etags = site.upload(b"only part")
    protocol, transport = site.connect()
    protocol.dataReceived(complete_request(upload_id, [(1, "0" * 32)]))
    site.clock.advance(DELAY / 2)
    site.storage.release()

    [response] = parse_responses(transport.value(), ["POST"])
    assert response.status == 400
    assert response.header("content-length") == str(len(response.body))
    assert response.header("content-type") == "application/xml"
    root = etree.fromstring(response.body)
    assert root.tag == "Error"
    assert text_of(root, "Code") == "InvalidPart"
    assert text_of(root, "RequestId") == response.header("x-amz-request-id")
    site.clock.advance(DELAY + INTERVAL)
    assert site.keepalive_loops() == []
    # The upload is still there, and the connection serves the next request.
    assert result_of(site.storage.list_parts(BUCKET, KEY, upload_id, 0, 1000))[1].parts
    transport.clear()
    protocol.dataReceived(request_bytes("GET", "/"))
    [listing] = parse_responses(transport.value(), ["GET"])
    assert listing.status == 200


# -- (b): slow: 200 at once, spaces, then the result ------------------------------------------


def test_slow_completion_keeps_the_connection_alive(site: Site) -> None:
    datas = (b"x" * 6 * 1024 * 1024, b"y" * (5 * 1024 * 1024 + 1), b"z")
    upload_id, etags = site.upload(*datas)
    protocol, transport = site.connect()
    protocol.dataReceived(complete_request(upload_id, list(enumerate(etags, 1))))
    site.clock.advance(DELAY - 0.01)
    assert transport.value() == b""

    site.clock.advance(0.01)
    started = read_partial(transport.value())
    assert started.status == 200
    assert started.header("content-length") is None
    assert started.header("content-type") == "application/xml"
    assert started.header("x-amz-request-id") is not None
    assert (started.body, started.finished) == (b" ", False)

    for ticks in range(1, 4):
        site.clock.advance(INTERVAL - 0.01)
        assert read_partial(transport.value()).body == b" " * ticks
        site.clock.advance(0.01)
        assert read_partial(transport.value()).body == b" " * (ticks + 1)
    assert len(site.keepalive_loops()) == 1

    # Meanwhile other clients are served.
    other, other_transport = site.connect()
    other.dataReceived(request_bytes("GET", "/"))
    other.dataReceived(request_bytes("GET", f"/{BUCKET}?uploads"))
    listing, uploads = parse_responses(other_transport.value(), ["GET", "GET"])
    assert listing.status == 200
    assert f"<Name>{BUCKET}</Name>".encode() in listing.body
    assert uploads.status == 200
    assert f"<UploadId>{upload_id}</UploadId>".encode() in uploads.body
    with pytest.raises(NoSuchKey):
        result_of(site.storage.head_object(BUCKET, KEY))

    site.storage.release()
    done = read_partial(transport.value())
    assert done.finished
    assert done.body.startswith(b" " * 4 + b"<")
    assert b"<?xml" not in done.body
    root = etree.fromstring(done.body.strip())
    assert root.tag == f"{{{S3_NS}}}CompleteMultipartUploadResult"
    assert text_of(root, f"{{{S3_NS}}}ETag") == multipart_etag(*datas)
    assert text_of(root, f"{{{S3_NS}}}Key") == KEY
    # The XML also parses as sent (leading whitespace is allowed without a declaration).
    assert etree.fromstring(done.body).tag == root.tag

    # The loop stopped, and the connection is still usable.
    assert site.keepalive_loops() == []
    written = transport.value()
    site.clock.advance(3 * INTERVAL)
    assert transport.value() == written
    transport.clear()
    protocol.dataReceived(request_bytes("HEAD", f"/{BUCKET}/{KEY}"))
    [head] = parse_responses(transport.value(), ["HEAD"])
    assert head.status == 200
    assert head.header("etag") == multipart_etag(*datas)
    assert head.header("content-length") == str(sum(map(len, datas)))


# -- (c): slow and then failing: 200 with an <Error> body -------------------------------------


def test_slow_failure_is_an_error_document_in_a_200(site: Site) -> None:
    upload_id, etags = site.upload(b"p" * 6 * 1024 * 1024, b"last")
    protocol, transport = site.connect()
    wrong = [(1, etags[0]), (2, hashlib.md5(b"not the part").hexdigest())]
    protocol.dataReceived(complete_request(upload_id, wrong))
    site.clock.advance(DELAY)
    site.clock.advance(INTERVAL)
    assert read_partial(transport.value()).body == b"  "
    site.storage.release()

    done = read_partial(transport.value())
    assert (done.status, done.finished) == (200, True)
    assert done.header("content-length") is None
    assert b"<?xml" not in done.body
    root = etree.fromstring(done.body.strip())
    assert root.tag == "Error"
    assert text_of(root, "Code") == "InvalidPart"
    assert text_of(root, "PartNumber") == "2"
    assert text_of(root, "Resource") == f"/{BUCKET}/{KEY}"
    assert text_of(root, "RequestId") == done.header("x-amz-request-id")
    assert re.match(rb"^ +<Error>", done.body)
    assert site.keepalive_loops() == []
    # Nothing was stored, and the upload can be completed properly afterwards.
    with pytest.raises(NoSuchKey):
        result_of(site.storage.head_object(BUCKET, KEY))
    assert len(result_of(site.storage.list_parts(BUCKET, KEY, upload_id, 0, 1000))[1].parts) == 2


# -- (e): the client goes away during the keepalive phase -----------------------------------


def test_disconnect_during_keepalive_stops_the_loop(site: Site) -> None:
    datas = (b"d" * 5 * 1024 * 1024, b"end")
    upload_id, etags = site.upload(*datas)
    protocol, transport = site.connect()
    protocol.dataReceived(complete_request(upload_id, list(enumerate(etags, 1))))
    site.clock.advance(DELAY)
    site.clock.advance(INTERVAL)
    assert read_partial(transport.value()).body == b"  "
    assert len(site.keepalive_loops()) == 1

    protocol.connectionLost(Failure(ConnectionLost("the client went away")))
    assert site.keepalive_loops() == []
    written = transport.value()
    site.clock.advance(5 * INTERVAL)
    assert transport.value() == written

    # The completion was not interrupted: it finishes in storage, and writes nothing.
    site.storage.release()
    site.clock.advance(INTERVAL)
    assert transport.value() == written
    info = result_of(site.storage.head_object(BUCKET, KEY))
    assert (f'"{info.etag}"', info.size) == (multipart_etag(*datas), sum(map(len, datas)))
    with pytest.raises(NoSuchUpload):
        result_of(site.storage.list_parts(BUCKET, KEY, upload_id, 0, 1000))


def test_disconnect_before_keepalive_delay(site: Site) -> None:
    upload_id, etags = site.upload(b"only")
    protocol, transport = site.connect()
    protocol.dataReceived(complete_request(upload_id, [(1, etags[0])]))
    site.clock.advance(DELAY / 2)
    protocol.connectionLost(Failure(ConnectionLost("the client went away")))
    site.clock.advance(DELAY + INTERVAL)
    assert transport.value() == b""
    assert site.keepalive_loops() == []
    site.storage.release()
    assert result_of(site.storage.head_object(BUCKET, KEY)).size == 4
    assert transport.value() == b""
