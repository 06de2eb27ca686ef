"""PostObject: a browser form upload (``POST /bucket``, multipart/form-data).

The fields before the file are parsed, the policy and its signature checked and the
writer opened before the file's first byte is stored; the file then streams into the
writer with backpressure (see ``formdata``).
"""

from __future__ import annotations

import dataclasses
from urllib.parse import quote, urlencode

from s3proxy.acl import Principal
from s3proxy.auth.postpolicy import SizeRange, authenticate_form, check_policy
from s3proxy.errors import (
    EntityTooSmall,
    InvalidArgument,
    PreconditionFailed,
)
from s3proxy.interfaces import IObjectWriter
from s3proxy.model import ObjectInfo
from s3proxy.names import check_key
from s3proxy.web import xml
from s3proxy.web.access import bucket_acl, new_object_attributes, require
from s3proxy.web.context import S3Context, S3Response
from s3proxy.web.formdata import FilePart, FormParser, boundary_of
from s3proxy.web.headers import Headers

# The fields before the file: S3 allows about 20 KB (the policy is most of it).
MAX_FIELDS_BYTES = 64 * 1024
# Form fields that become the object's headers, as a PUT's request headers would.
_HEADER_FIELDS = (
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)


async def post_object(ctx: S3Context) -> S3Response:
    bucket = ctx.need_bucket()
    boundary = boundary_of(ctx.headers.get("content-type"))
    if boundary is None:
        raise PreconditionFailed(
            Condition="Bucket POST must be of the enclosure-type multipart/form-data"
        )
    form = FormParser(boundary, MAX_FIELDS_BYTES)
    body_done = ctx.request.body.stream_to(form)
    writer: IObjectWriter | None = None
    try:
        part: FilePart = await form.file_started
        if form.failure is not None:
            raise form.failure
        key, size = await _check_form(ctx, form.fields, part, bucket)
        attributes = new_object_attributes(_as_headers(ctx, form.fields))
        writer = await ctx.storage.open_writer(bucket, key, attributes, None, None)
        form.attach(writer, size.maximum if size is not None else None)
        await body_done
        if form.failure is not None:
            raise form.failure
        if size is not None and form.size < size.minimum:
            raise EntityTooSmall(ProposedSize=str(form.size), MinSizeAllowed=str(size.minimum))
        info: ObjectInfo = await writer.finish()
    except BaseException:
        form.detach()
        body_done.addErrback(lambda _: None)
        if writer is not None:
            await writer.abort()
        raise
    return _success(ctx, form.fields, bucket, key, info)


async def _check_form(
    ctx: S3Context, fields: dict[str, str], part: FilePart, bucket: str
) -> tuple[str, SizeRange | None]:
    if "key" not in fields:
        raise InvalidArgument(
            "Bucket POST must contain a field named 'key'.  If it is specified, please "
            "check the order of the fields.",
            ArgumentName="key",
            ArgumentValue="",
        )
    if ctx.signers is not None:  # not in open mode, where no signature is checked
        user = authenticate_form(fields, ctx.signers)
        ctx.principal = (
            Principal(None) if user is None else Principal(user.user_id, user.display_name)
        )
    size = None
    if "policy" in fields:
        size = check_policy(fields["policy"], fields, bucket, ctx.now)
    key = fields["key"].replace("${filename}", part.filename)
    check_key(key)
    info = await ctx.storage.head_bucket(bucket)
    ctx.bucket_info = info
    require(ctx, bucket_acl(ctx, info), "WRITE")
    return key, size


def _as_headers(ctx: S3Context, fields: dict[str, str]) -> S3Context:
    """The request as if the form's fields were its headers (for the attributes)."""
    raw = {name: [value] for name, value in fields.items() if _is_header_field(name)}
    if "acl" in fields:
        raw["x-amz-acl"] = [fields["acl"]]
    return dataclasses.replace(ctx, headers=Headers(raw))


def _is_header_field(name: str) -> bool:
    return name in _HEADER_FIELDS or name.startswith(("x-amz-meta-", "x-amz-grant-"))


def _success(
    ctx: S3Context, fields: dict[str, str], bucket: str, key: str, info: ObjectInfo
) -> S3Response:
    host = ctx.headers.get("host") or "localhost"
    if ctx.virtual_bucket is not None:
        location = f"http://{host}/{quote(key, safe='/')}"
    else:
        location = f"http://{host}/{bucket}/{quote(key, safe='/')}"
    headers = [("ETag", info.quoted_etag), ("Location", location)]
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect:
        query = urlencode({"bucket": bucket, "key": key, "etag": info.quoted_etag})
        target = redirect + ("&" if "?" in redirect else "?") + query
        return S3Response(status=303, headers=[*headers[:1], ("Location", target)])
    status = fields.get("success_action_status")
    if status == "201":
        body = xml.document(
            "PostResponse",
            ("Location", location),
            ("Bucket", bucket),
            ("Key", key),
            ("ETag", info.quoted_etag),
            namespace=False,
        )
        return S3Response(status=201, headers=headers, body=body, content_type="application/xml")
    if status == "200":
        return S3Response(status=200, headers=headers)
    return S3Response(status=204, headers=headers)
