"""Races between operations on one key, upload or bucket, for every backend.

Each outcome must be one some serial order of the operations could give: a reader
sees one whole version (never a mix, its ETag that of its body), an acknowledged
object is never lost to a racing DeleteBucket, a completion racing a delete or
another completion leaves one consistent object.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet.defer import Deferred, DeferredList

from s3proxy.errors import BucketNotEmpty, NoSuchBucket, NoSuchKey, NoSuchUpload, S3Error
from s3proxy.model import ObjectAttributes, ObjectInfo
from s3proxy.storage.s3 import S3Storage
from tests.contract.test_multipart_contract import (
    MIN_PART,
    assert_upload_gone,
    create,
    expected_etag,
    upload_part,
)
from tests.contract.test_storage_contract import (
    BUCKET,
    Collector,
    Storage,
    get,
    make_bucket,
    put,
    temp_files,
)

WRITERS = 20


def upstream_backed(storage: Storage) -> bool:
    """The s3: backend (maybe behind the cache): atomicity is the upstream's, and
    moto, the test upstream, answers 500 to some concurrent requests on one key."""
    return isinstance(getattr(storage, "backend", storage), S3Storage)


def allowed_failure(storage: Storage, failure: Any) -> bool:
    """A request may fail only as the upstream's 5xx, passed on (never for our own
    backends): refused, but neither acknowledged wrongly nor answered wrongly."""
    error = getattr(failure, "value", failure)
    return upstream_backed(storage) and isinstance(error, S3Error) and error.status >= 500


def version(n: int, size: int) -> bytes:
    """A body that says which version it is in every 64-byte line, so a body spliced
    from two versions (or a torn one) cannot pass for either."""
    line = f"version {n:04d} ".encode()
    noise = random.Random(n).randbytes(size)
    out = bytearray()
    for i in range(0, size, 64):
        out += line + noise[i : i + 64 - len(line)].hex().encode()[: 64 - len(line)]
    return bytes(out[:size])


async def read_whole(storage: Storage, key: str) -> tuple[str, bytes] | None:
    """(ETag, body) of one read, or None if the key did not exist."""
    try:
        reader = await storage.open_reader(BUCKET, key, None)
    except NoSuchKey:
        return None
    consumer = Collector()
    await reader.start(consumer)
    return reader.info.etag, consumer.data


async def settle(d: Deferred[Any]) -> object:
    """What ``d`` fires with, or the S3Error it fails with."""
    try:
        return await d
    except S3Error as e:
        return e


@pytest_twisted.ensureDeferred
async def test_writers_and_readers_of_one_key(storage: Storage) -> None:
    await make_bucket(storage)
    sizes = [1 + (n * 37_171) % 700_000 for n in range(WRITERS)]
    bodies = {n: version(n, sizes[n]) for n in range(WRITERS)}
    by_etag = {hashlib.md5(b).hexdigest(): n for n, b in bodies.items()}
    await put(storage, "k", bodies[0])
    writers = [
        await storage.open_writer(BUCKET, "k", ObjectAttributes(), None, None)
        for _ in range(WRITERS)
    ]
    # The bodies arrive interleaved, 64 KiB at a time, with reads in between.
    reads: list[Deferred[tuple[str, bytes] | None]] = []
    for offset in range(0, max(sizes), 64 * 1024):
        for n, writer in enumerate(writers):
            writer.write(bodies[n][offset : offset + 64 * 1024])
        reads.append(Deferred.fromCoroutine(read_whole(storage, "k")))
    finishes = [w.finish() for w in writers]
    reads += [Deferred.fromCoroutine(read_whole(storage, "k")) for _ in range(WRITERS)]
    finished = await DeferredList(finishes, consumeErrors=True)
    reads += [Deferred.fromCoroutine(read_whole(storage, "k")) for _ in range(5)]
    seen = await DeferredList(reads, consumeErrors=True)

    for n, (ok, info) in enumerate(finished):
        if not ok:
            assert allowed_failure(storage, info), info
            continue
        assert isinstance(info, ObjectInfo) and by_etag[info.etag] == n
    for ok, result in seen:
        if not ok:
            assert allowed_failure(storage, result), result
            continue
        assert result is not None, "the key vanished while being replaced"
        etag, data = result
        assert etag in by_etag, etag
        assert data == bodies[by_etag[etag]], "a read mixed versions or its ETag lied"
    # The last read after all the writes: one of the versions, the same as HEAD says.
    last = await read_whole(storage, "k")
    assert last is not None and last[0] in by_etag and last[1] == bodies[by_etag[last[0]]]
    head = await storage.head_object(BUCKET, "k")
    assert (head.etag, head.size) == (last[0], len(last[1]))
    assert temp_files(storage) == []


@pytest.mark.parametrize("key", ["flat", "deep/er/key"])
@pytest_twisted.ensureDeferred
async def test_delete_bucket_never_loses_an_acknowledged_object(storage: Storage, key: str) -> None:
    for round_ in range(12):
        bucket = f"race-{round_}"
        await make_bucket(storage, bucket)
        data = version(round_, 1000 + round_ * 20_000)
        writer = await storage.open_writer(bucket, key, ObjectAttributes(), None, None)
        writer.write(data)
        # Alternate who is asked first, so both orders of arrival are tried.
        if round_ % 2:
            deleted = storage.delete_bucket(bucket)
            stored = writer.finish()
        else:
            stored = writer.finish()
            deleted = storage.delete_bucket(bucket)
        put_result, delete_result = await settle(stored), await settle(deleted)
        if isinstance(put_result, ObjectInfo):
            # Acknowledged: the bucket must have survived, holding the object.
            assert isinstance(delete_result, BucketNotEmpty), delete_result
            assert await get(storage, key, bucket=bucket) == data
            await storage.delete_object(bucket, key)
            await storage.delete_bucket(bucket)
        else:
            assert isinstance(put_result, NoSuchBucket), put_result
            assert delete_result is None, delete_result
        assert bucket not in [b.name for b in await storage.list_buckets()]
    assert temp_files(storage) == []


@pytest_twisted.ensureDeferred
async def test_delete_object_against_complete(storage: Storage) -> None:
    await make_bucket(storage)
    for round_ in range(8):
        key = f"dir/race-{round_}"
        await put(storage, key, b"the old version")
        upload = await create(storage, key)
        datas = [version(round_ * 2 + n, 2000 + n) for n in (0, 1)]
        etags = [(await upload_part(storage, upload, n + 1, d)).etag for n, d in enumerate(datas)]
        parts = [(1, etags[0]), (2, etags[1])]
        if round_ % 2:
            deleted = storage.delete_object(BUCKET, key)
            completed = storage.complete_multipart_upload(
                BUCKET, key, upload.upload_id, parts, MIN_PART
            )
        else:
            completed = storage.complete_multipart_upload(
                BUCKET, key, upload.upload_id, parts, MIN_PART
            )
            deleted = storage.delete_object(BUCKET, key)
        done, gone = await settle(completed), await settle(deleted)
        assert gone is None, gone
        assert isinstance(done, ObjectInfo), done
        assert done.etag == expected_etag(datas)
        # Complete-then-delete: no object. Delete-then-complete: the new one, whole.
        # Never the old version, never the new data without its ETag or metadata.
        now = await read_whole(storage, key)
        if now is not None:
            assert now == (done.etag, b"".join(datas))
            head = await storage.head_object(BUCKET, key)
            assert (head.etag, head.size) == (done.etag, done.size)
        await assert_upload_gone(storage, upload)
    assert temp_files(storage) == []


@pytest_twisted.ensureDeferred
async def test_two_identical_completions(storage: Storage) -> None:
    """A retried completion (same part list) racing the first: one succeeds, the
    other gets NoSuchUpload (as AWS documents for an upload already completed, and
    as test_completing_twice checks when they do not overlap); the object is the
    completed one. Upstream S3 stores may instead answer a retried completion with
    the same result again (AWS and moto do): for the s3: backend, that is allowed."""
    await make_bucket(storage)
    for round_ in range(6):
        key = f"twice-{round_}"
        upload = await create(storage, key)
        datas = [version(round_ * 2 + n, 3000 + n) for n in (0, 1)]
        etags = [(await upload_part(storage, upload, n + 1, d)).etag for n, d in enumerate(datas)]
        parts = [(1, etags[0]), (2, etags[1])]
        outcomes = [
            await settle(d)
            for d in [
                storage.complete_multipart_upload(BUCKET, key, upload.upload_id, parts, MIN_PART)
                for _ in range(2)
            ]
        ]
        won = [o for o in outcomes if isinstance(o, ObjectInfo)]
        lost = [o for o in outcomes if not isinstance(o, ObjectInfo)]
        if len(won) == 2 and upstream_backed(storage):
            assert won[0].etag == won[1].etag, outcomes
        else:
            assert len(won) == 1 and len(lost) == 1, outcomes
            assert isinstance(lost[0], NoSuchUpload) or allowed_failure(storage, lost[0]), lost
        assert won[0].etag == expected_etag(datas)
        assert await read_whole(storage, key) == (won[0].etag, b"".join(datas))
        await assert_upload_gone(storage, upload)
    assert temp_files(storage) == []
