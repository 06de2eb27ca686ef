"""Conditional writes and deletes: ``If-None-Match: *`` (create only) on PutObject and
CompleteMultipartUpload, ``If-Match: <etag>`` on PutObject and DeleteObject.

The conditions are checked against the current object before the write or delete;
they are not yet atomic against a writer racing between the check and the commit
(see docs/operations.md)."""

from __future__ import annotations

from s3proxy.errors import NoSuchKey, NotImplementedError_, PreconditionFailed
from s3proxy.web.context import S3Context


def _etags(value: str) -> set[str]:
    return {tag.strip().removeprefix("W/").strip('"') for tag in value.split(",") if tag.strip()}


async def check_write_conditions(ctx: S3Context, if_match: bool = True) -> None:
    """PreconditionFailed (412) if the request's conditions do not hold; NoSuchKey
    for ``If-Match`` on a missing key, as AWS answers."""
    bucket, key = ctx.need_bucket(), ctx.need_key()
    none_match = ctx.headers.get("if-none-match")
    match = ctx.headers.get("if-match") if if_match else None
    if none_match is None and match is None:
        return
    if none_match is not None and none_match.strip() != "*":
        raise NotImplementedError_("If-None-Match only supports the value *.")
    try:
        info = await ctx.storage.head_object(bucket, key)
    except NoSuchKey:
        if match is not None:
            raise
        return
    if none_match is not None:
        raise PreconditionFailed(Condition="If-None-Match")
    if match is not None and match.strip() != "*" and info.etag not in _etags(match):
        raise PreconditionFailed(Condition="If-Match")
