"""Validation of bucket names and object keys, shared by every backend."""

from __future__ import annotations

import re

from s3proxy.errors import InvalidArgument, InvalidBucketName, KeyTooLongError

MAX_KEY_BYTES = 1024

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
# XML 1.0 cannot carry these, so a key holding one could never be listed.
XML_UNSAFE_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def is_valid_bucket_name(name: str) -> bool:
    """The S3 rules for new general purpose buckets."""
    return bool(
        _BUCKET_RE.match(name)
        and ".." not in name
        and ".-" not in name
        and "-." not in name
        and not _IPV4_RE.match(name)
        and not name.startswith(("xn--", "sthree-"))
        and not name.endswith(("-s3alias", "--ol-s3"))
    )


def check_bucket_name(name: str) -> None:
    if not is_valid_bucket_name(name):
        raise InvalidBucketName(BucketName=name)


def is_xml_safe(text: str) -> bool:
    """Whether ``text`` can appear in an XML document (and so in a listing)."""
    return XML_UNSAFE_RE.search(text) is None


def check_key(key: str) -> None:
    """Reject keys no S3 server could store or list."""
    if not key:
        raise InvalidArgument("Object key must not be empty.")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise KeyTooLongError(
            Size=str(len(key.encode("utf-8", "surrogatepass"))), MaxSizeAllowed=str(MAX_KEY_BYTES)
        )
    if XML_UNSAFE_RE.search(key):
        raise InvalidArgument("Object key contains a character that cannot be stored.")
