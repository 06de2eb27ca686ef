"""The multipart part of the IStorage contract: every backend runs these tests.

Upload state belongs to the backend (the filesystem backend keeps it on disk under
``<root>/.s3proxy/uploads/<bucket>/<upload id>/``), so besides the S3 rules (part
selection, ETags, paging) the filesystem runs check what is left on disk, that two
processes sharing a root can continue each other's uploads, and that a completion cut
short by a crash gives the upload back.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.python.threadpool import ThreadPool
from zope.interface.verify import verifyObject

from s3proxy.errors import (
    BadDigest,
    EntityTooSmall,
    IncompleteBody,
    InvalidPart,
    InvalidPartOrder,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    S3Error,
)
from s3proxy.interfaces import IObjectWriter
from s3proxy.model import ByteRange, ObjectAttributes, ObjectInfo, PartInfo, UploadInfo
from s3proxy.storage.filesystem import INTERNAL_DIR, FilesystemStorage
from tests.contract.test_storage_contract import (
    ATTRIBUTES,
    BUCKET,
    Storage,
    get,
    make_bucket,
    md5_hex,
    payload,
    put,
    result_of,
    sleep,
    temp_files,
)

KEY = "dir/object.bin"
MIN_PART = 1000  # the min_part_size the tests complete with (S3's 5 MiB would be slow)
UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{48}$")
# A well-formed ID no backend has issued.
UNKNOWN_ID = "0" * 48


# -- helpers --------------------------------------------------------------------------


async def create(
    storage: Storage,
    key: str = KEY,
    *,
    bucket: str = BUCKET,
    attributes: ObjectAttributes | None = None,
) -> UploadInfo:
    return await storage.create_multipart_upload(bucket, key, attributes or ObjectAttributes())


async def upload_part(
    storage: Storage,
    upload: UploadInfo,
    number: int,
    data: bytes,
    *,
    content_md5: bytes | None = None,
    expected_size: int | None = None,
) -> ObjectInfo:
    """Write one part through a part writer, in 64 KiB chunks."""
    writer = await storage.open_part_writer(
        upload.bucket, upload.key, upload.upload_id, number, content_md5, expected_size
    )
    for i in range(0, len(data), 64 * 1024):
        writer.write(data[i : i + 64 * 1024])
    return await writer.finish()


async def all_parts(storage: Storage, upload: UploadInfo) -> list[PartInfo]:
    _, page = await storage.list_parts(upload.bucket, upload.key, upload.upload_id, 0, 10000)
    assert not page.is_truncated
    return page.parts


async def complete(
    storage: Storage,
    upload: UploadInfo,
    parts: list[tuple[int, str]],
    min_part_size: int = MIN_PART,
) -> ObjectInfo:
    return await storage.complete_multipart_upload(
        upload.bucket, upload.key, upload.upload_id, parts, min_part_size
    )


async def listed_ids(storage: Storage, bucket: str = BUCKET) -> list[str]:
    page = await storage.list_multipart_uploads(bucket, "", "", "", "", 1000)
    assert not page.is_truncated
    return [u.upload_id for u in page.uploads]


def expected_etag(datas: list[bytes]) -> str:
    """S3's multipart ETag, computed here rather than trusted from the code under test."""
    digests = b"".join(hashlib.md5(d).digest() for d in datas)
    return f"{hashlib.md5(digests).hexdigest()}-{len(datas)}"


def uploads_dir(storage: Storage, bucket: str = BUCKET) -> Path | None:
    """Where the filesystem backend keeps a bucket's uploads (None for memory)."""
    if not isinstance(storage, FilesystemStorage):
        return None
    return Path(storage.root) / INTERNAL_DIR / "uploads" / bucket


def upload_leftovers(storage: Storage, bucket: str = BUCKET) -> list[str]:
    """Whatever the filesystem backend still holds for a bucket's uploads."""
    directory = uploads_dir(storage, bucket)
    if directory is None or not directory.exists():
        return []
    return sorted(os.listdir(directory))


async def assert_upload_gone(storage: Storage, upload: UploadInfo) -> None:
    with pytest.raises(NoSuchUpload):
        await storage.list_parts(upload.bucket, upload.key, upload.upload_id, 0, 1000)
    with pytest.raises(NoSuchUpload):
        await storage.abort_multipart_upload(upload.bucket, upload.key, upload.upload_id)
    with pytest.raises(NoSuchUpload):
        await storage.open_part_writer(upload.bucket, upload.key, upload.upload_id, 1, None, None)
    assert upload.upload_id not in await listed_ids(storage, upload.bucket)
    assert upload.upload_id not in upload_leftovers(storage, upload.bucket)


async def settle(d: Deferred[ObjectInfo]) -> ObjectInfo | S3Error:
    try:
        return await d
    except S3Error as e:
        return e


def second_instance(storage: FilesystemStorage, pool: ThreadPool) -> FilesystemStorage:
    """Another FilesystemStorage on the same root: a second daemon, or a restart."""
    from twisted.internet import reactor

    return FilesystemStorage(
        storage.root,
        cast(IReactorThreads, reactor),
        pool,
        metadata=storage.metadata.name,
        fsync=False,
    )


