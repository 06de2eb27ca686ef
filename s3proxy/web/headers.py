"""Reading S3 semantics out of HTTP headers: ranges, conditions, stored attributes."""

from __future__ import annotations

import base64
import binascii
import re
from email.utils import formatdate, parsedate_to_datetime

from s3proxy.errors import (
    InvalidDigest,
    InvalidRange,
    MetadataTooLarge,
    NotModified,
    PreconditionFailed,
)
from s3proxy.model import (
    DEFAULT_CONTENT_TYPE,
    STORED_HEADERS,
    ByteRange,
    ObjectAttributes,
    ObjectInfo,
)

MAX_METADATA_BYTES = 2048
# ASCII digits only (\d would take any script's digits, which int() reads).
_RANGE_RE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# Past this many digits a position is beyond any object.
_MAX_POSITION_DIGITS = 20


class Headers:
    """Case-insensitive access to a request's headers as text."""

    def __init__(self, raw: dict[str, list[str]]) -> None:
        self._raw = {k.lower(): v for k, v in raw.items()}

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._raw.get(name.lower())
        return values[0] if values else default

    def items(self) -> list[tuple[str, str]]:
        return [(k, v) for k, values in self._raw.items() for v in values]


def http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)


def _parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None  # S3 ignores a date it cannot read


def parse_range(value: str | None, size: int) -> ByteRange | None:
    """One byte range resolved against ``size``; None for no (or an ignorable) Range
    header. A syntactically valid but unsatisfiable range is InvalidRange."""
    if not value:
        return None
    match = _RANGE_RE.match(value.strip())
    if not match:
        return None  # multiple or malformed ranges: S3 serves the whole object
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:
        suffix = _position(last_text, size)
        if suffix == 0 or size == 0:
            raise InvalidRange(RangeRequested=value, ActualObjectSize=str(size))
        return ByteRange(max(0, size - suffix), size - 1)
    if last_text and _magnitude(last_text) < _magnitude(first_text):
        return None
    first = _position(first_text, size)
    last = _position(last_text, size) if last_text else size - 1
    if first >= size:
        raise InvalidRange(RangeRequested=value, ActualObjectSize=str(size))
    return ByteRange(first, min(last, size - 1))


def _magnitude(digits: str) -> tuple[int, str]:
    """Orders decimal numbers of any length without converting them."""
    significant = digits.lstrip("0")
    return len(significant), significant


def _position(digits: str, size: int) -> int:
    """A byte position; a number too long to convert is past the object's end (int()
    refuses more than 4300 digits)."""
    significant = digits.lstrip("0")
    if len(significant) > _MAX_POSITION_DIGITS:
        return max(size, 10**_MAX_POSITION_DIGITS)
    return int(significant or "0")


def _etag_matches(header: str, etag: str) -> bool:
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == "*" or candidate.strip('"') == etag:
            return True
    return False


def check_preconditions(headers: Headers, info: ObjectInfo, prefix: str = "") -> None:
    """RFC 7232 evaluation order, as S3 applies it. ``prefix`` is "x-amz-copy-source-"
    for CopyObject's conditions on its source (which fail with 412 rather than 304)."""
    if_match = headers.get(prefix + "if-match")
    if_unmodified = _parse_http_date(headers.get(prefix + "if-unmodified-since"))
    if_none_match = headers.get(prefix + "if-none-match")
    if_modified = _parse_http_date(headers.get(prefix + "if-modified-since"))
    modified = int(info.last_modified)
    if if_match is not None:
        if not _etag_matches(if_match, info.etag):
            raise PreconditionFailed(Condition=prefix + "If-Match")
    elif if_unmodified is not None and modified > if_unmodified:
        raise PreconditionFailed(Condition=prefix + "If-Unmodified-Since")
    not_modified = NotModified if not prefix else PreconditionFailed
    if if_none_match is not None:
        if _etag_matches(if_none_match, info.etag):
            raise not_modified(Condition=prefix + "If-None-Match")
    elif if_modified is not None and modified <= if_modified:
        raise not_modified(Condition=prefix + "If-Modified-Since")


def content_md5(headers: Headers) -> bytes | None:
    value = headers.get("content-md5")
    if value is None:
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidDigest(**{"Content-MD5": value}) from None
    if len(digest) != 16:
        raise InvalidDigest(**{"Content-MD5": value})
    return digest


def object_attributes(headers: Headers) -> ObjectAttributes:
    """What S3 stores from a PutObject / CopyObject(REPLACE) request's headers."""
    stored: dict[str, str] = {}
    for name in STORED_HEADERS[1:]:
        value = headers.get(name)
        if value is None:
            continue
        if name == "Content-Encoding":
            # aws-chunked describes the upload's framing, not the object.
            codings = [c.strip() for c in value.split(",") if c.strip().lower() != "aws-chunked"]
            if not codings:
                continue
            value = ",".join(codings)
        stored[name] = value
    metadata: dict[str, str] = {}
    size = 0
    for name, value in headers.items():
        if name.startswith("x-amz-meta-"):
            short = name[len("x-amz-meta-") :]
            metadata[short] = value if short not in metadata else f"{metadata[short]},{value}"
            size += len(short.encode()) + len(value.encode())
    if size > MAX_METADATA_BYTES:
        raise MetadataTooLarge(MaxSizeAllowed=str(MAX_METADATA_BYTES))
    return ObjectAttributes(
        content_type=headers.get("content-type") or DEFAULT_CONTENT_TYPE,
        headers=stored,
        metadata=metadata,
    )


def object_headers(info: ObjectInfo) -> list[tuple[str, str]]:
    """The headers GET and HEAD return for an object."""
    out = [
        ("Content-Type", info.attributes.content_type),
        ("ETag", info.quoted_etag),
        ("Last-Modified", http_date(info.last_modified)),
        ("Accept-Ranges", "bytes"),
    ]
    out += sorted(info.attributes.headers.items())
    out += [(f"x-amz-meta-{k}", v) for k, v in sorted(info.attributes.metadata.items())]
    if info.attributes.tags:
        out.append(("x-amz-tagging-count", str(len(info.attributes.tags))))
    return out
