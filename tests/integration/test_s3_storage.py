"""S3Storage over moto, beyond the shared contract: bucket prefixes keep deployments
apart on one upstream account, and expiry also aborts upstream uploads no record names."""

from __future__ import annotations

import time
from typing import Any

import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet import reactor as global_reactor

from s3proxy.model import ObjectAttributes
from s3proxy.storage.s3 import S3Storage, UpstreamClient, UpstreamCredentials
from tests.integration.conftest import boto3_client
from tests.moto_server import ACCESS_KEY, SECRET_KEY, MotoServer

reactor: Any = global_reactor


def storage(moto: MotoServer, prefix: str) -> S3Storage:
    keys = UpstreamCredentials(ACCESS_KEY, SECRET_KEY)
    return S3Storage(UpstreamClient(reactor, moto.endpoint, keys), bucket_prefix=prefix)


@pytest_twisted.ensureDeferred
async def test_prefixes_keep_deployments_apart(moto: MotoServer) -> None:
    moto.reset()
    one, two = storage(moto, "one-"), storage(moto, "two-")
    await one.create_bucket("shared-name")
    await two.create_bucket("shared-name")
    await two.create_bucket("only-two")
    upload = await one.create_multipart_upload("shared-name", "k", ObjectAttributes())
    assert [b.name for b in await one.list_buckets()] == ["shared-name"]
    assert [b.name for b in await two.list_buckets()] == ["only-two", "shared-name"]
    upstream = boto3_client(moto.endpoint)
    names = sorted(b["Name"] for b in upstream.list_buckets()["Buckets"])
    # Each deployment's state bucket is there upstream, and shown by neither.
    assert names == [
        "one-s3proxy-state",
        "one-shared-name",
        "two-only-two",
        "two-shared-name",
    ]
    page = await two.list_multipart_uploads("shared-name", "", "", "", "", 1000)
    assert page.uploads == []
    page = await one.list_multipart_uploads("shared-name", "", "", "", "", 1000)
    assert [u.upload_id for u in page.uploads] == [upload.upload_id]
    await one.client.close()
    await two.client.close()


@pytest_twisted.ensureDeferred
async def test_expiry_aborts_orphaned_upstream_uploads(moto: MotoServer) -> None:
    moto.reset()
    gateway = storage(moto, "gw-")
    await gateway.create_bucket("bk1")
    ours = await gateway.create_multipart_upload("bk1", "ours", ObjectAttributes())
    upstream = boto3_client(moto.endpoint)
    # Started upstream, but the gateway died before writing its record.
    upstream.create_multipart_upload(Bucket="gw-bk1", Key="orphan")
    # Another deployment's upload in another bucket is not ours to touch.
    upstream.create_bucket(Bucket="other-bk1")
    upstream.create_multipart_upload(Bucket="other-bk1", Key="theirs")

    # (moto reports every upload as initiated on 2010-11-10, so the orphan's age
    # cannot sit between two cut-offs here; ours is dated by its own ID.)
    assert await gateway.expire_multipart_uploads(0) == 0
    assert await gateway.expire_multipart_uploads(time.time() + 3600) == 2
    assert upstream.list_multipart_uploads(Bucket="gw-bk1").get("Uploads", []) == []
    assert [u["Key"] for u in upstream.list_multipart_uploads(Bucket="other-bk1")["Uploads"]] == [
        "theirs"
    ]
    page = await gateway.list_multipart_uploads("bk1", "", "", "", "", 1000)
    assert ours.upload_id not in [u.upload_id for u in page.uploads]
    await gateway.client.close()


@pytest_twisted.ensureDeferred
async def test_dot_segments_stay_in_the_key(moto: MotoServer) -> None:
    """Keys S3 stores as they are, "..", "." segments included, never resolve to
    another object or another upstream bucket."""
    moto.reset()
    gateway = storage(moto, "gw-")
    await gateway.create_bucket("bk1")
    keys = ["../x", "a/./b", "..", "a/../../evil-bucket", "./"]
    for key in keys:
        writer = await gateway.open_writer("bk1", key, ObjectAttributes(), None, None)
        writer.write(key.encode())
        await writer.finish()
    page = await gateway.list_objects("bk1", "", "", "", 1000)
    assert [o.key for o in page.objects] == sorted(keys)
    for key in keys:
        assert (await gateway.head_object("bk1", key)).size == len(key)
    upstream = boto3_client(moto.endpoint)
    assert sorted(b["Name"] for b in upstream.list_buckets()["Buckets"]) == ["gw-bk1"]
    assert upstream.get_object(Bucket="gw-bk1", Key="../x")["Body"].read() == b"../x"
    await gateway.client.close()