# -- creating uploads and parts -------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_upload_ids_are_unguessable(storage: Storage) -> None:
    await make_bucket(storage)
    before = time.time()
    first = await create(storage, attributes=ATTRIBUTES)
    second = await create(storage)
    for upload in (first, second):
        assert UPLOAD_ID_RE.match(upload.upload_id), upload.upload_id
        assert (upload.bucket, upload.key) == (BUCKET, KEY)
        assert before - 1 <= upload.initiated <= time.time() + 1
    assert first.upload_id != second.upload_id
    # Not a counter: at least 128 bits of the two IDs differ beyond any time stamp.
    assert first.upload_id[-32:] != second.upload_id[-32:]
    assert first.attributes == ATTRIBUTES
    assert second.attributes == ObjectAttributes()
    listed, page = await storage.list_parts(BUCKET, KEY, first.upload_id, 0, 1000)
    assert (listed.upload_id, listed.key, listed.attributes) == (first.upload_id, KEY, ATTRIBUTES)
    assert (page.parts, page.is_truncated, page.next_marker) == ([], False, None)
    assert sorted(await listed_ids(storage)) == sorted([first.upload_id, second.upload_id])
    # Nothing is visible under the key while the uploads are in progress.
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, KEY)
    assert (await storage.list_objects(BUCKET, "", "", "", 1000)).objects == []


@pytest_twisted.ensureDeferred
async def test_part_writer_stores_a_part(storage: Storage) -> None:
    await make_bucket(storage)
    upload = await create(storage)
    writer = await storage.open_part_writer(BUCKET, KEY, upload.upload_id, 3, None, None)
    assert verifyObject(IObjectWriter, writer)
    data = payload(150_000, seed=1)
    writer.write(data[:100])
    writer.write(data[100:])
    info = await writer.finish()
    assert (info.size, info.etag) == (len(data), md5_hex(data))
    [part] = await all_parts(storage, upload)
    assert (part.number, part.size, part.etag) == (3, len(data), md5_hex(data))
    assert part.quoted_etag == f'"{md5_hex(data)}"'
    assert part.last_modified > 0
    assert temp_files(storage) == []


@pytest_twisted.ensureDeferred
async def test_reuploading_a_part_replaces_it(storage: Storage) -> None:
    await make_bucket(storage)
    upload = await create(storage)
    old, new = payload(MIN_PART, seed=2), payload(MIN_PART + 5, seed=3)
    await upload_part(storage, upload, 1, old)
    last = await upload_part(storage, upload, 2, b"tail")
    replaced = await upload_part(storage, upload, 1, new)
    assert (replaced.size, replaced.etag) == (len(new), md5_hex(new))
    parts = await all_parts(storage, upload)
    assert [(p.number, p.size, p.etag) for p in parts] == [
        (1, len(new), md5_hex(new)),
        (2, 4, md5_hex(b"tail")),
    ]
    # The old part's ETag no longer names a part.
    with pytest.raises(InvalidPart):
        await complete(storage, upload, [(1, md5_hex(old)), (2, last.etag)])
    info = await complete(storage, upload, [(1, replaced.etag), (2, last.etag)])
    assert info.etag == expected_etag([new, b"tail"])
    assert await get(storage, KEY) == new + b"tail"
    assert temp_files(storage) == []


@pytest_twisted.ensureDeferred
async def test_part_writer_checks_digest_and_size(storage: Storage) -> None:
    await make_bucket(storage)
    upload = await create(storage)
    data = b"part data"
    with pytest.raises(BadDigest):
        await upload_part(storage, upload, 1, data, content_md5=hashlib.md5(b"other").digest())
    with pytest.raises(IncompleteBody):
        await upload_part(storage, upload, 1, data, expected_size=len(data) + 1)
    writer = await storage.open_part_writer(BUCKET, KEY, upload.upload_id, 1, None, None)
    writer.write(data)
    assert await result_of(writer.abort()) is None
    assert await all_parts(storage, upload) == []
    info = await upload_part(
        storage, upload, 1, data, content_md5=hashlib.md5(data).digest(), expected_size=len(data)
    )
    assert info.etag == md5_hex(data)
    assert [p.etag for p in await all_parts(storage, upload)] == [md5_hex(data)]
    assert temp_files(storage) == []


@pytest.mark.parametrize("ending", ["abort", "complete"])
@pytest_twisted.ensureDeferred
async def test_part_finished_after_the_upload_ended(storage: Storage, ending: str) -> None:
    await make_bucket(storage)
    upload = await create(storage)
    first = await upload_part(storage, upload, 1, b"only part")
    writer = await storage.open_part_writer(BUCKET, KEY, upload.upload_id, 2, None, None)
    writer.write(b"too late")
    if ending == "abort":
        await storage.abort_multipart_upload(BUCKET, KEY, upload.upload_id)
    else:
        await complete(storage, upload, [(1, first.etag)])
    with pytest.raises(NoSuchUpload):
        await writer.finish()
    await assert_upload_gone(storage, upload)
    assert upload_leftovers(storage) == []
    assert temp_files(storage) == []


