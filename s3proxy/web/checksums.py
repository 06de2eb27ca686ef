"""Flexible checksums (``x-amz-checksum-*``) and the payload SHA-256, computed over a
body's decoded bytes as they stream past and checked when the body ends.

The value a client claims comes in a header, or (aws-chunked uploads) in a trailer
named by ``x-amz-trailer``. CRC32C and CRC64NVME come from awscrt, the library the AWS
SDKs use for them.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from s3proxy.checksums import ALGORITHMS, new_checksum
from s3proxy.errors import BadDigest, InvalidRequest, S3Error, XAmzContentSHA256Mismatch
from s3proxy.web.headers import Headers

_HEX_SHA256_LEN = 64


class BodyChecks:
    """Everything a request body must be checked against. ``update`` sees every
    decoded byte; ``verify`` (once the body ended, with its trailers) raises the S3
    error for the first mismatch. ``stored`` is what to keep with the object."""

    def __init__(self, headers: Headers) -> None:
        self._digests: dict[str, Any] = {}
        self._claimed: dict[str, str | None] = {}  # None: the value comes as a trailer
        self._payload_sha256: Any = None
        self._expected_sha256: str | None = None
        declared = (headers.get("x-amz-sdk-checksum-algorithm") or "").lower()
        trailer = (headers.get("x-amz-trailer") or "").lower().strip()
        for algorithm in ALGORITHMS:
            value = headers.get(f"x-amz-checksum-{algorithm}")
            if value is not None:
                self._claimed[algorithm] = value
            elif trailer == f"x-amz-checksum-{algorithm}":
                self._claimed[algorithm] = None
        if declared and declared not in ALGORITHMS:
            raise InvalidRequest(
                "Value for x-amz-sdk-checksum-algorithm header is invalid.", Algorithm=declared
            )
        if len(self._claimed) > 1:
            raise InvalidRequest("Expecting a single x-amz-checksum- header")
        for algorithm in self._claimed:
            self._digests[algorithm] = new_checksum(algorithm)
        sha = headers.get("x-amz-content-sha256") or ""
        if len(sha) == _HEX_SHA256_LEN and all(c in "0123456789abcdefABCDEF" for c in sha):
            self._expected_sha256 = sha.lower()
            self._payload_sha256 = hashlib.sha256()

    @property
    def active(self) -> bool:
        return bool(self._digests) or self._payload_sha256 is not None

    def update(self, data: bytes) -> None:
        for digest in self._digests.values():
            digest.update(data)
        if self._payload_sha256 is not None:
            self._payload_sha256.update(data)

    def verify(self, trailers: dict[str, str]) -> None:
        if self._payload_sha256 is not None:
            if self._payload_sha256.hexdigest() != self._expected_sha256:
                raise XAmzContentSHA256Mismatch(
                    ClientComputedContentSHA256=self._expected_sha256 or "",
                    S3ComputedContentSHA256=self._payload_sha256.hexdigest(),
                )
        for algorithm, digest in self._digests.items():
            claimed = self._claimed[algorithm]
            if claimed is None:
                claimed = trailers.get(f"x-amz-checksum-{algorithm}")
                if claimed is None:
                    raise InvalidRequest(f"x-amz-checksum-{algorithm} trailer is missing")
            actual = base64.b64encode(digest.digest()).decode()
            if claimed.strip() != actual:
                raise BadDigest(
                    f"The {algorithm.upper()} you specified did not match the calculated checksum."
                )

    def stored(self) -> dict[str, str]:
        """{"x-amz-checksum-crc32": "<base64>"} of the verified body, if any."""
        return {
            f"x-amz-checksum-{a}": base64.b64encode(d.digest()).decode()
            for a, d in self._digests.items()
        }


def checksum_elements(checksums: dict[str, str]) -> list[tuple[str, str]]:
    """{"x-amz-checksum-crc32": v} -> [("ChecksumCRC32", v)], as S3's XML names them."""
    return [
        (f"Checksum{a.upper()}", checksums[f"x-amz-checksum-{a}"])
        for a in ALGORITHMS
        if f"x-amz-checksum-{a}" in checksums
    ]


def safe_checks(headers: Headers) -> tuple[BodyChecks | None, S3Error | None]:
    """Body checks for a request, or the error its checksum headers make."""
    try:
        checks = BodyChecks(headers)
    except S3Error as e:
        return None, e
    return (checks if checks.active else None), None
