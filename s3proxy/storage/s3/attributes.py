"""ObjectAttributes to upstream request headers and back.

User metadata travels as ``x-amz-meta-*``; a value HTTP cannot carry as it is (not
printable ASCII, or with edge spaces) is sent RFC 2047 encoded, as AWS itself returns
such values. Our ACL (owner and grants) rides along as one more metadata entry, so
it round-trips on any S3 store whatever that store's own ACL support."""

from __future__ import annotations

import base64
import json
import re

from twisted.web.iweb import IResponse

from s3proxy.acl import AccessControl
from s3proxy.model import DEFAULT_CONTENT_TYPE, STORED_HEADERS, ObjectAttributes
from s3proxy.storage.s3.client import header
from s3proxy.storage.s3.upstream_xml import http_time, unquote_etag

META = "x-amz-meta-"
ACL_META = "s3proxy-acl"
TAGS_META = "s3proxy-tags"
# Metadata names this backend keeps for itself; hidden from clients.
RESERVED_META = frozenset({ACL_META, TAGS_META})
_PLAIN = re.compile(r"^[ -~]*$")
_ENCODED = re.compile(r"^=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=$", re.IGNORECASE)


def encode_value(value: str) -> str:
    if _PLAIN.match(value) and value == value.strip() and not value.startswith("=?"):
        return value
    raw = base64.b64encode(value.encode("utf-8", "surrogatepass")).decode("ascii")
    return f"=?UTF-8?B?{raw}?="


def decode_value(value: str) -> str:
    match = _ENCODED.match(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match.group(1)).decode("utf-8")
    except ValueError:
        return value


def attribute_headers(attributes: ObjectAttributes) -> dict[str, str]:
    """The headers of an upstream PutObject, CopyObject (REPLACE) or
    CreateMultipartUpload that store ``attributes``."""
    headers = {"content-type": attributes.content_type}
    for name, value in attributes.headers.items():
        if name.title() in STORED_HEADERS:
            headers[name.lower()] = encode_value(value)
    for name, value in attributes.metadata.items():
        headers[META + name.lower()] = encode_value(value)
    if attributes.acl is not None:
        headers[META + ACL_META] = json.dumps(attributes.acl.to_json(), separators=(",", ":"))
    if attributes.tags:
        # JSON of an ordered list of pairs, ASCII-escaped, so any tag survives HTTP.
        headers[META + TAGS_META] = json.dumps(list(attributes.tags.items()), separators=(",", ":"))
    return headers


def attributes_of(response: IResponse) -> ObjectAttributes:
    """The attributes an upstream GET or HEAD answer carries."""
    headers: dict[str, str] = {}
    for name in STORED_HEADERS[1:]:
        value = header(response, name)
        if value is not None:
            headers[name] = decode_value(value)
    metadata: dict[str, str] = {}
    acl: AccessControl | None = None
    tags: dict[str, str] = {}
    for raw_name, values in response.headers.getAllRawHeaders():
        name = raw_name.decode("latin-1").lower()
        if not name.startswith(META):
            continue
        meta_name, value = name[len(META) :], values[0].decode("latin-1")
        if meta_name == ACL_META:
            acl = AccessControl.from_json(json.loads(value))
        elif meta_name == TAGS_META:
            tags = {str(k): str(v) for k, v in json.loads(value)}
        elif meta_name not in RESERVED_META:
            metadata[meta_name] = decode_value(value)
    return ObjectAttributes(
        content_type=header(response, "Content-Type") or DEFAULT_CONTENT_TYPE,
        headers=headers,
        metadata=metadata,
        acl=acl,
        tags=tags,
    )


def etag_of(response: IResponse) -> str:
    return unquote_etag(header(response, "ETag") or "")


def last_modified_of(response: IResponse) -> float:
    value = header(response, "Last-Modified")
    return http_time(value) if value else 0.0