# -- listing parts --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_list_parts_in_order_with_paging(storage: Storage) -> None:
    await make_bucket(storage)
    upload = await create(storage, attributes=ATTRIBUTES)
    numbers = [5, 1, 10000, 3, 2, 7, 4, 12]
    etags = {}
    for n in numbers:
        etags[n] = (await upload_part(storage, upload, n, f"part {n}".encode())).etag
    ordered = sorted(numbers)
    parts = await all_parts(storage, upload)
    assert [(p.number, p.etag, p.size) for p in parts] == [
        (n, etags[n], len(f"part {n}".encode())) for n in ordered
    ]

    for max_parts in (1, 3, len(numbers) - 1):
        collected: list[int] = []
        marker = 0
        while True:
            info, page = await storage.list_parts(BUCKET, KEY, upload.upload_id, marker, max_parts)
            assert (info.upload_id, info.key, info.attributes) == (
                upload.upload_id,
                KEY,
                ATTRIBUTES,
            )
            assert 0 < len(page.parts) <= max_parts
            collected += [p.number for p in page.parts]
            if not page.is_truncated:
                assert page.next_marker is None
                break
            assert len(page.parts) == max_parts
            assert page.next_marker == page.parts[-1].number
            marker = page.next_marker
        assert collected == ordered, max_parts

    # Exactly max_parts left: not truncated.
    _, page = await storage.list_parts(BUCKET, KEY, upload.upload_id, 0, len(numbers))
    assert ([p.number for p in page.parts], page.is_truncated) == (ordered, False)
    # A marker between parts and after the last.
    _, page = await storage.list_parts(BUCKET, KEY, upload.upload_id, 6, 2)
    assert ([p.number for p in page.parts], page.is_truncated, page.next_marker) == (
        [7, 12],
        True,
        12,
    )
    _, page = await storage.list_parts(BUCKET, KEY, upload.upload_id, 10000, 1000)
    assert (page.parts, page.is_truncated, page.next_marker) == ([], False, None)


# -- completing -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_complete_assembles_the_requested_parts(storage: Storage) -> None:
    await make_bucket(storage)
    upload = await create(storage, attributes=ATTRIBUTES)
    datas = {
        1: payload(MIN_PART, seed=11),
        2: payload(200_000, seed=12),
        3: payload(MIN_PART, seed=13),  # uploaded but left out
        5: payload(MIN_PART + 1, seed=14),
        9: b"short last part",
    }
    etags = {n: (await upload_part(storage, upload, n, d)).etag for n, d in datas.items()}
    chosen = [1, 2, 5, 9]
    # ETags may come quoted (as clients send them), in either case.
    requested = [(1, f'"{etags[1]}"'), (2, etags[2].upper()), (5, etags[5]), (9, etags[9])]
    info = await complete(storage, upload, requested)

    content = b"".join(datas[n] for n in chosen)
    etag = expected_etag([datas[n] for n in chosen])
    assert etag.endswith("-4")
    assert (info.key, info.size, info.etag) == (KEY, len(content), etag)
    assert info.part_sizes == tuple(len(datas[n]) for n in chosen)
    assert info.attributes == ATTRIBUTES
    head = await storage.head_object(BUCKET, KEY)
    assert (head.key, head.size, head.etag, head.attributes) == (
        KEY,
        len(content),
        etag,
        ATTRIBUTES,
    )
    assert head.part_sizes == (MIN_PART, 200_000, MIN_PART + 1, len(b"short last part"))
    assert await get(storage, KEY) == content
    start = MIN_PART
    assert await get(storage, KEY, ByteRange(start, start + 199_999)) == datas[2]
    listing = await storage.list_objects(BUCKET, "", "", "", 1000)
    assert [(o.key, o.etag, o.size) for o in listing.objects] == [(KEY, etag, len(content))]

    await assert_upload_gone(storage, upload)
    assert upload_leftovers(storage) == []
    assert temp_files(storage) == []


@pytest_twisted.ensureDeferred
async def test_complete_replaces_an_existing_object(storage: Storage) -> None:
    await make_bucket(storage)
    await put(storage, KEY, b"the old object", attributes=ATTRIBUTES)
    upload = await create(storage)
    part = await upload_part(storage, upload, 1, b"new")
    info = await complete(storage, upload, [(1, part.etag)])
    assert info.etag == expected_etag([b"new"])
    assert info.part_sizes == (3,)
    head = await storage.head_object(BUCKET, KEY)
    assert (head.etag, head.attributes, head.part_sizes) == (info.etag, ObjectAttributes(), (3,))
    assert await get(storage, KEY) == b"new"


def _bad_completions(etags: dict[int, str]) -> dict[str, tuple[type[S3Error], list[Any]]]:
    return {
        "unknown-part": (InvalidPart, [(1, etags[1]), (4, etags[3])]),
        "wrong-etag": (InvalidPart, [(1, etags[1]), (2, md5_hex(b"not the part"))]),
        "etag-of-another-part": (InvalidPart, [(1, etags[2]), (2, etags[2])]),
        "descending": (InvalidPartOrder, [(2, etags[2]), (1, etags[1])]),
        "duplicate": (InvalidPartOrder, [(1, etags[1]), (1, etags[1]), (2, etags[2])]),
        "too-small": (EntityTooSmall, [(1, etags[1]), (2, etags[2]), (3, etags[3])]),
        "empty": (InvalidPart, []),
    }


