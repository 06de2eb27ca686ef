"""The upstream S3 backend: objects live in another S3-compatible store."""

from s3proxy.storage.s3.client import UpstreamClient
from s3proxy.storage.s3.signer import UpstreamCredentials
from s3proxy.storage.s3.storage import S3Storage

__all__ = ["S3Storage", "UpstreamClient", "UpstreamCredentials"]
