"""Service- and bucket-level S3 operations."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from s3proxy.errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    InvalidArgument,
    MalformedXML,
    S3Error,
)
from s3proxy.model import ListPage, ObjectInfo
from s3proxy.names import check_bucket_name, check_key
from s3proxy.web import xml
from s3proxy.web.access import acl_from_headers, bucket_acl, owner_of_new
from s3proxy.web.context import S3Context, S3Response, xml_response

MAX_KEYS = 1000
MAX_DELETE_KEYS = 1000


def owner_element(ctx: S3Context, owner: tuple[str, str] | None = None) -> Any:
    """An <Owner> of ``owner`` (id, display name); by default the configured owner."""
    owner_id, owner_name = owner or (ctx.settings.owner_id, ctx.settings.owner_name)
    return xml.element("Owner", ("ID", owner_id), ("DisplayName", owner_name))


def _requester(ctx: S3Context) -> tuple[str, str] | None:
    """The signed-in user, when users are configured."""
    who = ctx.principal
    if ctx.enforce and who.user_id is not None:
        return who.user_id, who.display_name
    return None


def _object_owner(ctx: S3Context, info: ObjectInfo) -> tuple[str, str] | None:
    """Who owns a listed object: its ACL's owner, else its bucket's."""
    acl = info.attributes.acl
    if acl is None and ctx.bucket_info is not None:
        acl = bucket_acl(ctx, ctx.bucket_info)
    return (acl.owner_id, acl.owner_name) if acl is not None else None


async def list_buckets(ctx: S3Context) -> S3Response:
    buckets = await ctx.storage.list_buckets()
    if ctx.enforce:  # a user sees their own buckets
        buckets = [b for b in buckets if bucket_acl(ctx, b).owner_id == ctx.principal.user_id]
    return xml_response(
        xml.document(
            "ListAllMyBucketsResult",
            owner_element(ctx, _requester(ctx)),
            xml.element(
                "Buckets",
                [
                    xml.element(
                        "Bucket", ("Name", b.name), ("CreationDate", xml.iso8601(b.creation_date))
                    )
                    for b in buckets
                ],
            ),
        )
    )


async def create_bucket(ctx: S3Context) -> S3Response:
    bucket = ctx.need_bucket()
    check_bucket_name(bucket)
    body = await ctx.request.body.read_all(ctx.settings.max_xml_bytes)
    if body.strip():
        config = xml.parse(body, "CreateBucketConfiguration")
        # Any LocationConstraint is accepted: data stays where this daemon keeps it.
        xml.child_text(config, "LocationConstraint")
    try:
        await ctx.storage.create_bucket(bucket, acl_from_headers(ctx, owner_of_new(ctx)))
    except BucketAlreadyOwnedByYou:
        if ctx.enforce:  # owned by you, or by someone else
            existing = await ctx.storage.head_bucket(bucket)
            if bucket_acl(ctx, existing).owner_id != ctx.principal.user_id:
                raise BucketAlreadyExists(BucketName=bucket) from None
        raise
    return S3Response(headers=[("Location", f"/{bucket}")])


async def head_bucket(ctx: S3Context) -> S3Response:
    await ctx.storage.head_bucket(ctx.need_bucket())
    return S3Response(headers=[("x-amz-bucket-region", ctx.settings.region)])


async def delete_bucket(ctx: S3Context) -> S3Response:
    await ctx.storage.delete_bucket(ctx.need_bucket())
    return S3Response(status=204)


async def get_bucket_location(ctx: S3Context) -> S3Response:
    await ctx.storage.head_bucket(ctx.need_bucket())
    # us-east-1 is the empty constraint, as AWS reports it.
    region = ctx.settings.region
    return xml_response(
        xml.document("LocationConstraint", text=None if region == "us-east-1" else region)
    )


async def get_bucket_versioning(ctx: S3Context) -> S3Response:
    await ctx.storage.head_bucket(ctx.need_bucket())
    return xml_response(xml.document("VersioningConfiguration"))


def query_int(ctx: S3Context, name: str, default: int) -> int:
    """A non-negative integer query parameter (max-keys, max-parts, ...)."""
    text = ctx.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(
            f"Provided {name} not an integer or within integer range",
            ArgumentName=name,
            ArgumentValue=text,
        ) from None
    if not 0 <= value <= 2147483647:
        raise InvalidArgument(
            f"Argument {name} must be an integer between 0 and 2147483647",
            ArgumentName=name,
            ArgumentValue=text,
        )
    return value


def _encoder(ctx: S3Context) -> Any:
    encoding = ctx.query.get("encoding-type")
    if encoding is None:
        return lambda text: text
    if encoding != "url":
        raise InvalidArgument(
            "Invalid Encoding Method specified in Request",
            ArgumentName="encoding-type",
            ArgumentValue=encoding,
        )
    return lambda text: None if text is None else quote(text, safe="/")


def _contents(ctx: S3Context, page: ListPage, encode: Any, owner: bool) -> bytes:
    """The <Contents> and <CommonPrefixes> of a listing page, as serialized XML.

    Written as text rather than built as lxml elements: a page has up to a thousand
    entries of seven elements each, and building them was a third of a page's CPU.
    Keys can only hold characters XML carries (see names.is_xml_safe); the rest is
    escaped here exactly as lxml would."""
    owners: dict[tuple[str, str] | None, str] = {}

    def owner_xml(info: ObjectInfo) -> str:
        who = _object_owner(ctx, info)
        if who not in owners:
            owner_id, name = who or (ctx.settings.owner_id, ctx.settings.owner_name)
            owners[who] = (
                f"<Owner><ID>{_text(owner_id)}</ID><DisplayName>{_text(name)}</DisplayName></Owner>"
            )
        return owners[who]

    parts = [
        f"<Contents><Key>{_text(encode(info.key))}</Key>"
        f"<LastModified>{xml.iso8601(info.last_modified)}</LastModified>"
        f'<ETag>"{_text(info.etag)}"</ETag><Size>{info.size}</Size>'
        f"{owner_xml(info) if owner else ''}"
        f"<StorageClass>{info.storage_class}</StorageClass></Contents>"
        for info in page.objects
    ]
    parts += [
        f"<CommonPrefixes><Prefix>{_text(encode(p))}</Prefix></CommonPrefixes>"
        for p in page.common_prefixes
    ]
    return "".join(parts).encode("utf-8")


def _text(value: str) -> str:
    if value.isascii() and value.isprintable() and not _MARKUP.intersection(value):
        return value  # the common case, checked in C: nothing to escape
    return escape(xml.safe_text(value))


_MARKUP = frozenset("&<>")


def _with_entries(document: bytes, entries: bytes) -> bytes:
    """Insert serialized entries before the root element's end tag."""
    end = document.rindex(b"</")
    return document[:end] + entries + document[end:]


