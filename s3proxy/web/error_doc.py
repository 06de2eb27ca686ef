"""The ``<Error>`` document and the request ids it carries: shared by the application
and by the channel, which answers a few errors before any request reaches the app."""

from __future__ import annotations

import itertools
import os

from s3proxy.errors import S3Error
from s3proxy.web import xml

_REQUEST_IDS = itertools.count(int.from_bytes(os.urandom(4), "big") << 32)


def new_request_id() -> str:
    """Unique within the process and unpredictable across processes, without a
    system call per request."""
    return f"{next(_REQUEST_IDS) & 0xFFFFFFFFFFFFFFFF:016X}"


def error_document(error: S3Error, resource: str, request_id: str) -> bytes:
    return xml.document(
        "Error",
        ("Code", error.code),
        ("Message", xml.safe_text(error.message)),
        [(name, xml.safe_text(str(value))) for name, value in error.fields.items()],
        ("Resource", xml.safe_text(resource)),
        ("RequestId", request_id),
        namespace=False,
    )
