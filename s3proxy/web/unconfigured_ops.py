"""Bucket sub-resources this server has no configuration for: GET answers what AWS
answers for a bucket where it was never set (an error or an empty document), so
clients and consoles that probe them see a plain, unconfigured bucket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from s3proxy import errors
from s3proxy.web import xml
from s3proxy.web.context import S3Context, S3Response, xml_response

Handler = Callable[[S3Context], Awaitable[S3Response]]

# sub-resource -> (operation name, the "not configured" error AWS sends)
MISSING: dict[str, tuple[str, type[errors.S3Error]]] = {
    "policy": ("GetBucketPolicy", errors.NoSuchBucketPolicy),
    "lifecycle": ("GetBucketLifecycleConfiguration", errors.NoSuchLifecycleConfiguration),
    "encryption": ("GetBucketEncryption", errors.ServerSideEncryptionConfigurationNotFoundError),
    "website": ("GetBucketWebsite", errors.NoSuchWebsiteConfiguration),
    "replication": ("GetBucketReplication", errors.ReplicationConfigurationNotFoundError),
    "publicAccessBlock": ("GetPublicAccessBlock", errors.NoSuchPublicAccessBlockConfiguration),
    "ownershipControls": ("GetBucketOwnershipControls", errors.OwnershipControlsNotFoundError),
    "object-lock": ("GetObjectLockConfiguration", errors.ObjectLockConfigurationNotFoundError),
}

# sub-resource -> (operation name, root element, children) of an empty 200 answer
EMPTY: dict[str, tuple[str, str, tuple[tuple[str, str], ...]]] = {
    "logging": ("GetBucketLogging", "BucketLoggingStatus", ()),
    "notification": ("GetBucketNotificationConfiguration", "NotificationConfiguration", ()),
    "requestPayment": (
        "GetBucketRequestPayment",
        "RequestPaymentConfiguration",
        (("Payer", "BucketOwner"),),
    ),
    "accelerate": ("GetBucketAccelerateConfiguration", "AccelerateConfiguration", ()),
}


def _missing(error: type[errors.S3Error]) -> Handler:
    async def get(ctx: S3Context) -> S3Response:
        await ctx.storage.head_bucket(ctx.need_bucket())  # NoSuchBucket first
        raise error(BucketName=ctx.need_bucket())

    return get


def _empty(root: str, children: tuple[tuple[str, str], ...]) -> Handler:
    async def get(ctx: S3Context) -> S3Response:
        await ctx.storage.head_bucket(ctx.need_bucket())
        return xml_response(xml.document(root, *children))

    return get


def operations() -> dict[tuple[str, str, str], tuple[str, Handler]]:
    """Entries for app.OPERATIONS: the GETs; PUT and DELETE stay NotImplemented."""
    table: dict[tuple[str, str, str], tuple[str, Handler]] = {}
    for sub, (name, error) in MISSING.items():
        table[("bucket", "GET", sub)] = (name, _missing(error))
    for sub, (name, root, children) in EMPTY.items():
        table[("bucket", "GET", sub)] = (name, _empty(root, children))
    return table
