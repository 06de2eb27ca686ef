"""What verification reads from a request (``SignedRequest``) and what it proves
(``AuthResult``), with the small readers both signature versions share."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote_to_bytes

from s3proxy.auth.credentials import User

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


class HeaderPairs(Protocol):
    """Anything listing headers as (name, value) pairs, like ``s3proxy.web.headers.Headers``."""

    def items(self) -> Iterable[tuple[str, str]]: ...


HeaderSource = Mapping[str, Sequence[str]] | HeaderPairs


@dataclass(frozen=True)
class SignedRequest:
    """A request as it arrived, before anything was decoded.

    ``raw_path`` is the request-target's path exactly as on the request line (still
    percent-encoded, without the query), ``raw_query`` the bytes after the first ``?``.
    Header values are text as Twisted hands them over: each byte decoded as latin-1.
    """

    method: str
    raw_path: bytes
    raw_query: bytes
    headers: HeaderSource
    now: float = field(default_factory=time.time)
    # The bucket a virtual-hosted request names in Host (SigV2 signs it in the path).
    virtual_bucket: str | None = None
    _index: dict[str, list[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, list[str]] = {}
        if isinstance(self.headers, Mapping):
            for name, values in self.headers.items():
                index.setdefault(name.lower(), []).extend(values)
        else:
            for name, value in self.headers.items():
                index.setdefault(name.lower(), []).append(value)
        object.__setattr__(self, "_index", index)

    def header_values(self, name: str) -> list[str]:
        return self._index.get(name.lower(), [])

    def header(self, name: str) -> str | None:
        values = self._index.get(name.lower())
        return values[0] if values else None

    def header_names(self) -> list[str]:
        return list(self._index)


@dataclass(frozen=True)
class AuthResult:
    """Who signed the request, and what streaming verification needs.

    ``payload`` is the x-amz-content-sha256 the signature covers: a hex digest the
    body must match, ``UNSIGNED-PAYLOAD``, or a ``STREAMING-...`` value. The SigV4
    fields stay empty for SigV2, whose signature never covers the body.
    """

    user: User
    payload: str
    signing_key: bytes = field(default=b"", repr=False)
    scope: str = ""
    amz_date: str = ""
    seed_signature: str = ""
    version: int = 4
    presigned: bool = False


def query_params(raw_query: bytes) -> dict[str, str]:
    """The first value of each query parameter, percent-decoded (``+`` stays ``+``)."""
    params: dict[str, str] = {}
    for piece in raw_query.split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        decoded = unquote_to_bytes(name).decode("utf-8", "replace")
        params.setdefault(decoded, unquote_to_bytes(value).decode("utf-8", "replace"))
    return params


def wire_bytes(value: str) -> bytes:
    """A header value back as the bytes that were sent (they arrive latin-1 decoded)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def iso8601(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def strip_prefix(raw_path: bytes, prefix: str) -> bytes | None:
    """``raw_path`` without the API prefix, or None when it is not under it (no prefix:
    always None). ``split_target`` and ``split_virtual_target`` strip it with this too."""
    encoded = prefix.rstrip("/").encode()
    if encoded and (raw_path == encoded or raw_path.startswith(encoded + b"/")):
        return raw_path[len(encoded) :] or b"/"
    return None


def spaced_hex(data: bytes) -> str:
    """AWS's ``...Bytes`` error fields: each byte as two hex digits, space separated."""
    return " ".join(f"{b:02x}" for b in data)