def _encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode("utf-8")).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidArgument(
            "The continuation token provided is incorrect",
            ArgumentName="continuation-token",
            ArgumentValue=token,
        ) from None


def _check_echoed(ctx: S3Context, names: tuple[str, ...]) -> None:
    """The listing echoes these parameters: one that XML cannot carry is InvalidArgument,
    not an InternalError while rendering."""
    for name in names:
        value = ctx.query.get(name)
        if value is not None and not xml.is_safe(value):
            raise InvalidArgument(
                f"{name} holds a character XML 1.0 cannot carry; use encoding-type=url.",
                ArgumentName=name,
            )


async def list_objects(ctx: S3Context) -> S3Response:
    """ListObjects (v1) and, with ``list-type=2``, ListObjectsV2."""
    v2 = ctx.query.get("list-type") == "2"
    if v2:
        ctx.operation = "ListObjectsV2"
    bucket = ctx.need_bucket()
    prefix = ctx.query.get("prefix", "")
    delimiter = ctx.query.get("delimiter", "")
    max_keys = min(query_int(ctx, "max-keys", MAX_KEYS), MAX_KEYS)
    encode = _encoder(ctx)
    url_encoded = "encoding-type" in ctx.query  # _encoder accepts only "url"
    _check_echoed(
        ctx,
        ("continuation-token",)
        if url_encoded
        else ("prefix", "delimiter", "marker", "start-after", "continuation-token"),
    )
    token = ctx.query.get("continuation-token")
    start_after = ctx.query.get("start-after", "")
    if v2:
        marker = _decode_token(token) if token is not None else start_after
    else:
        marker = ctx.query.get("marker", "")
    page = await ctx.storage.list_objects(bucket, prefix, delimiter, marker, max_keys)
    encoding = ("EncodingType", ctx.query.get("encoding-type"))
    common = [
        ("Name", bucket),
        ("Prefix", encode(prefix)),
    ]
    if v2:
        body = xml.document(
            "ListBucketResult",
            common,
            ("ContinuationToken", token),
            (
                "NextContinuationToken",
                _encode_token(page.next_marker) if page.next_marker else None,
            ),
            ("StartAfter", encode(start_after) if "start-after" in ctx.query else None),
            ("KeyCount", len(page.objects) + len(page.common_prefixes)),
            ("MaxKeys", max_keys),
            ("Delimiter", encode(delimiter) if delimiter else None),
            encoding,
            ("IsTruncated", page.is_truncated),
        )
        body = _with_entries(
            body, _contents(ctx, page, encode, ctx.query.get("fetch-owner") == "true")
        )
    else:
        body = xml.document(
            "ListBucketResult",
            common,
            ("Marker", encode(marker)),
            ("NextMarker", encode(page.next_marker) if page.is_truncated else None),
            ("MaxKeys", max_keys),
            ("Delimiter", encode(delimiter) if delimiter else None),
            encoding,
            ("IsTruncated", page.is_truncated),
        )
        body = _with_entries(body, _contents(ctx, page, encode, True))
    return xml_response(body)


async def delete_objects(ctx: S3Context) -> S3Response:
    bucket = ctx.need_bucket()
    body = await ctx.request.body.read_all(ctx.settings.max_xml_bytes)
    root = xml.parse(body, "Delete")
    quiet = (xml.child_text(root, "Quiet") or "").strip().lower() == "true"
    entries = xml.children(root, "Object")
    if not entries or len(entries) > MAX_DELETE_KEYS:
        raise MalformedXML()
    keys = []
    for entry in entries:
        key = xml.child_text(entry, "Key")
        if key is None:
            raise MalformedXML()
        keys.append(key)
    await ctx.storage.head_bucket(bucket)
    results: list[Any] = []
    for key in keys:
        try:
            check_key(key)
            await ctx.storage.delete_object(bucket, key)
        except S3Error as e:
            results.append(
                xml.element("Error", ("Key", key), ("Code", e.code), ("Message", e.message))
            )
            continue
        if not quiet:
            results.append(xml.element("Deleted", ("Key", key)))
    return xml_response(xml.document("DeleteResult", results))
