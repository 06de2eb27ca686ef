"""SigV4 signatures for the requests we send upstream, built from the same
canonicalization primitives that verify our own clients' signatures."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from s3proxy.auth.canonical import (
    ALGORITHM,
    TERMINAL,
    canonical_header_value,
    canonical_query,
    canonical_request,
    sign,
    signing_key,
    string_to_sign,
)

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
SERVICE = "s3"


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class UpstreamCredentials:
    access_key: str
    secret_key: str = field(repr=False)  # never in a log line or a repr


def _signed(name: str) -> bool:
    # Host, every x-amz-* header, and the content headers we send: the rest (length,
    # transfer encoding) may be rewritten by the HTTP stack.
    return name in ("host", "content-md5", "content-type") or name.startswith("x-amz-")


def sign_request(
    credentials: UpstreamCredentials,
    region: str,
    method: str,
    path: bytes,
    query: bytes,
    headers: dict[str, str],
    payload: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """``headers`` (lower-case names, including host) plus x-amz-date,
    x-amz-content-sha256 and Authorization. ``path`` and ``query`` are as sent."""
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    signed = {name.lower(): value for name, value in headers.items()}
    signed["x-amz-date"] = moment
    signed["x-amz-content-sha256"] = payload
    names = sorted(name for name in signed if _signed(name))
    header_list = [(name, canonical_header_value([signed[name].encode("utf-8")])) for name in names]
    signed_headers = ";".join(names)
    canonical = canonical_request(
        method, path, canonical_query(query), header_list, signed_headers, payload
    )
    scope = f"{moment[:8]}/{region}/{SERVICE}/{TERMINAL}"
    key = signing_key(credentials.secret_key, moment[:8], region, SERVICE)
    signature = sign(key, string_to_sign(moment, scope, canonical))
    signed["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return signed
