"""Byte-level tests of what the channel answers by itself (header limits, malformed
requests) and of the connection guard (header and send timeouts, the connection cap),
on a fake clock."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import http

from s3proxy.config import Settings
from s3proxy.storage.memory import MemoryStorage
from s3proxy.web.app import S3Application
from s3proxy.web.channel import HEADER_SECTION_LIMIT, LINGER, S3Channel
from s3proxy.web.guard import Limits, Refusal
from s3proxy.web.request import S3Site, make_site


class ClosingTransport(StringTransport):
    """A StringTransport that records a half-close and an abort, as a TCP one does."""

    write_closed = False
    aborted = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, str]:
        """The <Error> document's fields, checked for what every S3 error carries."""
        assert self.headers["content-type"] == "application/xml"
        assert int(self.headers["content-length"]) == len(self.body)
        root = ET.fromstring(self.body)
        assert root.tag == "Error"
        fields = {child.tag: child.text or "" for child in root}
        assert fields["RequestId"] == self.headers["x-amz-request-id"]
        assert fields["Message"] and fields["Resource"]
        return fields


def parse(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split()[1]), headers, body)


class Server:
    def __init__(self, limits: Limits | None = None) -> None:
        self.clock = Clock()
        self.storage = MemoryStorage()
        app = S3Application(self.storage, Settings(), self.clock)
        self.site: S3Site = make_site(app.resource(), self.clock, limits or Limits())

    def connect(self) -> tuple[S3Channel, ClosingTransport]:
        channel = self.site.buildProtocol(None)
        assert isinstance(channel, S3Channel)
        transport = ClosingTransport()
        channel.makeConnection(transport)
        return channel, transport

    def sweep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.site.guard.sweep()


def rejected(transport: ClosingTransport) -> Answer:
    """The one answer on a connection the channel ended: sent, our side shut down."""
    answer = parse(transport.value())
    assert answer.headers["connection"] == "close"
    assert transport.write_closed
    return answer


# -- what the channel answers itself ------------------------------------------------


