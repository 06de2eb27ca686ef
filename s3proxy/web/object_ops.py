"""Object-level S3 operations: the streaming paths in and out of storage."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from urllib.parse import unquote

from twisted.internet.defer import Deferred
from zope.interface import implementer

from s3proxy.errors import (
    InvalidArgument,
    InvalidPartNumber,
    InvalidRange,
    InvalidRequest,
)
from s3proxy.interfaces import IObjectReader, IObjectWriter
from s3proxy.model import ByteRange, ObjectAttributes, ObjectInfo
from s3proxy.names import check_key
from s3proxy.storage.multipart import MAX_PART_NUMBER
from s3proxy.web import xml
from s3proxy.web.access import authorize_object, new_object_attributes
from s3proxy.web.conditional import check_write_conditions, creating_only
from s3proxy.web.context import S3Context, S3Response, xml_response
from s3proxy.web.headers import (
    check_preconditions,
    content_md5,
    object_headers,
    parse_range,
)
from s3proxy.web.numbers import non_negative
from s3proxy.web.request import is_aws_chunked
from s3proxy.web.tagging import tags_from_header

# ``response-*`` query parameters override these response headers on GET/HEAD.
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def expected_size(ctx: S3Context) -> int | None:
    """The body's size once decoded, when the request says it: the decoded length of
    an aws-chunked body, else Content-Length (None for a chunked body). A backend that
    streams the body on needs it: S3 stores (AWS, Ceph RGW) refuse a PUT without a
    length (411 MissingContentLength)."""
    decoded = ctx.headers.get("x-amz-decoded-content-length")
    if decoded is None:
        if is_aws_chunked(ctx.request):
            return None
        return non_negative(ctx.headers.get("content-length"))
    size = non_negative(decoded)
    if size is None:
        raise InvalidArgument(
            "x-amz-decoded-content-length must be a number",
            ArgumentName="x-amz-decoded-content-length",
            ArgumentValue=decoded,
        )
    return size


async def put_object(ctx: S3Context) -> S3Response:
    if ctx.headers.get("x-amz-copy-source") is not None:
        ctx.operation = "CopyObject"
        return await copy_object(ctx)
    bucket, key = ctx.need_bucket(), ctx.need_key()
    check_key(key)
    attributes = with_requested_tags(ctx, new_object_attributes(ctx))
    await check_write_conditions(ctx)
    md5 = content_md5(ctx.headers)
    create_only = creating_only(ctx)
    info, checksums = await receive_body(
        ctx,
        lambda: ctx.storage.open_writer(
            bucket, key, attributes, md5, expected_size(ctx), create_only=create_only
        ),
    )
    return S3Response(headers=[("ETag", info.quoted_etag), *checksums.items()])


def with_requested_tags(ctx: S3Context, attributes: ObjectAttributes) -> ObjectAttributes:
    """``attributes`` with the tags of ``x-amz-tagging``, if the request has it."""
    tags = tags_from_header(ctx.headers.get("x-amz-tagging"))
    return attributes if tags is None else dataclasses.replace(attributes, tags=tags)


async def receive_body(
    ctx: S3Context, open_writer: Callable[[], Deferred[IObjectWriter]]
) -> tuple[ObjectInfo, dict[str, str]]:
    """Stream the request body into a new writer; the body verifies its checksums
    (and the payload SHA-256) on the way, so a mismatch fails before anything is
    committed. The verified checksums are stored with what the writer commits."""
    writer = await open_writer()
    try:
        await ctx.request.body.stream_to(writer)
        checks = ctx.request.body.checks
        checksums = checks.stored() if checks is not None else {}
        info: ObjectInfo = await writer.finish(checksums)
    except BaseException:
        # Disconnects (CancelledError) included: nothing of a partial upload remains.
        await writer.abort()
        raise
    return info, checksums


def copy_source(ctx: S3Context) -> tuple[str, str]:
    """(bucket, key) of ``x-amz-copy-source``: URL-encoded, optional leading slash."""
    raw = ctx.headers.get("x-amz-copy-source") or ""
    source, _, version = raw.partition("?")
    if version and version not in ("versionId=null", "versionId="):
        raise InvalidArgument("Versioning is not enabled on this server.", ArgumentName="versionId")
    try:
        path = unquote(source, errors="strict").lstrip("/")
    except UnicodeDecodeError:
        raise InvalidArgument(
            "Invalid copy source encoding", ArgumentName="x-amz-copy-source"
        ) from None
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise InvalidArgument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            ArgumentName="x-amz-copy-source",
            ArgumentValue=raw,
        )
    check_key(key)
    return bucket, key


def _copy_directive(ctx: S3Context, what: str) -> str:
    """COPY (the default) or REPLACE, from ``x-amz-{what}-directive``."""
    header = f"x-amz-{what}-directive"
    directive = (ctx.headers.get(header) or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise InvalidArgument(
            f"Unknown {what} directive.", ArgumentName=header, ArgumentValue=directive
        )
    return directive


async def copy_object(ctx: S3Context) -> S3Response:
    bucket, key = ctx.need_bucket(), ctx.need_key()
    check_key(key)
    src_bucket, src_key = copy_source(ctx)
    directive = _copy_directive(ctx, "metadata")
    tagging = _copy_directive(ctx, "tagging")
    if (src_bucket, src_key) == (bucket, key) and directive == "COPY":
        raise InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect "
            "location or encryption attributes."
        )
    await ctx.request.body.drain()
    source = await ctx.storage.head_object(src_bucket, src_key)
    await authorize_object(ctx, src_bucket, source, "READ")
    check_preconditions(ctx.headers, source, prefix="x-amz-copy-source-")
    # A copy never takes the source's ACL: it gets the one this request asks for.
    attributes = new_object_attributes(ctx, None if directive == "REPLACE" else source.attributes)
    # Tags follow their own directive: the source's, or those of x-amz-tagging.
    if tagging == "REPLACE":
        tags = tags_from_header(ctx.headers.get("x-amz-tagging")) or {}
    else:
        tags = source.attributes.tags
    attributes = dataclasses.replace(attributes, tags=tags)
    info: ObjectInfo = await ctx.storage.copy_object(src_bucket, src_key, bucket, key, attributes)
    return xml_response(
        xml.document(
            "CopyObjectResult",
            ("LastModified", xml.iso8601(info.last_modified)),
            ("ETag", info.quoted_etag),
        )
    )


@implementer(IObjectReader)
class InfoOnly:
    """What a HEAD answers from: the object's ObjectInfo and no bytes. A HEAD asks the
    backend for the object's record rather than opening a read (over s3: an upstream
    HEAD, not a GET whose half-read connection would be thrown away)."""

    def __init__(self, info: ObjectInfo) -> None:
        self.info = info
        self.byte_range: ByteRange | None = None

    def start(self, consumer: object) -> Deferred[None]:
        raise RuntimeError("a HEAD response has no body")

    def restrict(self, byte_range: ByteRange | None) -> None:
        self.byte_range = byte_range

    def close(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


async def _open_for_read(ctx: S3Context) -> tuple[IObjectReader, ByteRange | None]:
    bucket, key = ctx.need_bucket(), ctx.need_key()
    check_key(key)
    # Opened first, then judged on what it is: the conditions and the range apply to
    # exactly the version that will be served.
    reader: IObjectReader
    if ctx.request.method == b"HEAD":
        reader = InfoOnly(await ctx.storage.head_object(bucket, key))
    else:
        reader = await ctx.storage.open_reader(bucket, key, None)
    try:
        info: ObjectInfo = reader.info
        await authorize_object(ctx, bucket, info, "READ")
        check_preconditions(ctx.headers, info)
        byte_range = _range(ctx, info)
    except BaseException:
        reader.close()
        raise
    reader.restrict(byte_range)
    return reader, byte_range


def part_number(text: str | None) -> int:
    number = non_negative(text)
    if number is None or not 1 <= number <= MAX_PART_NUMBER:
        raise InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=str(text),
        )
    return number


def _part_range(ctx: S3Context, info: ObjectInfo, text: str) -> ByteRange | None:
    """The bytes of part ``partNumber`` of an object (a plain object is one part)."""
    number = part_number(text)
    if ctx.headers.get("range") is not None:
        raise InvalidRequest("Cannot specify both Range header and partNumber query parameter")
    sizes = info.part_sizes or (info.size,)
    if number > len(sizes):
        raise InvalidPartNumber(PartNumberRequested=text, ActualPartCount=str(len(sizes)))
    first = sum(sizes[: number - 1])
    return ByteRange(first, first + sizes[number - 1] - 1) if sizes[number - 1] else None


def _range(ctx: S3Context, info: ObjectInfo) -> ByteRange | None:
    part = ctx.query.get("partNumber")
    if part is not None:
        return _part_range(ctx, info, part)
    try:
        return parse_range(ctx.headers.get("range"), info.size)
    except InvalidRange as e:
        e.headers.append(("Content-Range", f"bytes */{info.size}"))
        raise


async def get_object(ctx: S3Context) -> S3Response:
    reader, byte_range = await _open_for_read(ctx)
    info = reader.info
    headers = object_headers(info)
    overrides = {
        header: ctx.query[param]
        for param, header in RESPONSE_OVERRIDES.items()
        if param in ctx.query
    }
    headers = [(k, v) for k, v in headers if k not in overrides] + list(overrides.items())
    status = 200
    length = info.size
    if (ctx.headers.get("x-amz-checksum-mode") or "").upper() == "ENABLED" and not (
        byte_range is not None and byte_range.length != info.size
    ):
        headers += sorted(info.attributes.checksums.items())
    if "partNumber" in ctx.query:
        status = 206
        if info.part_sizes:
            headers.append(("x-amz-mp-parts-count", str(len(info.part_sizes))))
    if byte_range is not None:
        status = 206
        length = byte_range.length
        headers.append(("Content-Range", f"bytes {byte_range.first}-{byte_range.last}/{info.size}"))
    return S3Response(status=status, headers=headers, reader=reader, length=length)


async def delete_object(ctx: S3Context) -> S3Response:
    bucket, key = ctx.need_bucket(), ctx.need_key()
    check_key(key)
    if ctx.headers.get("if-match") is not None:
        await check_write_conditions(ctx)
    await ctx.storage.delete_object(bucket, key)
    return S3Response(status=204)
