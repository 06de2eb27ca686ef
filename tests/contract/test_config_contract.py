"""The contract of per-bucket configuration documents and object tags, on every backend."""

from __future__ import annotations

import pytest
import pytest_twisted  # type: ignore[import-untyped]

from s3proxy.acl import AccessControl
from s3proxy.errors import NoSuchBucket, NoSuchKey
from s3proxy.model import ObjectAttributes
from tests.contract.test_storage_contract import BUCKET, Storage, get, make_bucket, put


@pytest_twisted.ensureDeferred
async def test_bucket_config_documents(storage: Storage) -> None:
    await make_bucket(storage)
    assert await storage.get_bucket_config(BUCKET, "tagging") is None
    await storage.put_bucket_config(BUCKET, "tagging", '[["a", "1"]]')
    await storage.put_bucket_config(BUCKET, "cors", "<CORSConfiguration/>")
    assert await storage.get_bucket_config(BUCKET, "tagging") == '[["a", "1"]]'
    assert await storage.get_bucket_config(BUCKET, "cors") == "<CORSConfiguration/>"
    # Changing the ACL keeps the documents; the documents keep the ACL.
    acl = AccessControl("owner-id", "owner", ())
    await storage.put_bucket_acl(BUCKET, acl)
    assert await storage.get_bucket_config(BUCKET, "cors") == "<CORSConfiguration/>"
    await storage.put_bucket_config(BUCKET, "tagging", None)
    assert await storage.get_bucket_config(BUCKET, "tagging") is None
    assert await storage.get_bucket_config(BUCKET, "cors") == "<CORSConfiguration/>"
    info = await storage.head_bucket(BUCKET)
    assert info.acl is not None and info.acl.owner_id == "owner-id"


@pytest_twisted.ensureDeferred
async def test_bucket_config_gone_with_the_bucket(storage: Storage) -> None:
    await make_bucket(storage)
    await storage.put_bucket_config(BUCKET, "tagging", "x")
    await storage.delete_bucket(BUCKET)
    with pytest.raises(NoSuchBucket):
        await storage.get_bucket_config(BUCKET, "tagging")
    with pytest.raises(NoSuchBucket):
        await storage.put_bucket_config(BUCKET, "tagging", "x")
    await make_bucket(storage)
    assert await storage.get_bucket_config(BUCKET, "tagging") is None


@pytest_twisted.ensureDeferred
async def test_object_tags_stored_with_the_object(storage: Storage) -> None:
    await make_bucket(storage)
    tags = {"project": "blue", "ünï": "çødé", "empty": ""}
    await put(storage, "k", b"data", attributes=ObjectAttributes(metadata={"m": "1"}, tags=tags))
    info = await storage.head_object(BUCKET, "k")
    assert info.attributes.tags == tags
    assert list(info.attributes.tags) == list(tags)  # the client's order
    assert info.attributes.metadata == {"m": "1"}


@pytest_twisted.ensureDeferred
async def test_put_object_tagging_keeps_data_and_attributes(storage: Storage) -> None:
    await make_bucket(storage)
    before = await put(storage, "k", b"payload", attributes=ObjectAttributes(metadata={"m": "1"}))
    await storage.put_object_tagging(BUCKET, "k", {"a": "1", "b": "2"})
    info = await storage.head_object(BUCKET, "k")
    assert info.attributes.tags == {"a": "1", "b": "2"}
    assert info.attributes.metadata == {"m": "1"}
    assert info.etag == before.etag
    assert await get(storage, "k") == b"payload"
    await storage.put_object_tagging(BUCKET, "k", {})
    assert (await storage.head_object(BUCKET, "k")).attributes.tags == {}
    with pytest.raises(NoSuchKey):
        await storage.put_object_tagging(BUCKET, "missing", {"a": "1"})


@pytest_twisted.ensureDeferred
async def test_copy_carries_tags(storage: Storage) -> None:
    await make_bucket(storage)
    await put(storage, "src", b"x", attributes=ObjectAttributes(tags={"t": "v"}))
    await storage.copy_object(BUCKET, "src", BUCKET, "kept", None)
    assert (await storage.head_object(BUCKET, "kept")).attributes.tags == {"t": "v"}
    await storage.copy_object(BUCKET, "src", BUCKET, "new", ObjectAttributes(tags={"n": "1"}))
    assert (await storage.head_object(BUCKET, "new")).attributes.tags == {"n": "1"}


@pytest_twisted.ensureDeferred
async def test_multipart_upload_carries_tags(storage: Storage) -> None:
    await make_bucket(storage)
    upload = await storage.create_multipart_upload(
        BUCKET, "mp", ObjectAttributes(tags={"via": "multipart"})
    )
    writer = await storage.open_part_writer(BUCKET, "mp", upload.upload_id, 1, None, None)
    writer.write(b"part")
    part = await writer.finish()
    await storage.complete_multipart_upload(BUCKET, "mp", upload.upload_id, [(1, part.etag)], 0)
    assert (await storage.head_object(BUCKET, "mp")).attributes.tags == {"via": "multipart"}