def test_header_section_over_8_kib_is_request_header_section_too_large() -> None:
    server = Server()
    channel, transport = server.connect()
    headers = b"".join(b"x-amz-meta-h%d: %s\r\n" % (i, b"v" * 90) for i in range(100))
    assert len(headers) > HEADER_SECTION_LIMIT
    channel.dataReceived(b"GET /bucket/key HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    answer = rejected(transport)
    assert answer.status == 400
    fields = answer.error()
    assert fields["Code"] == "RequestHeaderSectionTooLarge"
    assert fields["MaxSizeAllowed"] == "8192"
    assert fields["Resource"] == "/bucket/key"
    # What the client still sends is dropped, not parsed as another request.
    transport.clear()
    channel.dataReceived(b"GET /bucket HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value() == b""


def test_header_section_just_under_the_limit_is_served() -> None:
    server = Server()
    channel, transport = server.connect()
    request = b"GET /nobucket HTTP/1.1\r\nHost: x\r\n"
    padding = HEADER_SECTION_LIMIT - len(request) - 200
    channel.dataReceived(request + b"x-pad: " + b"p" * padding + b"\r\n\r\n")
    answer = parse(transport.value())
    assert answer.status == 404
    assert answer.error()["Code"] == "NoSuchBucket"
    assert not transport.write_closed


def test_one_endless_line_is_request_header_section_too_large() -> None:
    """A request line (or header) without an end: cut at the limit, not buffered."""
    server = Server()
    channel, transport = server.connect()
    channel.dataReceived(b"GET /" + b"k" * 4096)
    assert transport.value() == b""
    channel.dataReceived(b"k" * 5000)
    answer = rejected(transport)
    assert answer.status == 400
    assert answer.error()["Code"] == "RequestHeaderSectionTooLarge"


def test_too_many_headers() -> None:
    server = Server()
    channel, transport = server.connect()
    headers = b"".join(b"a%d:b\r\n" % i for i in range(channel.maxHeaders + 1))
    assert len(headers) < HEADER_SECTION_LIMIT
    channel.dataReceived(b"GET / HTTP/1.1\r\n" + headers + b"\r\n")
    answer = rejected(transport)
    assert (answer.status, answer.error()["Code"]) == (400, "RequestHeaderSectionTooLarge")


def test_malformed_header_line_is_bad_request() -> None:
    server = Server()
    channel, transport = server.connect()
    channel.dataReceived(b"GET /b HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
    answer = rejected(transport)
    assert (answer.status, answer.error()["Code"]) == (400, "BadRequest")


def test_malformed_request_line_is_bad_request() -> None:
    server = Server()
    channel, transport = server.connect()
    channel.dataReceived(b"NONSENSE\r\n\r\n")
    answer = rejected(transport)
    assert (answer.status, answer.error()["Code"]) == (400, "BadRequest")


def test_lingering_connection_is_cut_after_a_while() -> None:
    server = Server()
    channel, transport = server.connect()
    channel.dataReceived(b"NONSENSE\r\n\r\n")
    assert transport.write_closed and not transport.aborted
    server.clock.advance(LINGER + 0.1)
    assert transport.aborted


# -- the header timeout ---------------------------------------------------------------


def test_headers_trickling_in_past_the_header_timeout_get_request_timeout() -> None:
    server = Server(Limits(header_timeout=10))
    channel, transport = server.connect()
    for byte in b"GET /bucket HTTP/1.1\r\nHost: x\r\n":
        channel.dataReceived(bytes([byte]))  # a byte at a time: the idle timer keeps resetting
        server.sweep(0.2)
    assert transport.value() == b""  # 6.6 s: still within the limit
    server.sweep(4)
    answer = rejected(transport)
    assert (answer.status, answer.error()["Code"]) == (400, "RequestTimeout")


def test_a_silent_new_connection_gets_request_timeout() -> None:
    server = Server(Limits(header_timeout=5, idle_timeout=60))
    _, transport = server.connect()
    server.sweep(4)
    assert transport.value() == b""
    server.sweep(2)
    assert rejected(transport).error()["Code"] == "RequestTimeout"


def test_header_timeout_spares_idle_keepalive_and_restarts_per_request() -> None:
    server = Server(Limits(header_timeout=5, idle_timeout=0))
    channel, transport = server.connect()
    channel.dataReceived(b"GET /nobucket HTTP/1.1\r\nHost: x\r\n\r\n")
    assert parse(transport.value()).status == 404
    transport.clear()
    server.sweep(30)  # idle between requests: not the header timeout's business
    assert transport.value() == b""
    channel.dataReceived(b"GET /nobucket HTTP/1.1\r\n")  # the next request starts now
    server.sweep(4)
    channel.dataReceived(b"Host: x\r\n\r\n")
    assert parse(transport.value()).status == 404
    assert not transport.write_closed


def test_idle_timeout_is_the_channel_timeout() -> None:
    server = Server(Limits(header_timeout=0, idle_timeout=7))
    channel, transport = server.connect()
    channel.dataReceived(b"GET /nobucket HTTP/1.1\r\nHost: x\r\n\r\n")
    transport.clear()
    server.clock.advance(6.9)
    assert not transport.disconnecting
    server.clock.advance(0.2)
    assert transport.disconnecting
    assert transport.value() == b""


# -- the send timeout -----------------------------------------------------------------


def test_client_that_stops_reading_is_cut_after_the_send_timeout() -> None:
    server = Server(Limits(send_timeout=10))
    channel, transport = server.connect()
    channel.pauseProducing()  # what the transport does when its buffer fills up
    server.sweep(0.5)  # the guard's next look notices it
    server.sweep(6)
    server.sweep(3)
    assert not transport.aborted
    server.sweep(3)
    assert transport.aborted


def test_slow_but_reading_client_is_not_cut() -> None:
    server = Server(Limits(send_timeout=10))
    channel, transport = server.connect()
    for _ in range(10):
        channel.pauseProducing()
        server.sweep(4)
        channel.resumeProducing()  # the buffer drained: the client takes what we send
    assert not transport.aborted


# -- the connection cap ---------------------------------------------------------------


def test_connection_over_the_cap_gets_slow_down_and_later_ones_are_served() -> None:
    server = Server(Limits(max_connections=2))
    first, _ = server.connect()
    server.connect()
    refusal = server.site.buildProtocol(None)
    assert isinstance(refusal, Refusal)
    transport = ClosingTransport()
    refusal.makeConnection(transport)
    refusal.dataReceived(b"GET / HTTP/1.1\r\n\r\n")  # never read as a request
    answer = rejected(transport)
    assert (answer.status, answer.error()["Code"]) == (503, "SlowDown")
    refusal.connectionLost(http.PotentialDataLoss())
    assert server.site.guard.lingering == 0

    first.connectionLost(http.PotentialDataLoss())
    channel, transport = server.connect()
    channel.dataReceived(b"GET /nobucket HTTP/1.1\r\nHost: x\r\n\r\n")
    assert parse(transport.value()).status == 404


def test_no_cap_when_zero() -> None:
    server = Server(Limits(max_connections=0))
    for _ in range(50):
        server.connect()
    assert len(server.site.guard.channels) == 50
    assert not server.site.guard.full()
