"""AwsChunkedDecoder: the aws-chunked framing decoded whatever way the socket splits it."""

from __future__ import annotations

import base64
import random
import zlib
from collections.abc import Iterator

import pytest

from s3proxy.errors import IncompleteBody, InvalidRequest
from s3proxy.web.awschunked import MAX_LINE, AwsChunkedDecoder

# Every byte value, and bytes that look like framing, inside the payload.
PAYLOAD = bytes(range(256)) + b"\r\n0\r\n;chunk-signature=\r\n\r\n" + b"tail"
SIGNATURES = [bytes([c]) * 64 for c in b"0123456789abcdef"]


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


def chunks_of(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` cut into consecutive pieces of ``sizes`` (the last one takes the rest)."""
    out = []
    pos = 0
    for size in sizes:
        out.append(data[pos : pos + size])
        pos += size
    out.append(data[pos:])
    return [c for c in out if c]


def signed_body(payload: bytes, chunk_size: int) -> tuple[bytes, list[bytes]]:
    """SigV4 streaming framing: every chunk, and the final empty one, signed."""
    parts = []
    signatures = []
    pieces = [payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size)]
    for n, piece in enumerate([*pieces, b""]):
        signature = SIGNATURES[n % len(SIGNATURES)]
        signatures.append(signature)
        parts.append(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(piece), signature, piece))
    return b"".join(parts), signatures


def unsigned_trailer_body(payload: bytes, chunk_size: int) -> bytes:
    """boto3 >= 1.36 framing: unsigned chunks, then a checksum trailer."""
    pieces = [payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size)]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    trailer = f"x-amz-checksum-crc32:{crc32_b64(payload)}\r\n\r\n".encode()
    return framed + b"0\r\n" + trailer


class Recorder:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.parts.append(data)

    @property
    def payload(self) -> bytes:
        return b"".join(self.parts)


def decode(pieces: list[bytes]) -> tuple[bytes, AwsChunkedDecoder]:
    recorder = Recorder()
    decoder = AwsChunkedDecoder(recorder)
    for piece in pieces:
        decoder.feed(piece)
    decoder.end()
    assert decoder.done
    return recorder.payload, decoder


def splits(body: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """Every way of feeding ``body`` these tests try."""
    yield "whole", [body]
    yield "bytewise", [body[i : i + 1] for i in range(len(body))]
    # Cut in two at every offset; for long bodies at every offset near the start and the
    # end (all the framing states occur there) and every 13th one in between.
    edge = 600
    for i in range(1, len(body)):
        if i < edge or i > len(body) - edge or i % 13 == 0:
            yield f"split@{i}", [body[:i], body[i:]]
    rng = random.Random(20240611)
    for n in range(50):
        sizes = [rng.randint(1, 40) for _ in range(rng.randint(1, 200))]
        yield f"random#{n}", chunks_of(body, sizes)


@pytest.mark.parametrize("chunk_size", [1, 5, 64, 1000])
def test_signed_framing_every_split(chunk_size: int) -> None:
    body, signatures = signed_body(PAYLOAD, chunk_size)
    for name, pieces in splits(body):
        payload, decoder = decode(pieces)
        assert payload == PAYLOAD, name
        assert decoder.chunk_signatures == signatures, name
        assert decoder.trailers == {}, name


@pytest.mark.parametrize("chunk_size", [1, 7, 300, 10_000])
def test_unsigned_trailer_framing_every_split(chunk_size: int) -> None:
    body = unsigned_trailer_body(PAYLOAD, chunk_size)
    for name, pieces in splits(body):
        payload, decoder = decode(pieces)
        assert payload == PAYLOAD, name
        assert decoder.chunk_signatures == [], name
        assert decoder.trailers == {"x-amz-checksum-crc32": crc32_b64(PAYLOAD)}, name


def test_boto3_style_literal_body() -> None:
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    payload, decoder = decode([body])
    assert payload == b"hello world"
    assert decoder.trailers == {"x-amz-checksum-crc32": "AAAAAA=="}


def test_signed_trailer_and_several_trailers() -> None:
    sig = b"f" * 64
    body = (
        b"3;chunk-signature=" + sig + b"\r\nabc\r\n"
        b"0;chunk-signature=" + sig + b"\r\n"
        b"X-Amz-Checksum-SHA256: deadbeef \r\n"
        b"x-amz-trailer-signature:" + sig + b"\r\n\r\n"
    )
    for name, pieces in splits(body):
        payload, decoder = decode(pieces)
        assert payload == b"abc", name
        assert decoder.chunk_signatures == [sig, sig], name
        assert decoder.trailers == {
            "x-amz-checksum-sha256": "deadbeef",
            "x-amz-trailer-signature": sig.decode(),
        }, name


def test_empty_payload() -> None:
    payload, decoder = decode([b"0\r\n\r\n"])
    assert payload == b""
    assert decoder.trailers == {}


def test_uppercase_hex_sizes() -> None:
    data = b"x" * 0x1A
    payload, _ = decode([b"1A\r\n" + data + b"\r\n0\r\n\r\n"])
    assert payload == data


def test_final_empty_line_may_be_omitted() -> None:
    """Some clients end the body right after the trailers, without the empty line."""
    payload, decoder = decode([b"2\r\nok\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n"])
    assert payload == b"ok"
    assert decoder.trailers == {"x-amz-checksum-crc32": "AAAAAA=="}
    payload, _ = decode([b"2\r\nok\r\n0\r\n"])
    assert payload == b"ok"


def test_payload_is_never_buffered() -> None:
    """Data is passed on as it arrives, before the chunk it belongs to is complete."""
    recorder = Recorder()
    decoder = AwsChunkedDecoder(recorder)
    decoder.feed(b"400;chunk-signature=" + b"a" * 64 + b"\r\n")
    assert recorder.parts == []
    decoder.feed(b"x" * 10)
    assert recorder.payload == b"x" * 10
    decoder.feed(b"y")
    assert recorder.payload == b"x" * 10 + b"y"
    decoder.feed(b"z" * (0x400 - 11) + b"\r\n5\r\nab")
    assert recorder.payload == b"x" * 10 + b"y" + b"z" * (0x400 - 11) + b"ab"
    decoder.feed(b"cde\r\n0\r\n\r\n")
    decoder.end()
    assert recorder.payload.endswith(b"abcde")
    assert len(recorder.payload) == 0x400 + 5


def test_bytewise_feeding_delivers_each_byte_at_once() -> None:
    recorder = Recorder()
    decoder = AwsChunkedDecoder(recorder)
    for byte in b"4\r\n":
        decoder.feed(bytes([byte]))
    for n, byte in enumerate(b"data", start=1):
        decoder.feed(bytes([byte]))
        assert recorder.payload == b"data"[:n]


MALFORMED = {
    "bad hex": b"zz\r\nabc\r\n0\r\n\r\n",
    "hex with junk": b"1g\r\na\r\n0\r\n\r\n",
    "negative size": b"-1\r\n0\r\n\r\n",
    "empty size": b"\r\n0\r\n\r\n",
    "size too long": b"0" * 17 + b"1\r\nx\r\n0\r\n\r\n",
    "missing CRLF after data": b"3\r\nabcX\r\n0\r\n\r\n",
    "LF only after data": b"3\r\nabc\n0\r\n\r\n",
    "data longer than size": b"3\r\nabcd\r\n0\r\n\r\n",
    "bad trailer line": b"0\r\nnot-a-trailer\r\n\r\n",
    "data after final chunk": b"0\r\n\r\nmore",
    "second body after final chunk": b"1\r\na\r\n0\r\n\r\n1\r\nb\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_is_invalid_request(body: bytes) -> None:
    for pieces in ([body], [bytes([b]) for b in body]):
        decoder = AwsChunkedDecoder(Recorder())
        with pytest.raises(InvalidRequest):
            for piece in pieces:
                decoder.feed(piece)
            decoder.end()


@pytest.mark.parametrize("terminated", [False, True])
def test_overlong_header_line(terminated: bool) -> None:
    line = b"1;chunk-signature=" + b"a" * MAX_LINE
    decoder = AwsChunkedDecoder(Recorder())
    with pytest.raises(InvalidRequest):
        decoder.feed(line + (b"\r\n" if terminated else b""))
    # Fed in small pieces: rejected as soon as the limit is passed, not buffered on.
    decoder = AwsChunkedDecoder(Recorder())
    fed = 0
    with pytest.raises(InvalidRequest):
        while True:
            decoder.feed(b"a" * 100)
            fed += 100
            assert fed <= MAX_LINE + 100
    # The same limit holds for trailer lines.
    decoder = AwsChunkedDecoder(Recorder())
    decoder.feed(b"0\r\n")
    with pytest.raises(InvalidRequest):
        decoder.feed(b"x-amz-checksum-crc32:" + b"A" * MAX_LINE + b"\r\n")


TRUNCATED = {
    "nothing": b"",
    "inside size line": b"1",
    "after size line": b"5\r\n",
    "inside data": b"5\r\nhel",
    "before data CRLF": b"5\r\nhello",
    "inside data CRLF": b"5\r\nhello\r",
    "before final chunk": b"5\r\nhello\r\n",
    "inside final size line": b"5\r\nhello\r\n0",
    "inside trailer line": b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AA",
}


@pytest.mark.parametrize("body", TRUNCATED.values(), ids=TRUNCATED.keys())
def test_truncated_body_is_incomplete(body: bytes) -> None:
    decoder = AwsChunkedDecoder(Recorder())
    decoder.feed(body)
    assert not decoder.done
    with pytest.raises(IncompleteBody):
        decoder.end()
