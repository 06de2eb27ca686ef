"""``create_only`` (If-None-Match: *) on every backend: a commit that creates the key
or fails with PreconditionFailed, atomically: of racing creators exactly one wins."""

from __future__ import annotations

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet.defer import DeferredList

from s3proxy.errors import PreconditionFailed, S3Error
from s3proxy.model import ObjectAttributes, ObjectInfo
from tests.contract.test_multipart_contract import MIN_PART, all_parts, create, upload_part
from tests.contract.test_storage_contract import (
    BUCKET,
    Storage,
    get,
    make_bucket,
    md5_hex,
    payload,
    put,
    temp_files,
)


async def open_creator(storage: Storage, key: str, data: bytes) -> object:
    writer = await storage.open_writer(
        BUCKET, key, ObjectAttributes(), None, len(data), create_only=True
    )
    for i in range(0, len(data), 64 * 1024):
        writer.write(data[i : i + 64 * 1024])
    return writer


@pytest_twisted.ensureDeferred
async def test_create_only_creates_then_refuses(storage: Storage) -> None:
    await make_bucket(storage)
    writer = await open_creator(storage, "k", b"first")
    info = await writer.finish()  # type: ignore[attr-defined]
    assert info.etag == md5_hex(b"first")
    writer = await open_creator(storage, "k", b"second")
    with pytest.raises(PreconditionFailed):
        await writer.finish()  # type: ignore[attr-defined]
    assert await get(storage, "k") == b"first"
    assert temp_files(storage) == []
    # Without the condition the key is replaced as ever.
    await put(storage, "k", b"third")
    assert await get(storage, "k") == b"third"


@pytest_twisted.ensureDeferred
async def test_racing_creators_exactly_one_wins(storage: Storage) -> None:
    await make_bucket(storage)
    for round_ in range(3):
        key = f"race-{round_}"
        datas = [payload(200_000 + i, seed=i) for i in range(4)]
        writers = [await open_creator(storage, key, data) for data in datas]
        results = await DeferredList(
            [w.finish() for w in writers],  # type: ignore[attr-defined]
            consumeErrors=True,
        )
        winners = [i for i, (ok, _) in enumerate(results) if ok]
        losers = [r for ok, r in results if not ok]
        assert len(winners) == 1, results
        assert all(f.check(PreconditionFailed) for f in losers), losers
        assert await get(storage, key) == datas[winners[0]]
    assert temp_files(storage) == []


@pytest_twisted.ensureDeferred
async def test_complete_create_only_keeps_the_upload_on_412(storage: Storage) -> None:
    await make_bucket(storage)
    await put(storage, "k", b"already here")
    upload = await create(storage, "k")
    part = payload(MIN_PART, seed=9)
    info = await upload_part(storage, upload, 1, part)
    with pytest.raises(PreconditionFailed):
        await storage.complete_multipart_upload(
            BUCKET, "k", upload.upload_id, [(1, info.etag)], MIN_PART, create_only=True
        )
    assert await get(storage, "k") == b"already here"
    assert [p.number for p in await all_parts(storage, upload)] == [1]
    # The upload is still there: once the key is free, it completes.
    await storage.delete_object(BUCKET, "k")
    done: ObjectInfo | S3Error = await storage.complete_multipart_upload(
        BUCKET, "k", upload.upload_id, [(1, info.etag)], MIN_PART, create_only=True
    )
    assert isinstance(done, ObjectInfo) and done.size == MIN_PART
    assert await get(storage, "k") == part
