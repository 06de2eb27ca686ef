"""Multipart upload operations."""

from __future__ import annotations

from typing import Any

from s3proxy.errors import InvalidArgument, MalformedXML
from s3proxy.model import ObjectInfo, PartInfo, UploadInfo
from s3proxy.names import check_key
from s3proxy.storage.multipart import MAX_PART_NUMBER, check_upload_id
from s3proxy.web import xml
from s3proxy.web.access import authorize_object, new_object_attributes
from s3proxy.web.bucket_ops import owner_element, query_int
from s3proxy.web.checksums import checksum_elements
from s3proxy.web.conditional import check_write_conditions, creating_only
from s3proxy.web.context import S3Context, S3Response, xml_response
from s3proxy.web.headers import check_preconditions, content_md5, parse_range
from s3proxy.web.object_ops import (
    copy_source,
    expected_size,
    part_number,
    receive_body,
    with_requested_tags,
)

MAX_LISTED_PARTS = 1000
MAX_LISTED_UPLOADS = 1000


def _upload_id(ctx: S3Context) -> str:
    upload_id = ctx.query.get("uploadId", "")
    check_upload_id(upload_id)
    return upload_id


async def create_multipart_upload(ctx: S3Context) -> S3Response:
    bucket, key = ctx.need_bucket(), ctx.need_key()
    check_key(key)
    attributes = with_requested_tags(ctx, new_object_attributes(ctx))
    await ctx.request.body.drain()
    upload: UploadInfo = await ctx.storage.create_multipart_upload(bucket, key, attributes)
    return xml_response(
        xml.document(
            "InitiateMultipartUploadResult",
            ("Bucket", bucket),
            ("Key", key),
            ("UploadId", upload.upload_id),
        )
    )


async def upload_part(ctx: S3Context) -> S3Response:
    """UploadPart, or UploadPartCopy when ``x-amz-copy-source`` is present."""
    bucket, key = ctx.need_bucket(), ctx.need_key()
    check_key(key)
    number = part_number(ctx.query.get("partNumber"))
    upload_id = _upload_id(ctx)
    if ctx.headers.get("x-amz-copy-source") is not None:
        ctx.operation = "UploadPartCopy"
        return await _upload_part_copy(ctx, bucket, key, upload_id, number)
    md5 = content_md5(ctx.headers)
    info, checksums = await receive_body(
        ctx,
        lambda: ctx.storage.open_part_writer(
            bucket, key, upload_id, number, md5, expected_size(ctx)
        ),
    )
    return S3Response(headers=[("ETag", info.quoted_etag), *checksums.items()])


async def _upload_part_copy(
    ctx: S3Context, bucket: str, key: str, upload_id: str, number: int
) -> S3Response:
    src_bucket, src_key = copy_source(ctx)
    await ctx.request.body.drain()
    source: ObjectInfo = await ctx.storage.head_object(src_bucket, src_key)
    await authorize_object(ctx, src_bucket, source, "READ")
    check_preconditions(ctx.headers, source, prefix="x-amz-copy-source-")
    range_header = ctx.headers.get("x-amz-copy-source-range")
    byte_range = None
    if range_header is not None:
        byte_range = parse_range(range_header, source.size)
        if byte_range is None or not range_header.strip().split("=", 1)[1].split("-")[0]:
            raise InvalidArgument(
                "The x-amz-copy-source-range value must be of the form bytes=first-last "
                "where first and last are the zero-based offsets of the first and last "
                "bytes to copy",
                ArgumentName="x-amz-copy-source-range",
                ArgumentValue=range_header,
            )
    part: PartInfo = await ctx.storage.copy_part(
        bucket, key, upload_id, number, src_bucket, src_key, byte_range
    )
    return xml_response(
        xml.document(
            "CopyPartResult",
            ("LastModified", xml.iso8601(part.last_modified)),
            ("ETag", part.quoted_etag),
        )
    )


async def list_parts(ctx: S3Context) -> S3Response:
    bucket, key = ctx.need_bucket(), ctx.need_key()
    upload_id = _upload_id(ctx)
    max_parts = min(query_int(ctx, "max-parts", MAX_LISTED_PARTS), MAX_LISTED_PARTS)
    marker = query_int(ctx, "part-number-marker", 0)
    upload, page = await ctx.storage.list_parts(bucket, key, upload_id, marker, max_parts)
    owner = owner_element(ctx, _upload_owner(upload))
    return xml_response(
        xml.document(
            "ListPartsResult",
            ("Bucket", bucket),
            ("Key", key),
            ("UploadId", upload_id),
            xml.element("Initiator", *owner_element(ctx, _upload_owner(upload))),
            owner,
            ("StorageClass", "STANDARD"),
            ("PartNumberMarker", marker),
            ("NextPartNumberMarker", page.next_marker if page.next_marker is not None else None),
            ("MaxParts", max_parts),
            ("IsTruncated", page.is_truncated),
            [
                xml.element(
                    "Part",
                    ("PartNumber", p.number),
                    ("LastModified", xml.iso8601(p.last_modified)),
                    ("ETag", p.quoted_etag),
                    ("Size", p.size),
                    checksum_elements(p.checksums),
                )
                for p in page.parts
            ],
        )
    )


