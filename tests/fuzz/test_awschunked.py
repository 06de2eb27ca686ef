"""The aws-chunked decoder under arbitrary socket splits, truncation and corruption.

A valid stream decodes to its payload whichever way it is cut; a damaged one is
refused with the S3 error a client gets for it (InvalidRequest for bad framing,
IncompleteBody for a body that ends early, SignatureDoesNotMatch for a chunk or
trailer that does not carry its signature), never another exception and never a
hang; and a stream that decodes is never decoded to anything but its payload.

Chunk signatures are computed here from AWS's published definition (SigV4 streaming:
HMAC-SHA256 chained from the seed signature), independently of s3proxy.auth.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from dataclasses import dataclass

from hypothesis import example, given
from hypothesis import strategies as st

from s3proxy.auth import canonical
from s3proxy.auth.request import AuthResult
from s3proxy.auth.streaming import ChunkVerifier
from s3proxy.errors import IncompleteBody, InvalidRequest, S3Error, SignatureDoesNotMatch
from s3proxy.web.awschunked import AwsChunkedDecoder
from tests.fuzz.guard import time_limit
from tests.unit.signing import ALICE

AMZ_DATE = "20260501T120000Z"
SCOPE = "20260501/us-east-1/s3/aws4_request"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
EXPECTED_ERRORS = (InvalidRequest, IncompleteBody, SignatureDoesNotMatch)


def key() -> bytes:
    k = hmac.digest(("AWS4" + ALICE.secret_key).encode(), b"20260501", "sha256")
    for part in (b"us-east-1", b"s3", b"aws4_request"):
        k = hmac.digest(k, part, "sha256")
    return k


def auth() -> AuthResult:
    return AuthResult(
        user=ALICE,
        payload="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        signing_key=canonical.signing_key(ALICE.secret_key, "20260501", "us-east-1", "s3"),
        scope=SCOPE,
        amz_date=AMZ_DATE,
        seed_signature=SEED,
    )


@dataclass
class Stream:
    payload: bytes
    body: bytes
    trailers: dict[str, str]
    signed: bool


def frame(payload: bytes, sizes: list[int], signed: bool, trailer: bool, upper: bool) -> Stream:
    """The aws-chunked body of ``payload`` cut into chunks of ``sizes`` (the rest in
    one more chunk), signed or not, with a CRC32 trailer or not."""
    pieces = []
    pos = 0
    for size in sizes:
        if pos >= len(payload):
            break
        pieces.append(payload[pos : pos + size])
        pos += size
    if pos < len(payload):
        pieces.append(payload[pos:])
    previous = SEED
    out = bytearray()
    for piece in [*pieces, b""]:
        size_hex = b"%X" % len(piece) if upper else b"%x" % len(piece)
        if signed:
            to_sign = "\n".join(
                [
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    AMZ_DATE,
                    SCOPE,
                    previous,
                    EMPTY_SHA256,
                    hashlib.sha256(piece).hexdigest(),
                ]
            )
            previous = hmac.digest(key(), to_sign.encode(), "sha256").hex()
            out += size_hex + b";chunk-signature=" + previous.encode() + b"\r\n"
        else:
            out += size_hex + b"\r\n"
        if piece:
            out += piece + b"\r\n"
    trailers: dict[str, str] = {}
    if trailer:
        crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
        trailers["x-amz-checksum-crc32"] = crc
        line = f"x-amz-checksum-crc32:{crc}"
        out += line.encode() + b"\r\n"
        if signed:
            digest = hashlib.sha256(line.encode() + b"\n").hexdigest()
            to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", AMZ_DATE, SCOPE, previous, digest])
            signature = hmac.digest(key(), to_sign.encode(), "sha256").hex()
            out += b"x-amz-trailer-signature:" + signature.encode() + b"\r\n"
    out += b"\r\n"
    return Stream(payload, bytes(out), trailers, signed)


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    payload = draw(st.binary(max_size=600))
    sizes = draw(st.lists(st.integers(1, 300), max_size=6))
    return frame(payload, sizes, draw(st.booleans()), draw(st.booleans()), draw(st.booleans()))


def cuts(body: bytes, points: list[int]) -> list[bytes]:
    """``body`` split at ``points`` (positions taken modulo its length)."""
    marks = sorted({p % (len(body) + 1) for p in points} | {0, len(body)})
    return [body[a:b] for a, b in zip(marks, marks[1:], strict=False)]


def decode(stream: Stream, pieces: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """Feed ``pieces`` and end the body; the payload and trailers delivered."""
    delivered: list[bytes] = []
    signatures = ChunkVerifier(auth()) if stream.signed else None
    decoder = AwsChunkedDecoder(delivered.append, signatures)
    with time_limit(5):
        for piece in pieces:
            decoder.feed(piece)
        decoder.end()
    assert decoder.done
    return b"".join(delivered), decoder.trailers


def decode_or_error(stream: Stream, pieces: list[bytes]) -> tuple[bytes, dict[str, str]] | S3Error:
    try:
        return decode(stream, pieces)
    except S3Error as e:
        assert isinstance(e, EXPECTED_ERRORS), repr(e)
        assert e.status == (403 if isinstance(e, SignatureDoesNotMatch) else 400)
        return e


@given(streams(), st.lists(st.integers(0, 10_000), max_size=20))
def test_any_split_decodes_to_the_payload(stream: Stream, points: list[int]) -> None:
    payload, trailers = decode(stream, cuts(stream.body, points))
    assert payload == stream.payload
    for name, value in stream.trailers.items():
        assert trailers[name] == value


@given(streams(), st.integers(0, 10_000), st.lists(st.integers(0, 10_000), max_size=5))
def test_truncated_body_never_passes_for_the_payload(
    stream: Stream, length: int, points: list[int]
) -> None:
    """A body cut short is refused, except when only whole trailer lines (or the empty
    last line) are missing: the payload is then complete, and decoded as such."""
    length %= len(stream.body)
    result = decode_or_error(stream, cuts(stream.body[:length], points))
    if isinstance(result, S3Error):
        return
    payload, _ = result
    assert payload == stream.payload
    assert stream.body[:length].endswith(b"\n")
    assert b"\r\n0" in b"\r\n" + stream.body[:length]


@given(streams(), st.integers(0, 10_000), st.integers(0, 255), st.lists(st.integers(), max_size=4))
def test_changed_byte_is_refused_or_harmless(
    stream: Stream, position: int, value: int, points: list[int]
) -> None:
    """One byte changed: refused with an S3 error, or (hex case, trailer content of an
    unsigned stream, ...) decoded to the very same payload; a signed stream never
    yields a different payload."""
    position %= len(stream.body)
    body = bytearray(stream.body)
    body[position] = value
    result = decode_or_error(stream, cuts(bytes(body), points))
    if isinstance(result, S3Error):
        return
    payload, _ = result
    if stream.signed:
        assert payload == stream.payload


bad_sizes = st.one_of(
    st.sampled_from([b"-1", b"-2", b"-6", b"+1", b"0x1", b"1_0", b" ", b"", b"g", b"1" * 17]),
    st.binary(min_size=1, max_size=8).filter(lambda b: b"\n" not in b),
)


@given(bad_sizes, st.binary(max_size=40), st.booleans())
@example(b"-2", b"0\r\n\r\n", False)
@example(b"-6", b"abcdef\r\n-6\r\n", False)
@example(b"0x10", b"0123456789abcdef\r\n0\r\n\r\n", False)
def test_bad_chunk_size_is_invalid_request(size: bytes, rest: bytes, signed: bool) -> None:
    """A size that is not 1 to 16 hex digits is malformed framing."""
    stripped = size.partition(b";")[0].strip()
    if stripped and len(stripped) <= 16 and all(c in b"0123456789abcdefABCDEF" for c in stripped):
        return  # a valid size after all
    stream = Stream(b"", size + b"\r\n" + rest, {}, signed)
    result = decode_or_error(stream, [stream.body])
    assert isinstance(result, InvalidRequest), result


@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=8), st.booleans())
def test_garbage_is_refused_with_an_s3_error(data: bytes, points: list[int], signed: bool) -> None:
    stream = Stream(b"", data, {}, signed)
    result = decode_or_error(stream, cuts(data, points))
    if not isinstance(result, S3Error):
        # Some garbage is a valid stream (e.g. b"0\r\n\r\n"); then it must be one.
        assert data.endswith(b"\n")