@pytest.mark.parametrize("case", sorted(_bad_completions(dict.fromkeys((1, 2, 3), ""))))
@pytest_twisted.ensureDeferred
async def test_failed_completion_leaves_the_upload_intact(storage: Storage, case: str) -> None:
    await make_bucket(storage)
    upload = await create(storage, attributes=ATTRIBUTES)
    datas = {1: payload(MIN_PART, seed=21), 2: payload(MIN_PART - 1, seed=22), 3: b"last"}
    etags = {n: (await upload_part(storage, upload, n, d)).etag for n, d in datas.items()}
    error, requested = _bad_completions(etags)[case]
    with pytest.raises(error):
        await complete(storage, upload, requested)

    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, KEY)
    assert [(p.number, p.etag) for p in await all_parts(storage, upload)] == sorted(etags.items())
    assert await listed_ids(storage) == [upload.upload_id]
    assert temp_files(storage) == []
    # Still completable: part 2 (below the minimum) is fine as the last part.
    info = await complete(storage, upload, [(1, etags[1]), (2, etags[2])])
    assert info.etag == expected_etag([datas[1], datas[2]])
    assert await get(storage, KEY) == datas[1] + datas[2]
    assert (await storage.head_object(BUCKET, KEY)).attributes == ATTRIBUTES
    await assert_upload_gone(storage, upload)


@pytest_twisted.ensureDeferred
async def test_entity_too_small_names_the_part(storage: Storage) -> None:
    await make_bucket(storage)
    upload = await create(storage)
    small = await upload_part(storage, upload, 1, b"x" * (MIN_PART - 1))
    last = await upload_part(storage, upload, 2, b"y")
    with pytest.raises(EntityTooSmall) as caught:
        await complete(storage, upload, [(1, small.etag), (2, last.etag)])
    assert caught.value.fields["PartNumber"] == "1"
    assert caught.value.fields["ProposedSize"] == str(MIN_PART - 1)
    assert caught.value.fields["MinSizeAllowed"] == str(MIN_PART)
    # With a smaller minimum the same parts are fine.
    info = await complete(storage, upload, [(1, small.etag), (2, last.etag)], MIN_PART - 1)
    assert info.size == MIN_PART


@pytest_twisted.ensureDeferred
async def test_completing_twice(storage: Storage) -> None:
    await make_bucket(storage)
    upload = await create(storage)
    part = await upload_part(storage, upload, 1, b"once")
    first = await complete(storage, upload, [(1, part.etag)])
    with pytest.raises(NoSuchUpload):
        await complete(storage, upload, [(1, part.etag)])
    assert await storage.head_object(BUCKET, KEY) == first
    assert await get(storage, KEY) == b"once"


# -- aborting -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_abort_removes_the_upload_and_its_parts(storage: Storage) -> None:
    await make_bucket(storage)
    kept = await create(storage, "kept")
    upload = await create(storage)
    for n in (1, 2, 3):
        await upload_part(storage, upload, n, payload(10_000, seed=n))
    await upload_part(storage, kept, 1, b"kept part")
    assert await result_of(storage.abort_multipart_upload(BUCKET, KEY, upload.upload_id)) is None
    await assert_upload_gone(storage, upload)
    with pytest.raises(NoSuchUpload):
        await complete(storage, upload, [(1, md5_hex(payload(10_000, seed=1)))])
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, KEY)
    assert await listed_ids(storage) == [kept.upload_id]
    assert upload_leftovers(storage) == ([] if uploads_dir(storage) is None else [kept.upload_id])
    assert [p.etag for p in await all_parts(storage, kept)] == [md5_hex(b"kept part")]
    assert temp_files(storage) == []


# -- unknown uploads ------------------------------------------------------------------


def _upload_calls() -> dict[str, Callable[[Storage, str, str], Deferred[Any]]]:
    return {
        "open_part_writer": lambda s, k, u: s.open_part_writer(BUCKET, k, u, 1, None, None),
        "copy_part": lambda s, k, u: s.copy_part(BUCKET, k, u, 1, BUCKET, "source", None),
        "list_parts": lambda s, k, u: s.list_parts(BUCKET, k, u, 0, 1000),
        "complete": lambda s, k, u: s.complete_multipart_upload(
            BUCKET, k, u, [(1, md5_hex(b"part"))], 0
        ),
        "abort": lambda s, k, u: s.abort_multipart_upload(BUCKET, k, u),
    }


BAD_IDS = {
    "unknown": UNKNOWN_ID,
    "traversal": "../../x",
    "traversal-48": "../" * 16,
    "nested": f"{'a' * 48}/../{'a' * 48}",
    "empty": "",
    "upper-case": "A" * 48,
    "too-long": "a" * 49,
    "dot": ".",
}


