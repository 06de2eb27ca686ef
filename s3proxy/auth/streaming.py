"""Chunk and trailer signatures of a SigV4 streaming upload.

With ``x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`` each
aws-chunked frame carries ``chunk-signature=<hex>``: an HMAC, with the request's
signing key, over the chunk's SHA-256 and the previous signature (the seed signature
of the Authorization header for the first chunk), so chunks cannot be altered,
dropped or reordered. A signed trailer (``x-amz-trailer-signature``) continues the
chain from the final, empty chunk.
"""

from __future__ import annotations

import hashlib
import hmac

from s3proxy.auth import canonical
from s3proxy.auth.request import AuthResult
from s3proxy.errors import SignatureDoesNotMatch

SIGNED_STREAMING_PAYLOADS = frozenset(
    {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"}
)
_TRAILER_SIGNATURE = "x-amz-trailer-signature"


class ChunkVerifier:
    """Checks one upload's chunk signatures in order; feed every chunk, the final
    empty one included (its SHA-256 is that of no bytes)."""

    def __init__(self, result: AuthResult) -> None:
        if not result.signing_key:
            raise ValueError("chunk signatures need a SigV4 header-signed request")
        self._key = result.signing_key
        self._scope = result.scope
        self._amz_date = result.amz_date
        self._previous = result.seed_signature

    def verify_chunk(self, claimed_signature: bytes, chunk_sha256_hex: str) -> None:
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                self._amz_date,
                self._scope,
                self._previous,
                canonical.EMPTY_SHA256,
                chunk_sha256_hex,
            ]
        )
        self._check(to_sign, claimed_signature)

    def verify_trailer(self, trailer_text: bytes, claimed: bytes) -> None:
        """``trailer_text`` is the trailer section as received (``name:value`` lines,
        CRLF or LF); an ``x-amz-trailer-signature`` line in it is ignored."""
        digest = hashlib.sha256(canonical_trailer(trailer_text)).hexdigest()
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256-TRAILER", self._amz_date, self._scope, self._previous, digest]
        )
        self._check(to_sign, claimed)

    def _check(self, to_sign: str, claimed: bytes) -> None:
        computed = canonical.sign(self._key, to_sign)
        if not hmac.compare_digest(computed.encode("ascii"), claimed.strip()):
            raise SignatureDoesNotMatch(
                StringToSign=to_sign, SignatureProvided=claimed.decode("latin-1")
            )
        self._previous = computed


def canonical_trailer(trailer_text: bytes) -> bytes:
    """Each trailing header as ``lower-case-name:trimmed value\\n``, in the order sent."""
    lines = []
    for line in trailer_text.split(b"\n"):
        name, colon, value = line.strip().partition(b":")
        name = name.strip().lower()
        if not colon or name == _TRAILER_SIGNATURE.encode():
            continue
        lines.append(name + b":" + value.strip() + b"\n")
    return b"".join(lines)
