"""The S3 backend's upstream client against small servers on loopback: retries with
backoff for idempotent requests only, ServiceUnavailable once they are spent, and a
writer that pauses its client while the upstream connection does not read."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet import reactor as global_reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from s3proxy.errors import ServiceUnavailable
from s3proxy.storage.s3 import S3Storage, UpstreamClient, UpstreamCredentials
from s3proxy.storage.s3.writer import UpstreamWriter
from tests.contract.test_storage_contract import Collector, FakeProducer

reactor: Any = global_reactor
KEYS = UpstreamCredentials("AKIDTEST", "secret")
LIST = b"<ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>"


class Flaky(Resource):
    """Fails the first ``failures`` requests with ``status``, then answers 200."""

    isLeaf = True

    def __init__(self, failures: int, status: int = 503) -> None:
        super().__init__()
        self.failures = failures
        self.status = status
        self.requests: list[tuple[bytes, bool]] = []

    def render(self, request: Request) -> bytes:
        signed = (request.getHeader("authorization") or "").startswith("AWS4-HMAC-SHA256 ")
        self.requests.append((request.method, signed))
        if len(self.requests) <= self.failures:
            request.setResponseCode(self.status)
            return b"<Error><Code>SlowDown</Code><Message>later</Message></Error>"
        return LIST


@pytest.fixture
def listen() -> Iterator[Any]:
    ports: list[Any] = []

    def start(factory: Any) -> str:
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        ports.append(port)
        return f"http://127.0.0.1:{port.getHost().port}"

    yield start
    for port in ports:
        port.stopListening()


def client(endpoint: str) -> UpstreamClient:
    return UpstreamClient(reactor, endpoint, KEYS, timeout=5, attempts=4, backoff=0.01)


@pytest_twisted.ensureDeferred
async def test_idempotent_requests_are_retried(listen: Any) -> None:
    flaky = Flaky(failures=2)
    upstream = client(listen(Site(flaky)))
    _, body = await upstream.fetch("GET", "")
    assert body == LIST
    assert flaky.requests == [(b"GET", True)] * 3
    await upstream.close()


@pytest_twisted.ensureDeferred
async def test_retries_spent_is_service_unavailable(listen: Any) -> None:
    broken = Flaky(failures=100, status=500)
    upstream = client(listen(Site(broken)))
    with pytest.raises(ServiceUnavailable):
        await upstream.fetch("HEAD", "bucket", "key")
    assert len(broken.requests) == 4
    # POST (CreateMultipartUpload, CompleteMultipartUpload) is sent once only.
    with pytest.raises(ServiceUnavailable):
        await upstream.fetch("POST", "bucket", "key", query=[("uploads", "")])
    assert len(broken.requests) == 5
    await upstream.close()


@pytest_twisted.ensureDeferred
async def test_unreachable_upstream(listen: Any) -> None:
    port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
    endpoint = f"http://127.0.0.1:{port.getHost().port}"
    await port.stopListening()  # nothing listens there any more
    with pytest.raises(ServiceUnavailable):
        await client(endpoint).fetch("GET", "")


class SlowSink(Protocol):
    """Reads one PUT; stops reading after ``hold_after`` body bytes until released;
    answers 200 with the body's MD5 as ETag."""

    def __init__(self, hold_after: int) -> None:
        self.hold_after = hold_after
        self.head = b""
        self.length: int | None = None
        self.received = 0
        self.md5 = hashlib.md5()
        self.holding = False
        self.held_once = False

    def dataReceived(self, data: bytes) -> None:
        if self.length is None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, data = self.head.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    self.length = int(value)
            assert self.length is not None
        self.received += len(data)
        self.md5.update(data)
        if not self.held_once and self.received >= self.hold_after:
            self.holding = self.held_once = True
            self.transport.pauseProducing()  # type: ignore[attr-defined]
        if self.received == self.length:
            etag = self.md5.hexdigest().encode()
            self.transport.write(
                b'HTTP/1.1 200 OK\r\nETag: "' + etag + b'"\r\nContent-Length: 0\r\n\r\n'
            )

    def release(self) -> None:
        if self.holding:
            self.holding = False
            self.transport.resumeProducing()  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_writer_pauses_client_while_upstream_does_not_read(listen: Any) -> None:
    sinks: list[SlowSink] = []

    def build(_: Any) -> SlowSink:
        sinks.append(SlowSink(hold_after=256 * 1024))
        return sinks[-1]

    factory = Factory()
    factory.buildProtocol = build  # type: ignore[method-assign]
    upstream = client(listen(factory))
    total, chunk = 48 * 1024 * 1024, b"x" * 65536

    async def send(body: Any) -> Any:
        response = await upstream.request("PUT", "bucket", "key", body=body)
        await upstream.read_body(response)
        return response

    async def commit(response: Any, md5: str, size: int, checksums: dict[str, str]) -> Any:
        return (md5, size)

    writer = UpstreamWriter(send, commit, None, total)
    producer = FakeProducer()
    writer.registerProducer(producer, True)
    sent = 0
    sink_held_when_paused = False
    while sent < total:
        deadline = time.monotonic() + 10
        while producer.paused:  # held back: before connecting, or by the upstream
            assert time.monotonic() < deadline, "the writer never resumed its client"
            if sinks and sinks[0].holding:
                sink_held_when_paused = True
                sinks[0].release()  # the upstream reads again, so the client may go on
            await deferLater(reactor, 0.001)
        writer.write(chunk)
        sent += len(chunk)
    writer.unregisterProducer()
    md5, size = await writer.finish()
    expected = hashlib.md5(chunk * (total // len(chunk))).hexdigest()
    assert (md5, size) == (expected, total)
    assert (sinks[0].received, sinks[0].md5.hexdigest()) == (total, expected)
    # The client was held back while the upstream did not read, and let go again.
    assert producer.pauses >= 1
    assert sink_held_when_paused
    assert producer.pauses == producer.resumes and not producer.paused
    await upstream.close()


class Stalling(Protocol):
    """Answers any request with ``answer`` and then says nothing more."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.got = b""

    def dataReceived(self, data: bytes) -> None:
        self.got += data
        if self.answer and b"\r\n\r\n" in self.got:
            self.transport.write(self.answer)  # type: ignore[attr-defined]
            self.answer = b""


def stalling_factory(answer: bytes) -> Factory:
    factory = Factory()
    factory.buildProtocol = lambda _: Stalling(answer)  # type: ignore[method-assign]
    return factory


@pytest_twisted.ensureDeferred
async def test_reader_gives_up_on_an_upstream_that_stops_sending(listen: Any) -> None:
    head = (
        b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nETag: "0123"\r\n'
        b"Last-Modified: Fri, 01 May 2026 12:00:00 GMT\r\n\r\n"
    )
    endpoint = listen(stalling_factory(head + b"first bytes"))
    upstream = UpstreamClient(reactor, endpoint, KEYS, timeout=0.3)
    reader = await S3Storage(upstream).open_reader("bucket", "key", None)
    consumer = Collector()
    with pytest.raises(ServiceUnavailable):
        await reader.start(consumer)
    assert consumer.data == b"first bytes"
    assert consumer.unregistrations == 1
    await upstream.close()


@pytest_twisted.ensureDeferred
async def test_writer_gives_up_on_an_upstream_that_never_answers(listen: Any) -> None:
    endpoint = listen(stalling_factory(b""))
    upstream = UpstreamClient(reactor, endpoint, KEYS, timeout=0.3)

    async def send(body: Any) -> Any:
        return await upstream.request("PUT", "bucket", "key", body=body)

    async def commit(response: Any, md5: str, size: int, checksums: dict[str, str]) -> Any:
        raise AssertionError("never answered, never committed")

    writer = UpstreamWriter(send, commit, None, 5, reactor, 0.3)
    writer.write(b"12345")
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        await writer.finish()
    assert time.monotonic() - started < 5
    await upstream.close()