@pytest.mark.parametrize("bad_id", sorted(BAD_IDS))
@pytest.mark.parametrize("call", sorted(_upload_calls()))
@pytest_twisted.ensureDeferred
async def test_unknown_upload_id(storage: Storage, tmp_path: Path, call: str, bad_id: str) -> None:
    await make_bucket(storage)
    await put(storage, "source", b"source data")
    upload = await create(storage)
    await upload_part(storage, upload, 1, b"part")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(NoSuchUpload):
        await _upload_calls()[call](storage, KEY, BAD_IDS[bad_id])
    assert sorted(os.listdir(tmp_path)) == before  # nothing written outside the root
    assert [p.etag for p in await all_parts(storage, upload)] == [md5_hex(b"part")]
    assert await listed_ids(storage) == [upload.upload_id]
    assert temp_files(storage) == []


@pytest.mark.parametrize("call", sorted(_upload_calls()))
@pytest_twisted.ensureDeferred
async def test_upload_id_of_another_key(storage: Storage, call: str) -> None:
    await make_bucket(storage)
    await put(storage, "source", b"source data")
    upload = await create(storage)
    await upload_part(storage, upload, 1, b"part")
    for key in ("other", KEY + "x", KEY.split("/")[0]):
        with pytest.raises(NoSuchUpload):
            await _upload_calls()[call](storage, key, upload.upload_id)
    # The upload is untouched and still completes under its own key.
    assert [p.etag for p in await all_parts(storage, upload)] == [md5_hex(b"part")]
    info = await complete(storage, upload, [(1, md5_hex(b"part"))])
    assert await get(storage, KEY) == b"part"
    assert info.etag == expected_etag([b"part"])
    for key in ("other", KEY + "x"):
        with pytest.raises(NoSuchKey):
            await storage.head_object(BUCKET, key)


@pytest_twisted.ensureDeferred
async def test_upload_id_of_another_bucket(storage: Storage) -> None:
    await make_bucket(storage)
    await make_bucket(storage, "other")
    upload = await create(storage, bucket="other")
    with pytest.raises(NoSuchUpload):
        await storage.list_parts(BUCKET, KEY, upload.upload_id, 0, 1000)
    with pytest.raises(NoSuchUpload):
        await storage.abort_multipart_upload(BUCKET, KEY, upload.upload_id)
    assert await listed_ids(storage) == []
    assert await listed_ids(storage, "other") == [upload.upload_id]


def _missing_bucket_calls() -> dict[str, Callable[[Storage, str], Deferred[Any]]]:
    attrs = ObjectAttributes()
    return {
        "create": lambda s, u: s.create_multipart_upload("missing", KEY, attrs),
        "open_part_writer": lambda s, u: s.open_part_writer("missing", KEY, u, 1, None, None),
        "copy_part": lambda s, u: s.copy_part("missing", KEY, u, 1, BUCKET, "source", None),
        "copy_part_source": lambda s, u: s.copy_part(BUCKET, KEY, u, 1, "missing", "source", None),
        "list_parts": lambda s, u: s.list_parts("missing", KEY, u, 0, 1000),
        "complete": lambda s, u: s.complete_multipart_upload(
            "missing", KEY, u, [(1, md5_hex(b"part"))], 0
        ),
        "abort": lambda s, u: s.abort_multipart_upload("missing", KEY, u),
        "list_uploads": lambda s, u: s.list_multipart_uploads("missing", "", "", "", "", 1000),
        "list_uploads_invalid_name": lambda s, u: s.list_multipart_uploads(
            "..", "", "", "", "", 1000
        ),
    }


@pytest.mark.parametrize("call", sorted(_missing_bucket_calls()))
@pytest_twisted.ensureDeferred
async def test_no_such_bucket(storage: Storage, call: str) -> None:
    await make_bucket(storage)
    await put(storage, "source", b"source data")
    upload = await create(storage)
    await upload_part(storage, upload, 1, b"part")
    with pytest.raises(NoSuchBucket):
        await _missing_bucket_calls()[call](storage, upload.upload_id)
    assert [p.etag for p in await all_parts(storage, upload)] == [md5_hex(b"part")]
    assert [b.name for b in await storage.list_buckets()] == [BUCKET]


# -- concurrent completions (filesystem: two threads of the pool at once) -------------------


