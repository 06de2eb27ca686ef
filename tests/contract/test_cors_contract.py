"""The CORS-rules pair of the IStorage contract (put_bucket_cors / get_bucket_cors)."""

from __future__ import annotations

import pytest
import pytest_twisted  # type: ignore[import-untyped]

from s3proxy.acl import AccessControl, Grant, Grantee
from s3proxy.cors import CorsRule
from s3proxy.errors import NoSuchBucket
from s3proxy.interfaces import IStorage

BUCKET = "bucket"
RULES = (
    CorsRule(
        allowed_methods=("PUT", "POST"),
        allowed_origins=("http://*.example.test",),
        allowed_headers=("*",),
        expose_headers=("ETag", "x-amz-request-id"),
        max_age_seconds=3000,
        rule_id="uploads",
    ),
    CorsRule(allowed_methods=("GET",), allowed_origins=("*",)),
)


@pytest_twisted.ensureDeferred
async def test_cors_rules_round_trip(storage: IStorage) -> None:
    await storage.create_bucket(BUCKET)
    assert await storage.get_bucket_cors(BUCKET) is None
    await storage.put_bucket_cors(BUCKET, RULES)
    assert await storage.get_bucket_cors(BUCKET) == RULES
    replacement = (CorsRule(allowed_methods=("HEAD",), allowed_origins=("http://a.test",)),)
    await storage.put_bucket_cors(BUCKET, replacement)
    assert await storage.get_bucket_cors(BUCKET) == replacement
    await storage.put_bucket_cors(BUCKET, None)
    assert await storage.get_bucket_cors(BUCKET) is None


@pytest_twisted.ensureDeferred
async def test_cors_rules_survive_an_acl_change(storage: IStorage) -> None:
    await storage.create_bucket(BUCKET)
    await storage.put_bucket_cors(BUCKET, RULES)
    acl = AccessControl("owner-id", "owner", (Grant(Grantee("CanonicalUser", "x"), "READ"),))
    await storage.put_bucket_acl(BUCKET, acl)
    assert await storage.get_bucket_cors(BUCKET) == RULES
    assert (await storage.head_bucket(BUCKET)).acl == acl


@pytest_twisted.ensureDeferred
async def test_cors_rules_go_with_the_bucket(storage: IStorage) -> None:
    await storage.create_bucket(BUCKET)
    await storage.put_bucket_cors(BUCKET, RULES)
    await storage.delete_bucket(BUCKET)
    with pytest.raises(NoSuchBucket):
        await storage.get_bucket_cors(BUCKET)
    await storage.create_bucket(BUCKET)
    assert await storage.get_bucket_cors(BUCKET) is None


@pytest_twisted.ensureDeferred
async def test_cors_of_missing_bucket(storage: IStorage) -> None:
    with pytest.raises(NoSuchBucket):
        await storage.put_bucket_cors("missing", RULES)
    with pytest.raises(NoSuchBucket):
        await storage.get_bucket_cors("missing")
