"""The streaming multipart/form-data parser, fed the same form in every slicing."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.interfaces import IConsumer, IProducer, IPushProducer
from zope.interface import implementer

from s3proxy.errors import (
    EntityTooLarge,
    IncorrectNumberOfFilesInPostRequest,
    MalformedPOSTRequest,
    MaxPostPreDataLengthExceeded,
)
from s3proxy.web.formdata import FilePart, FormParser, boundary_of

BOUNDARY = b"XyZ-boundary"
FILE = b"line one\r\n--XyZ-boundar not quite\r\n\r\n-XyZ-boundary end\r\n" * 50


def form(fields: list[tuple[str, str]], file: bytes | None = FILE, after: str = "") -> bytes:
    out = b""
    for name, value in fields:
        out += b"--" + BOUNDARY + b"\r\n"
        out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    if file is not None:
        out += b"--" + BOUNDARY + b"\r\n"
        out += b'Content-Disposition: form-data; name="file"; filename="C:\\\\dir\\\\a.txt"\r\n'
        out += b"Content-Type: text/plain\r\n\r\n" + file + b"\r\n"
    if after:
        out += b"--" + BOUNDARY + b"\r\n"
        out += f'Content-Disposition: form-data; name="late"\r\n\r\n{after}\r\n'.encode()
    return out + b"--" + BOUNDARY + b"--\r\n"


@implementer(IPushProducer)
class Body:
    """Stands in for the request body: records pause and resume."""

    def __init__(self) -> None:
        self.paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass


@implementer(IConsumer)
class Sink:
    def __init__(self) -> None:
        self.data = b""
        self.producer: IProducer | None = None
        self.unregistered = False

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.unregistered = True

    def write(self, data: bytes) -> None:
        self.data += data


def feed(
    body: bytes, size: int, max_size: int | None = None
) -> tuple[FormParser, Sink, Body, list[Any]]:
    """Feed ``body`` in ``size`` slices, attaching a sink as a handler would; also
    returns what ``file_started`` fired with."""
    parser = FormParser(BOUNDARY, 1024)
    producer = Body()
    parser.registerProducer(producer, True)
    sink = Sink()
    started: list[Any] = []
    parser.file_started.addBoth(started.append)
    for offset in range(0, len(body), size):
        assert not producer.paused or not started  # never fed while paused
        parser.write(body[offset : offset + size])
        if started and isinstance(started[0], FilePart) and sink.producer is None:
            assert producer.paused  # waits for the handler
            parser.attach(sink, max_size)
            assert sink.producer is producer and not producer.paused
    parser.unregisterProducer()
    return parser, sink, producer, started


@pytest.mark.parametrize("size", [1, 2, 3, 7, 13, 64, 1000, 1 << 20])
def test_every_slicing_gives_the_same_form(size: int) -> None:
    body = form([("key", "uploads/${filename}"), ("Policy", "abc"), ("x-amz-meta-a", "é")])
    body += b"epilogue ignored"
    parser, sink, _, _ = feed(body, size)
    assert parser.failure is None
    assert parser.fields == {"key": "uploads/${filename}", "policy": "abc", "x-amz-meta-a": "é"}
    assert parser.file == FilePart("a.txt", "text/plain")
    assert sink.data == FILE and parser.size == len(FILE)
    assert sink.unregistered


def test_fields_after_the_file_are_ignored() -> None:
    parser, sink, _, _ = feed(form([("key", "k")], after="later"), 5)
    assert parser.fields == {"key": "k"} and sink.data == FILE


def test_empty_file() -> None:
    parser, sink, _, _ = feed(form([("key", "k")], file=b""), 4)
    assert parser.failure is None and sink.data == b"" and parser.size == 0


def test_no_file_part() -> None:
    parser, _, _, started = feed(form([("key", "k")], file=None), 10)
    assert len(started) == 1
    with pytest.raises(IncorrectNumberOfFilesInPostRequest):
        started[0].raiseException()


def test_truncated_form() -> None:
    body = form([("key", "k")])
    parser, _, _, _ = feed(body[: len(body) - 10], 100)
    assert isinstance(parser.failure, MalformedPOSTRequest)


def test_fields_before_the_file_are_capped() -> None:
    parser, _, producer, started = feed(form([("policy", "p" * 5000)]), 100)
    assert isinstance(parser.failure, MaxPostPreDataLengthExceeded)
    assert started[0].value is parser.failure  # the handler hears of it
    assert not producer.paused  # the rest drains


def test_file_larger_than_allowed_stops_flowing() -> None:
    parser, sink, producer, _ = feed(form([("key", "k")]), 50, max_size=100)
    assert isinstance(parser.failure, EntityTooLarge)
    assert len(sink.data) <= 100 + 50
    assert not producer.paused


def test_boundary_of() -> None:
    assert boundary_of("multipart/form-data; boundary=abc") == b"abc"
    assert boundary_of('Multipart/Form-Data; charset=x; boundary="a b"') == b"a b"
    assert boundary_of("multipart/mixed; boundary=abc") is None
    assert boundary_of("multipart/form-data") is None
    assert boundary_of(None) is None
