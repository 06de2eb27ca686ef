"""Who may do what: ACLs from request headers, and the checks operations make.

With credentials configured every request names a principal (a user, or anonymous)
and ACLs are enforced. In open mode the principal is the configured owner and nothing
is enforced, but ACLs are still recorded and returned.

Buckets and objects that carry no ACL (written in open mode, or by another program
into a filesystem bucket) are open to every authenticated user; an object without an
ACL is judged by its bucket's.
"""

from __future__ import annotations

import dataclasses

from s3proxy.acl import (
    AUTHENTICATED_USERS,
    GRANT_HEADERS,
    AccessControl,
    Grant,
    Grantee,
    Principal,
    allows,
    canned_acl,
    check_grants,
    parse_grant_header,
)
from s3proxy.errors import AccessDenied, InvalidRequest, S3Error
from s3proxy.model import BucketInfo, ObjectAttributes, ObjectInfo
from s3proxy.web.context import S3Context
from s3proxy.web.headers import object_attributes

# The permission on the bucket each operation needs ("OWNER": the bucket's owner;
# None: checked on the object by the operation itself).
BUCKET_PERMISSION: dict[str, str | None] = {
    "HeadBucket": "READ",
    "ListObjects": "READ",
    "ListMultipartUploads": "READ",
    "ListParts": "READ",
    "GetBucketLocation": "OWNER",
    "GetBucketVersioning": "OWNER",
    "DeleteBucket": "OWNER",
    "GetBucketAcl": "READ_ACP",
    "PutBucketAcl": "WRITE_ACP",
    "DeleteObjects": "WRITE",
    "PutObject": "WRITE",
    "DeleteObject": "WRITE",
    "CreateMultipartUpload": "WRITE",
    "UploadPart": "WRITE",
    "CompleteMultipartUpload": "WRITE",
    "AbortMultipartUpload": "WRITE",
    "GetObject": None,
    "HeadObject": None,
    "GetObjectAcl": None,
    "PutObjectAcl": None,
    "GetObjectTagging": None,
    "GetObjectAttributes": None,
    "PutObjectTagging": "WRITE",
    "DeleteObjectTagging": "WRITE",
}


def _unowned(ctx: S3Context) -> AccessControl:
    """The ACL of something written before anyone was known."""
    return AccessControl(
        ctx.settings.owner_id,
        ctx.settings.owner_name,
        (Grant(Grantee("Group", AUTHENTICATED_USERS), "FULL_CONTROL"),),
    )


def bucket_acl(ctx: S3Context, bucket: BucketInfo) -> AccessControl:
    return bucket.acl or _unowned(ctx)


def require(ctx: S3Context, acl: AccessControl, permission: str) -> None:
    if not ctx.enforce:
        return
    who = ctx.principal
    if permission == "OWNER":
        granted = not who.anonymous and (
            who.user_id == acl.owner_id or allows(acl, who, "FULL_CONTROL")
        )
    else:
        granted = allows(acl, who, permission)
    if not granted:
        raise AccessDenied()


async def authorize_bucket(ctx: S3Context) -> None:
    """The bucket-level check of the operation in ``ctx.operation``."""
    if not ctx.enforce:
        return
    if ctx.operation in ("CreateBucket", "ListBuckets"):
        if ctx.principal.anonymous:
            raise AccessDenied()
        return
    if ctx.bucket is None:
        return
    permission = BUCKET_PERMISSION.get(ctx.operation, "OWNER")
    if permission is None:
        return
    info: BucketInfo = await ctx.storage.head_bucket(ctx.bucket)
    ctx.bucket_info = info
    require(ctx, bucket_acl(ctx, info), permission)


# Operations on the key in the request's path that fail with NoSuchKey when it is missing.
_KEY_OPERATIONS = frozenset(
    {"GetObject", "HeadObject", "GetObjectAcl", "PutObjectAcl", "GetObjectTagging"}
    | {"GetObjectAttributes"}
)


async def conceal_missing_key(ctx: S3Context) -> None:
    """Called when the key an operation names is missing: as S3 does, answer
    AccessDenied rather than NoSuchKey to whoever may not list the bucket (READ on
    it), so nobody can probe which keys a private bucket holds."""
    if not ctx.enforce or ctx.bucket is None or ctx.operation not in _KEY_OPERATIONS:
        return
    info = ctx.bucket_info
    if info is None:
        try:
            info = await ctx.storage.head_bucket(ctx.bucket)
        except S3Error:
            return
    require(ctx, bucket_acl(ctx, info), "READ")


async def object_acl(ctx: S3Context, bucket: str, info: ObjectInfo) -> AccessControl:
    """The ACL an object is judged by: its own, else its bucket's (the bucket read by
    authorize_bucket is reused rather than read again)."""
    if info.attributes.acl is not None:
        return info.attributes.acl
    bucket_info = ctx.bucket_info
    if bucket_info is None or bucket_info.name != bucket:
        bucket_info = await ctx.storage.head_bucket(bucket)
    return bucket_acl(ctx, bucket_info)


async def authorize_object(ctx: S3Context, bucket: str, info: ObjectInfo, permission: str) -> None:
    if ctx.enforce:
        require(ctx, await object_acl(ctx, bucket, info), permission)


def owner_of_new(ctx: S3Context) -> tuple[str, str]:
    who = ctx.principal
    if who.anonymous:  # anonymous writes (public-read-write buckets) belong to the bucket
        info = ctx.bucket_info
        acl = info.acl if info is not None and info.acl is not None else _unowned(ctx)
        return acl.owner_id, acl.owner_name
    return who.user_id or "", who.display_name


def acl_from_headers(
    ctx: S3Context, owner: tuple[str, str], bucket_owner: tuple[str, str] | None = None
) -> AccessControl:
    """The ACL a request asks for with ``x-amz-acl`` (canned) or ``x-amz-grant-*``
    headers; private if neither."""
    owner_id, owner_name = owner
    canned = ctx.headers.get("x-amz-acl")
    grants: list[Grant] = []
    for header, permission in GRANT_HEADERS.items():
        value = ctx.headers.get(header)
        if value is not None:
            grants += parse_grant_header(value, permission)
    if canned is not None and grants:
        raise InvalidRequest("Specifying both Canned ACLs and Header Grants is not allowed")
    if grants:
        check_grants(tuple(grants), ctx.known_emails)
        return AccessControl(owner_id, owner_name, tuple(grants))
    return canned_acl(canned or "private", owner_id, owner_name, bucket_owner)


def principal_for_open_mode(ctx: S3Context) -> Principal:
    return Principal(ctx.settings.owner_id, ctx.settings.owner_name)


def new_object_attributes(ctx: S3Context, base: ObjectAttributes | None = None) -> ObjectAttributes:
    """Attributes of an object being created: ``base`` (a copy's source attributes)
    or those the request's headers give, with the ACL the request asks for."""
    bucket = ctx.bucket_info
    bucket_owner = (bucket.acl.owner_id, bucket.acl.owner_name) if bucket and bucket.acl else None
    acl = acl_from_headers(ctx, owner_of_new(ctx), bucket_owner)
    return dataclasses.replace(base or object_attributes(ctx.headers), acl=acl)
