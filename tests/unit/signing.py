"""What the SigV2 and SigV4 verification tests share: the users, the endpoint, and
the helpers that change a signed request or expect it refused."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from s3proxy import errors
from s3proxy.auth.credentials import User
from s3proxy.auth.sigv4 import SignedRequest, authenticate

ALICE = User("AKIDALICE", "alice/secret+key", "id-alice", "alice")
BOB = User("AKIDBOB", "bob-secret", "id-bob", "bob")
USERS = {u.access_key: u for u in (ALICE, BOB)}
NOW = 1777636800.0  # 2026-05-01T12:00:00Z
HOST = "127.0.0.1:8000"
PREFIX = "/api/v1/s3"


def raises(error: type[errors.S3Error], req: SignedRequest, **kwargs: Any) -> errors.S3Error:
    with pytest.raises(errors.S3Error) as info:
        authenticate(req, USERS, **kwargs)
    assert type(info.value) is error, repr(info.value)
    return info.value


def with_headers(req: SignedRequest, **changes: str | None) -> SignedRequest:
    """``req`` with headers set (``x_amz_date=`` names ``x-amz-date``), or removed by None."""
    headers = {name: list(req.header_values(name)) for name in req.header_names()}
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = [value]
    return dataclasses.replace(req, headers=headers)
