"""Object and bucket tagging: Get/Put/DeleteObjectTagging, Get/Put/DeleteBucketTagging.

Object tags are stored with the object's attributes; bucket tags are the bucket
configuration document "tagging" (see IStorage.put_bucket_config)."""

from __future__ import annotations

from s3proxy.errors import NoSuchTagSet
from s3proxy.model import ObjectInfo
from s3proxy.names import check_key
from s3proxy.web.access import authorize_object
from s3proxy.web.context import S3Context, S3Response, xml_response
from s3proxy.web.tagging import (
    MAX_BUCKET_TAGS,
    MAX_OBJECT_TAGS,
    parse_tagging,
    render_tagging,
    tags_from_json,
    tags_to_json,
)

BUCKET_TAGGING = "tagging"


async def _object(ctx: S3Context) -> ObjectInfo:
    bucket, key = ctx.need_bucket(), ctx.need_key()
    check_key(key)
    info: ObjectInfo = await ctx.storage.head_object(bucket, key)
    return info


async def get_object_tagging(ctx: S3Context) -> S3Response:
    info = await _object(ctx)
    await authorize_object(ctx, ctx.need_bucket(), info, "READ")
    return xml_response(render_tagging(info.attributes.tags))


async def put_object_tagging(ctx: S3Context) -> S3Response:
    body = await ctx.request.body.read_all(ctx.settings.max_xml_bytes)
    tags = parse_tagging(body, MAX_OBJECT_TAGS)
    await _object(ctx)
    await ctx.storage.put_object_tagging(ctx.need_bucket(), ctx.need_key(), tags)
    return S3Response()


async def delete_object_tagging(ctx: S3Context) -> S3Response:
    await _object(ctx)
    await ctx.storage.put_object_tagging(ctx.need_bucket(), ctx.need_key(), {})
    return S3Response(status=204)


async def get_bucket_tagging(ctx: S3Context) -> S3Response:
    stored = await ctx.storage.get_bucket_config(ctx.need_bucket(), BUCKET_TAGGING)
    if stored is None:
        raise NoSuchTagSet(BucketName=ctx.need_bucket())
    return xml_response(render_tagging(tags_from_json(stored)))


async def put_bucket_tagging(ctx: S3Context) -> S3Response:
    body = await ctx.request.body.read_all(ctx.settings.max_xml_bytes)
    tags = parse_tagging(body, MAX_BUCKET_TAGS)
    # An empty TagSet is how boto3 users clear tags; AWS stores it as none.
    value = tags_to_json(tags) if tags else None
    await ctx.storage.put_bucket_config(ctx.need_bucket(), BUCKET_TAGGING, value)
    return S3Response(status=204)


async def delete_bucket_tagging(ctx: S3Context) -> S3Response:
    await ctx.storage.put_bucket_config(ctx.need_bucket(), BUCKET_TAGGING, None)
    return S3Response(status=204)
