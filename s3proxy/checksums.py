"""The checksum algorithms S3 clients use (``x-amz-checksum-*``). CRC32C and CRC64NVME
come from awscrt, the library the AWS SDKs use for them."""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable
from typing import Any

from awscrt import checksums as crt


class _Crc:
    def __init__(self, function: Callable[[bytes, int], int], width: int) -> None:
        self._function = function
        self._width = width
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = self._function(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._width, "big")


def new_checksum(algorithm: str) -> Any:
    """A hashlib-like object (``update``, ``digest``) for ``algorithm``."""
    if algorithm == "crc32":
        return _Crc(zlib.crc32, 4)
    if algorithm == "crc32c":
        return _Crc(crt.crc32c, 4)
    if algorithm == "crc64nvme":
        return _Crc(crt.crc64nvme, 8)
    if algorithm == "sha1":
        return hashlib.sha1()
    return hashlib.sha256()


ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


def composite(algorithm: str, part_checksums: list[str]) -> str:
    """S3's checksum of a multipart object: the checksum of the parts' binary
    checksums, then -N."""
    digest = new_checksum(algorithm)
    digest.update(b"".join(base64.b64decode(c) for c in part_checksums))
    return f"{base64.b64encode(digest.digest()).decode()}-{len(part_checksums)}"
