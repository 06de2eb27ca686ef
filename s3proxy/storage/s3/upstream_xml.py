"""Parsing the upstream's XML answers into our model values."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

from lxml import etree

from s3proxy.errors import ServiceUnavailable
from s3proxy.storage.s3.upstream_errors import map_error

# ``recover``: an upstream may echo a marker XML cannot hold (moto sends U+FFFF in
# StartAfter as it is); the keys themselves come URL-encoded.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, recover=True)


def parse(body: bytes) -> etree._Element:
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        root = None
    if root is None:
        raise ServiceUnavailable("The upstream store sent an unreadable answer.")
    return root


def children(element: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in element if etree.QName(c).localname == name]


def text(element: etree._Element, name: str, default: str = "") -> str:
    for child in children(element, name):
        return child.text or ""
    return default


def iso_time(value: str) -> float:
    """An ISO 8601 time stamp (``2024-05-01T10:00:00.123Z``) as whole epoch seconds,
    the precision of the Last-Modified header, so a listing and a HEAD agree."""
    stamp = value.strip().rstrip("Z").split(".")[0]
    date, _, clock = stamp.partition("T")
    year, month, day = (int(p) for p in date.split("-"))
    hour, minute, second = (int(p) for p in (clock or "0:0:0").split(":")[:3])
    return float(calendar.timegm((year, month, day, hour, minute, second)))


def http_time(value: str) -> float:
    return float(int(parsedate_to_datetime(value).timestamp()))


def unquote_etag(value: str) -> str:
    return value.strip().strip('"').lower()


@dataclass(frozen=True)
class UpstreamBucket:
    name: str
    created: float


def list_buckets(body: bytes) -> list[UpstreamBucket]:
    root = parse(body)
    found = []
    for holder in children(root, "Buckets"):
        for bucket in children(holder, "Bucket"):
            found.append(
                UpstreamBucket(text(bucket, "Name"), iso_time(text(bucket, "CreationDate")))
            )
    return found


@dataclass(frozen=True)
class UpstreamObject:
    key: str
    size: int
    etag: str
    last_modified: float
    storage_class: str


@dataclass(frozen=True)
class UpstreamListing:
    objects: list[UpstreamObject]
    common_prefixes: list[str]
    next_token: str | None


def _key_decoder(root: etree._Element) -> Callable[[str], str]:
    """Keys and markers of a listing asked for with ``encoding-type=url`` come encoded."""
    return unquote if text(root, "EncodingType") == "url" else str


def list_objects_v2(body: bytes) -> UpstreamListing:
    root = parse(body)
    name = _key_decoder(root)
    objects = [
        UpstreamObject(
            name(text(c, "Key")),
            int(text(c, "Size", "0")),
            unquote_etag(text(c, "ETag")),
            iso_time(text(c, "LastModified")),
            text(c, "StorageClass", "STANDARD") or "STANDARD",
        )
        for c in children(root, "Contents")
    ]
    prefixes = [name(text(p, "Prefix")) for p in children(root, "CommonPrefixes")]
    truncated = text(root, "IsTruncated") == "true"
    token = text(root, "NextContinuationToken") if truncated else None
    return UpstreamListing(objects, prefixes, token or None)


def upload_id(body: bytes) -> str:
    return text(parse(body), "UploadId")


@dataclass(frozen=True)
class UpstreamPart:
    number: int
    size: int
    etag: str
    last_modified: float


def list_parts(body: bytes) -> tuple[list[UpstreamPart], int | None]:
    """The parts of one ListParts page and the marker of the next (None: the last)."""
    root = parse(body)
    parts = [
        UpstreamPart(
            int(text(p, "PartNumber")),
            int(text(p, "Size", "0")),
            unquote_etag(text(p, "ETag")),
            iso_time(text(p, "LastModified")),
        )
        for p in children(root, "Part")
    ]
    truncated = text(root, "IsTruncated") == "true"
    marker = text(root, "NextPartNumberMarker")
    return parts, (int(marker) if truncated and marker else None)


def _parse_result(body: bytes) -> etree._Element:
    """The document of a 200 answer that S3 may still fail (a copy, a completion): it
    can put an ``<Error>`` in the body after the 200, raised here as its S3Error."""
    root = parse(body)
    if etree.QName(root).localname == "Error":
        raise map_error(400, body)
    return root


def copy_result(body: bytes) -> tuple[str, float]:
    """(ETag, last modified) of a CopyObjectResult or CopyPartResult."""
    root = _parse_result(body)
    return unquote_etag(text(root, "ETag")), iso_time(text(root, "LastModified"))


def complete_result(body: bytes) -> str:
    return unquote_etag(text(_parse_result(body), "ETag"))


@dataclass(frozen=True)
class UpstreamUpload:
    key: str
    upload_id: str
    initiated: float


def list_uploads(body: bytes) -> tuple[list[UpstreamUpload], tuple[str, str] | None]:
    """One ListMultipartUploads page, and the (key, upload ID) markers of the next."""
    root = parse(body)
    name = _key_decoder(root)
    uploads = [
        UpstreamUpload(
            name(text(u, "Key")),
            text(u, "UploadId"),
            iso_time(text(u, "Initiated")),
        )
        for u in children(root, "Upload")
    ]
    if text(root, "IsTruncated") != "true":
        return uploads, None
    key_marker = text(root, "NextKeyMarker")
    return uploads, (name(key_marker), text(root, "NextUploadIdMarker"))