@pytest_twisted.ensureDeferred
async def test_fs_concurrent_completions(fs_storage: FilesystemStorage) -> None:
    await make_bucket(fs_storage)
    for round_ in range(6):
        key = f"race/{round_}"
        upload = await create(fs_storage, key)
        datas = [payload(300_000, seed=round_ * 10 + n) for n in (1, 2)]
        etags = [
            (await upload_part(fs_storage, upload, n, d)).etag
            for n, d in ((1, datas[0]), (2, datas[1]))
        ]
        # Two different part lists, so the object shows which completion won.
        both = [(1, etags[0]), (2, etags[1])]
        only_first = [(1, etags[0])]
        d1 = fs_storage.complete_multipart_upload(BUCKET, key, upload.upload_id, both, MIN_PART)
        d2 = fs_storage.complete_multipart_upload(
            BUCKET, key, upload.upload_id, only_first, MIN_PART
        )
        outcomes = [await settle(d1), await settle(d2)]
        won = [o for o in outcomes if isinstance(o, ObjectInfo)]
        lost = [o for o in outcomes if not isinstance(o, ObjectInfo)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert isinstance(lost[0], NoSuchUpload), lost[0]
        winner = won[0]
        expected = datas if outcomes[0] is winner else datas[:1]
        assert winner.etag == expected_etag(expected)
        head = await fs_storage.head_object(BUCKET, key)
        assert (head.etag, head.size) == (winner.etag, sum(map(len, expected)))
        assert await get(fs_storage, key) == b"".join(expected)
        await assert_upload_gone(fs_storage, upload)
    assert upload_leftovers(fs_storage) == []
    assert temp_files(fs_storage) == []


@pytest_twisted.ensureDeferred
async def test_fs_completion_that_loses_the_race_after_loading(
    fs_storage: FilesystemStorage, thread_pool: ThreadPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministically: another process completes the upload right after this one
    read the upload record. The loser must say NoSuchUpload (the upload is gone),
    not InvalidPart (as if the client had named parts that were never uploaded)."""
    await make_bucket(fs_storage)
    upload = await create(fs_storage)
    part = await upload_part(fs_storage, upload, 1, b"contested")
    requested = [(1, part.etag)]
    other = second_instance(fs_storage, thread_pool)
    original_load = fs_storage.uploads._load
    raced: list[ObjectInfo] = []

    def load_then_lose(bucket: str, key: str, upload_id: str) -> Any:
        loaded = original_load(bucket, key, upload_id)
        # The other process's completion runs to its end in between (same thread).
        raced.append(other.uploads.complete(bucket, key, upload_id, requested, MIN_PART))
        return loaded

    monkeypatch.setattr(fs_storage.uploads, "_load", load_then_lose)
    with pytest.raises(NoSuchUpload):
        await complete(fs_storage, upload, requested)
    assert len(raced) == 1
    assert await get(fs_storage, KEY) == b"contested"
    assert (await fs_storage.head_object(BUCKET, KEY)).etag == raced[0].etag
    assert upload_leftovers(fs_storage) == []
    assert temp_files(fs_storage) == []


# -- UploadPartCopy -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_copy_part(storage: Storage) -> None:
    await make_bucket(storage)
    await make_bucket(storage, "sources")
    source = payload(3 * MIN_PART + 7, seed=31)
    await put(storage, "src/object", source, bucket="sources", attributes=ATTRIBUTES)
    upload = await create(storage)

    whole = await storage.copy_part(BUCKET, KEY, upload.upload_id, 1, "sources", "src/object", None)
    assert (whole.number, whole.size, whole.etag) == (1, len(source), md5_hex(source))
    ranged_bytes = source[100 : 100 + MIN_PART]
    ranged = await storage.copy_part(
        BUCKET, KEY, upload.upload_id, 2, "sources", "src/object", ByteRange(100, 99 + MIN_PART)
    )
    assert (ranged.number, ranged.size, ranged.etag) == (2, MIN_PART, md5_hex(ranged_bytes))
    # A copied part replaces an uploaded one, and the other way round.
    await upload_part(storage, upload, 3, b"uploaded first")
    tail = await storage.copy_part(
        BUCKET, KEY, upload.upload_id, 3, "sources", "src/object", ByteRange(0, 0)
    )
    assert (tail.size, tail.etag) == (1, md5_hex(source[:1]))
    parts = await all_parts(storage, upload)
    assert [(p.number, p.size, p.etag) for p in parts] == [
        (1, len(source), whole.etag),
        (2, MIN_PART, ranged.etag),
        (3, 1, tail.etag),
    ]
    with pytest.raises(NoSuchKey):
        await storage.copy_part(BUCKET, KEY, upload.upload_id, 4, "sources", "missing", None)

    info = await complete(storage, upload, [(1, whole.etag), (2, ranged.etag), (3, tail.etag)])
    content = source + ranged_bytes + source[:1]
    assert info.etag == expected_etag([source, ranged_bytes, source[:1]])
    assert info.part_sizes == (len(source), MIN_PART, 1)
    # The object has the upload's attributes, not the source's.
    assert (await storage.head_object(BUCKET, KEY)).attributes == ObjectAttributes()
    assert await get(storage, KEY) == content
    assert await get(storage, "src/object", bucket="sources") == source
    assert temp_files(storage) == []


# -- listing uploads ------------------------------------------------------------------

LISTED_KEYS = ["a", "a", "a/1", "b/1", "b/2", "b/2", "c/d/e", "c/d/f", "d", "é/x"]


async def fill_uploads(storage: Storage) -> list[UploadInfo]:
    """Uploads under LISTED_KEYS (created out of order), sorted by (key, upload ID)."""
    await make_bucket(storage)
    await make_bucket(storage, "other")
    await create(storage, "a", bucket="other")
    created = [await create(storage, key) for key in reversed(LISTED_KEYS)]
    return sorted(created, key=lambda u: (u.key, u.upload_id))


def names(uploads: list[UploadInfo]) -> list[tuple[str, str]]:
    return [(u.key, u.upload_id) for u in uploads]


@pytest_twisted.ensureDeferred
async def test_list_uploads_order_prefix_and_delimiter(storage: Storage) -> None:
    everything = await fill_uploads(storage)
    page = await storage.list_multipart_uploads(BUCKET, "", "", "", "", 1000)
    assert names(page.uploads) == names(everything)
    assert [u.key for u in page.uploads] == sorted(LISTED_KEYS)
    assert (page.common_prefixes, page.is_truncated) == ([], False)
    for listed in page.uploads:
        assert listed.bucket == BUCKET
        assert listed.initiated > 0
        assert listed.attributes == ObjectAttributes()

    page = await storage.list_multipart_uploads(BUCKET, "b/", "", "", "", 1000)
    assert names(page.uploads) == names([u for u in everything if u.key.startswith("b/")])

    page = await storage.list_multipart_uploads(BUCKET, "", "/", "", "", 1000)
    assert [u.key for u in page.uploads] == ["a", "a", "d"]
    assert page.common_prefixes == ["a/", "b/", "c/", "é/"]
    assert not page.is_truncated

    page = await storage.list_multipart_uploads(BUCKET, "c/", "/", "", "", 1000)
    assert (page.uploads, page.common_prefixes) == ([], ["c/d/"])
    page = await storage.list_multipart_uploads(BUCKET, "c/d/", "/", "", "", 1000)
    assert [u.key for u in page.uploads] == ["c/d/e", "c/d/f"]
    page = await storage.list_multipart_uploads(BUCKET, "zzz", "/", "", "", 1000)
    assert (page.uploads, page.common_prefixes, page.is_truncated) == ([], [], False)


@pytest_twisted.ensureDeferred
async def test_list_uploads_markers(storage: Storage) -> None:
    everything = await fill_uploads(storage)
    first_a, second_a = [u for u in everything if u.key == "a"]
    # A key marker alone skips every upload of that key.
    page = await storage.list_multipart_uploads(BUCKET, "", "", "a", "", 1000)
    assert names(page.uploads) == names([u for u in everything if u.key > "a"])
    # With an upload ID marker, the key's later uploads come first.
    page = await storage.list_multipart_uploads(BUCKET, "", "", "a", first_a.upload_id, 1000)
    assert names(page.uploads) == names([second_a] + [u for u in everything if u.key > "a"])
    page = await storage.list_multipart_uploads(BUCKET, "", "", "a", second_a.upload_id, 1000)
    assert names(page.uploads) == names([u for u in everything if u.key > "a"])
    # A key marker past a common prefix skips it.
    page = await storage.list_multipart_uploads(BUCKET, "", "/", "b/", "", 1000)
    assert ([u.key for u in page.uploads], page.common_prefixes) == (["d"], ["c/", "é/"])


@pytest.mark.parametrize("delimiter", ["", "/"])
@pytest.mark.parametrize("max_uploads", [1, 2, 3])
@pytest_twisted.ensureDeferred
async def test_list_uploads_pages(storage: Storage, delimiter: str, max_uploads: int) -> None:
    await fill_uploads(storage)
    whole = await storage.list_multipart_uploads(BUCKET, "", delimiter, "", "", 1000)
    expected = sorted(names(whole.uploads) + [(p, "") for p in whole.common_prefixes])
    collected: list[tuple[str, str]] = []
    key_marker = upload_id_marker = ""
    for _ in range(len(LISTED_KEYS) + 1):
        page = await storage.list_multipart_uploads(
            BUCKET, "", delimiter, key_marker, upload_id_marker, max_uploads
        )
        entries = names(page.uploads) + [(p, "") for p in page.common_prefixes]
        assert 0 < len(entries) <= max_uploads
        collected += entries
        if not page.is_truncated:
            break
        assert len(entries) == max_uploads
        assert page.next_key_marker is not None
        last = max(entries)
        assert page.next_key_marker == last[0]
        assert (page.next_upload_id_marker or "") == last[1]
        key_marker, upload_id_marker = page.next_key_marker, page.next_upload_id_marker or ""
    else:
        pytest.fail("the listing never ended")
    assert sorted(collected) == expected
    assert len(set(collected)) == len(collected)


# -- expiry and bucket deletion -------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_expire_multipart_uploads(storage: Storage) -> None:
    await make_bucket(storage)
    await make_bucket(storage, "other")
    old = await create(storage, "old")
    await upload_part(storage, old, 1, b"old part")
    old_elsewhere = await create(storage, "old", bucket="other")
    while time.time() <= max(old.initiated, old_elsewhere.initiated) + 0.01:
        await sleep(0.005)
    cutoff = time.time()
    while time.time() <= cutoff + 0.01:
        await sleep(0.005)
    new = await create(storage, "new")
    await upload_part(storage, new, 1, b"new part")
    assert old.initiated < cutoff < new.initiated

    assert await storage.expire_multipart_uploads(old.initiated - 3600) == 0
    assert sorted(await listed_ids(storage)) == sorted([old.upload_id, new.upload_id])
    assert await listed_ids(storage, "other") == [old_elsewhere.upload_id]

    assert await storage.expire_multipart_uploads(cutoff) == 2
    await assert_upload_gone(storage, old)
    await assert_upload_gone(storage, old_elsewhere)
    assert await listed_ids(storage) == [new.upload_id]
    assert [p.etag for p in await all_parts(storage, new)] == [md5_hex(b"new part")]

    assert await storage.expire_multipart_uploads(time.time() + 3600) == 1
    await assert_upload_gone(storage, new)
    assert await storage.expire_multipart_uploads(time.time() + 3600) == 0
    assert upload_leftovers(storage) == upload_leftovers(storage, "other") == []


@pytest_twisted.ensureDeferred
async def test_delete_bucket_with_an_upload_in_progress(storage: Storage) -> None:
    await make_bucket(storage)
    await make_bucket(storage, "other")
    upload = await create(storage)
    await upload_part(storage, upload, 1, b"orphan")
    elsewhere = await create(storage, bucket="other")
    assert await result_of(storage.delete_bucket(BUCKET)) is None
    directory = uploads_dir(storage)
    if directory is not None:
        assert not directory.exists()
    with pytest.raises(NoSuchBucket):
        await storage.list_parts(BUCKET, KEY, upload.upload_id, 0, 1000)
    # A new bucket of the same name does not inherit the upload.
    await make_bucket(storage)
    await assert_upload_gone(storage, upload)
    assert await listed_ids(storage, "other") == [elsewhere.upload_id]
    assert await storage.expire_multipart_uploads(time.time() + 3600) == 1


# -- filesystem: state on disk, shared by processes -------------------------------------


@pytest_twisted.ensureDeferred
async def test_fs_upload_continued_by_another_instance(
    fs_storage: FilesystemStorage, thread_pool: ThreadPool
) -> None:
    await make_bucket(fs_storage)
    upload = await create(fs_storage, attributes=ATTRIBUTES)
    first = await upload_part(fs_storage, upload, 1, payload(MIN_PART, seed=41))
    directory = uploads_dir(fs_storage)
    assert directory is not None and (directory / upload.upload_id).is_dir()

    other = second_instance(fs_storage, thread_pool)
    assert await listed_ids(other) == [upload.upload_id]
    info, page = await other.list_parts(BUCKET, KEY, upload.upload_id, 0, 1000)
    assert (info.key, info.attributes, info.initiated) == (KEY, ATTRIBUTES, upload.initiated)
    assert [(p.number, p.etag) for p in page.parts] == [(1, first.etag)]
    second = await upload_part(other, upload, 2, b"second")
    assert [p.number for p in await all_parts(fs_storage, upload)] == [1, 2]

    done = await complete(other, upload, [(1, first.etag), (2, second.etag)])
    assert done.etag == expected_etag([payload(MIN_PART, seed=41), b"second"])
    head = await fs_storage.head_object(BUCKET, KEY)
    assert (head.etag, head.attributes, head.part_sizes) == (done.etag, ATTRIBUTES, (MIN_PART, 6))
    await assert_upload_gone(fs_storage, upload)
    await assert_upload_gone(other, upload)
    assert upload_leftovers(fs_storage) == []


@pytest_twisted.ensureDeferred
async def test_fs_stale_claim_is_released_at_start_up(
    fs_storage: FilesystemStorage, thread_pool: ThreadPool
) -> None:
    await make_bucket(fs_storage)
    upload = await create(fs_storage, attributes=ATTRIBUTES)
    part = await upload_part(fs_storage, upload, 1, b"survives the crash")
    directory = uploads_dir(fs_storage)
    assert directory is not None
    # A completion claimed the upload, then the process died.
    claimed = directory / f"{upload.upload_id}.completing"
    (directory / upload.upload_id).rename(claimed)
    assert await listed_ids(fs_storage) == []
    with pytest.raises(NoSuchUpload):
        await fs_storage.list_parts(BUCKET, KEY, upload.upload_id, 0, 1000)

    restarted = second_instance(fs_storage, thread_pool)
    assert not claimed.exists()
    assert upload_leftovers(restarted) == [upload.upload_id]
    assert await listed_ids(restarted) == [upload.upload_id]
    assert [p.etag for p in await all_parts(restarted, upload)] == [part.etag]
    info = await complete(restarted, upload, [(1, part.etag)])
    assert info.etag == expected_etag([b"survives the crash"])
    assert await get(restarted, KEY) == b"survives the crash"
    assert (await restarted.head_object(BUCKET, KEY)).attributes == ATTRIBUTES
    assert upload_leftovers(restarted) == []


@pytest_twisted.ensureDeferred
async def test_fs_upload_layout(fs_storage: FilesystemStorage) -> None:
    """Uploads live under .s3proxy, never in the bucket's own tree."""
    await make_bucket(fs_storage)
    upload = await create(fs_storage)
    await upload_part(fs_storage, upload, 1, b"hidden")
    assert os.listdir(Path(fs_storage.root) / BUCKET) == []
    assert (await fs_storage.list_objects(BUCKET, "", "", "", 1000)).objects == []
    assert upload_leftovers(fs_storage) == [upload.upload_id]
