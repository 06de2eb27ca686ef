"""GetObjectAttributes: ``GET /bucket/key?attributes`` with the attributes wanted in
``x-amz-object-attributes``; parts paged by ``x-amz-max-parts`` and
``x-amz-part-number-marker`` (headers, as AWS takes them)."""

from __future__ import annotations

from typing import Any

from s3proxy.errors import InvalidArgument
from s3proxy.model import ObjectInfo
from s3proxy.names import check_key
from s3proxy.web import xml
from s3proxy.web.access import authorize_object
from s3proxy.web.checksums import checksum_elements
from s3proxy.web.context import S3Context, S3Response, xml_response
from s3proxy.web.headers import http_date
from s3proxy.web.numbers import non_negative

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
DEFAULT_MAX_PARTS = 1000


def wanted_attributes(ctx: S3Context) -> set[str]:
    raw = ",".join(v for k, v in ctx.headers.items() if k == "x-amz-object-attributes")
    names = {n.strip() for n in raw.split(",") if n.strip()}
    if not names or not names <= set(ATTRIBUTES):
        raise InvalidArgument(
            "Invalid attribute name specified.",
            ArgumentName="x-amz-object-attributes",
            ArgumentValue=raw,
        )
    return names


def _header_int(ctx: S3Context, name: str, default: int) -> int:
    text = ctx.headers.get(name)
    if text is None:
        return default
    value = non_negative(text)
    if value is None:
        raise InvalidArgument(
            f"Provided {name} not an integer or within integer range",
            ArgumentName=name,
            ArgumentValue=text,
        )
    return value


def _parts(ctx: S3Context, info: ObjectInfo) -> Any:
    if not info.part_sizes:
        return None  # a plain PutObject has no parts to report
    max_parts = min(_header_int(ctx, "x-amz-max-parts", DEFAULT_MAX_PARTS), DEFAULT_MAX_PARTS)
    marker = _header_int(ctx, "x-amz-part-number-marker", 0)
    numbered = list(enumerate(info.part_sizes, start=1))
    after = [(n, size) for n, size in numbered if n > marker]
    page = after[:max_parts]
    truncated = len(after) > len(page)
    return xml.element(
        "ObjectParts",
        ("PartsCount", len(info.part_sizes)),  # TotalPartsCount in the SDKs
        ("PartNumberMarker", marker),
        ("NextPartNumberMarker", page[-1][0] if page else marker),
        ("MaxParts", max_parts),
        ("IsTruncated", truncated),
        [xml.element("Part", ("PartNumber", n), ("Size", size)) for n, size in page],
    )


def _checksum(info: ObjectInfo) -> Any:
    found = checksum_elements(info.attributes.checksums)
    return xml.element("Checksum", found) if found else None


async def get_object_attributes(ctx: S3Context) -> S3Response:
    bucket, key = ctx.need_bucket(), ctx.need_key()
    check_key(key)
    wanted = wanted_attributes(ctx)
    info: ObjectInfo = await ctx.storage.head_object(bucket, key)
    await authorize_object(ctx, bucket, info, "READ")
    body = xml.document(
        "GetObjectAttributesOutput",
        ("ETag", info.etag) if "ETag" in wanted else None,
        _checksum(info) if "Checksum" in wanted else None,
        _parts(ctx, info) if "ObjectParts" in wanted else None,
        ("StorageClass", info.storage_class) if "StorageClass" in wanted else None,
        ("ObjectSize", info.size) if "ObjectSize" in wanted else None,
    )
    response = xml_response(body)
    response.headers.append(("Last-Modified", http_date(info.last_modified)))
    return response
