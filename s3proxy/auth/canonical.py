"""SigV4's building blocks as S3 defines them: canonical request, string to sign,
signing key. Everything is bytes until the hex digest, so a header or key that is not
ASCII hashes exactly as the client hashed it."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
TERMINAL = "aws4_request"


def uri_encode(data: bytes) -> str:
    """AWS's UriEncode: everything but A-Za-z0-9 and ``-_.~`` as %XX (upper case)."""
    return quote(data, safe="")


def canonical_query(
    raw_query: bytes, exclude: frozenset[str] = frozenset(), plus_is_space: bool = False
) -> bytes:
    """The canonical query string of the query as received: each name and value
    decoded and re-encoded by AWS's rules, sorted by name then value.
    ``plus_is_space`` reads ``+`` as a form-encoded space (some hand-built URLs)."""
    pairs: list[tuple[str, str]] = []
    for piece in raw_query.split(b"&"):
        if not piece:
            continue
        if plus_is_space:
            piece = piece.replace(b"+", b" ")
        name, _, value = piece.partition(b"=")
        decoded_name = unquote_to_bytes(name)
        if decoded_name.decode("utf-8", "replace") in exclude:
            continue
        pairs.append((uri_encode(decoded_name), uri_encode(unquote_to_bytes(value))))
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs).encode("ascii")


def canonical_header_value(values: Iterable[bytes]) -> bytes:
    """Trimmed, inner whitespace runs collapsed to one space, repeats joined by ','."""
    return b",".join(b" ".join(value.split()) for value in values)


def canonical_request(
    method: str,
    uri: bytes,
    query: bytes,
    headers: list[tuple[str, bytes]],
    signed_headers: str,
    payload: str,
) -> bytes:
    """``headers`` are the signed headers, in SignedHeaders order, values canonical."""
    header_block = b"".join(name.encode("utf-8") + b":" + value + b"\n" for name, value in headers)
    return b"\n".join(
        [
            method.encode("ascii", "replace"),
            uri,
            query,
            header_block,
            signed_headers.encode("utf-8"),
            payload.encode("utf-8"),
        ]
    )


def string_to_sign(amz_date: str, scope: str, canonical: bytes) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical).hexdigest()])


@functools.lru_cache(maxsize=256)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """Derived once per user, day and region (four HMACs), not once per request."""
    key = _hmac(("AWS4" + secret).encode("utf-8"), date.encode("utf-8"))
    for part in (region, service, TERMINAL):
        key = _hmac(key, part.encode("utf-8"))
    return key


def sign(key: bytes, text: str) -> str:
    # A copy of the key's keyed state: a third of hmac.digest's cost, which looks the
    # digest up by name and lets go of the GIL each call (on a busy reactor thread,
    # getting it back means waiting behind the I/O pool's threads).
    mac = _keyed(key).copy()
    mac.update(text.encode("utf-8"))
    return mac.hexdigest()


@functools.lru_cache(maxsize=256)
def _keyed(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


def _hmac(key: bytes, data: bytes) -> bytes:
    # hmac.digest is the one-shot C path: several times cheaper than hmac.new().
    return hmac.digest(key, data, "sha256")