def _requested_parts(body: bytes) -> list[tuple[int, str]]:
    root = xml.parse(body, "CompleteMultipartUpload")
    entries = xml.children(root, "Part")
    if len(entries) > MAX_PART_NUMBER:
        raise MalformedXML("A CompleteMultipartUpload names at most 10000 parts.")
    parts = []
    for entry in entries:
        number = xml.integer(xml.child_text(entry, "PartNumber"))
        etag = xml.child_text(entry, "ETag")
        if number is None or etag is None:
            raise MalformedXML()
        parts.append((number, etag))
    if any(not 1 <= n <= MAX_PART_NUMBER for n, _ in parts):
        raise InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive",
            ArgumentName="partNumber",
        )
    return parts


async def complete_multipart_upload(ctx: S3Context) -> S3Response:
    bucket, key = ctx.need_bucket(), ctx.need_key()
    upload_id = _upload_id(ctx)
    parts = _requested_parts(await ctx.request.body.read_all(ctx.settings.max_xml_bytes))

    async def complete() -> bytes:
        await check_write_conditions(ctx, if_match=False)
        info: ObjectInfo = await ctx.storage.complete_multipart_upload(
            bucket,
            key,
            upload_id,
            parts,
            ctx.settings.min_part_size,
            create_only=creating_only(ctx),
        )
        return xml.document(
            "CompleteMultipartUploadResult",
            ("Location", f"/{bucket}/{key}"),
            ("Bucket", bucket),
            ("Key", key),
            ("ETag", info.quoted_etag),
            checksum_elements(info.attributes.checksums),
        )

    return S3Response(pending=complete(), content_type="application/xml")


async def abort_multipart_upload(ctx: S3Context) -> S3Response:
    bucket, key = ctx.need_bucket(), ctx.need_key()
    await ctx.storage.abort_multipart_upload(bucket, key, _upload_id(ctx))
    return S3Response(status=204)


async def list_multipart_uploads(ctx: S3Context) -> S3Response:
    bucket = ctx.need_bucket()
    prefix = ctx.query.get("prefix", "")
    delimiter = ctx.query.get("delimiter", "")
    key_marker = ctx.query.get("key-marker", "")
    upload_id_marker = ctx.query.get("upload-id-marker", "")
    max_uploads = min(query_int(ctx, "max-uploads", MAX_LISTED_UPLOADS), MAX_LISTED_UPLOADS)
    encoding = ctx.query.get("encoding-type")
    if encoding not in (None, "url"):
        raise InvalidArgument("Invalid Encoding Method specified in Request")
    page = await ctx.storage.list_multipart_uploads(
        bucket, prefix, delimiter, key_marker, upload_id_marker, max_uploads
    )

    def upload_element(upload: UploadInfo) -> Any:
        return xml.element(
            "Upload",
            ("Key", upload.key),
            ("UploadId", upload.upload_id),
            xml.element("Initiator", *owner_element(ctx, _upload_owner(upload))),
            owner_element(ctx, _upload_owner(upload)),
            ("StorageClass", "STANDARD"),
            ("Initiated", xml.iso8601(upload.initiated)),
        )

    return xml_response(
        xml.document(
            "ListMultipartUploadsResult",
            ("Bucket", bucket),
            ("KeyMarker", key_marker),
            ("UploadIdMarker", upload_id_marker),
            ("NextKeyMarker", page.next_key_marker),
            ("NextUploadIdMarker", page.next_upload_id_marker),
            ("Delimiter", delimiter or None),
            ("Prefix", prefix),
            ("MaxUploads", max_uploads),
            ("IsTruncated", page.is_truncated),
            [upload_element(u) for u in page.uploads],
            [xml.element("CommonPrefixes", ("Prefix", p)) for p in page.common_prefixes],
        )
    )


def _upload_owner(upload: UploadInfo) -> tuple[str, str] | None:
    """Who started an upload (the owner its object will have), if known."""
    acl = upload.attributes.acl
    return (acl.owner_id, acl.owner_name) if acl is not None else None
