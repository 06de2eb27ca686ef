"""What a handler receives (S3Context) and returns (S3Response)."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from s3proxy.acl import Principal
from s3proxy.config import Settings
from s3proxy.interfaces import IObjectReader, IStorage
from s3proxy.model import BucketInfo
from s3proxy.web.headers import Headers
from s3proxy.web.request import S3Request


@dataclass
class S3Context:
    request: S3Request
    storage: IStorage
    settings: Settings
    request_id: str
    method: str
    bucket: str | None
    key: str | None
    query: dict[str, str]
    headers: Headers
    operation: str = "Unknown"
    # Who is asking (set by authentication), and whether ACLs are enforced.
    principal: Principal = field(default_factory=lambda: Principal(None))
    enforce: bool = False
    known_emails: set[str] = field(default_factory=set)
    # What the signature check learnt that body verification needs (AuthResult).
    auth: Any = None
    bucket_info: BucketInfo | None = None

    @property
    def resource(self) -> str:
        """The Resource of an <Error> document: /bucket/key as the client named it."""
        if self.bucket is None:
            return "/"
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}"

    def need_bucket(self) -> str:
        assert self.bucket is not None
        return self.bucket

    def need_key(self) -> str:
        assert self.key is not None
        return self.key


@dataclass
class S3Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    content_type: str | None = None
    # A streamed body: its length goes in Content-Length, its bytes come from the reader.
    reader: IObjectReader | None = None
    length: int = 0
    # A long operation (CompleteMultipartUpload) whose XML body arrives later.
    pending: Coroutine[Any, Any, bytes] | None = None
    # The S3 error code of an <Error> response (the access log's error_code).
    error_code: str | None = None


def xml_response(body: bytes, status: int = 200) -> S3Response:
    return S3Response(status=status, body=body, content_type="application/xml")
