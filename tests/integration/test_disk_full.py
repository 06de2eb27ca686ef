"""The filesystem backend on a full disk, in both metadata modes (xattr, sidecar).

A 16 MiB tmpfs of the test's own holds the data root. Every write that does not fit
(an object, a part, a completion, a copy) fails with StorageFull and leaves nothing
behind: no temporary file, the space used back where it was, the objects already
stored untouched. Freeing space is all it takes for writes to succeed again.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet.interfaces import IReactorThreads
from twisted.python.threadpool import ThreadPool

from s3proxy.errors import StorageFull
from s3proxy.model import ObjectAttributes, ObjectInfo
from s3proxy.storage.filesystem import INTERNAL_DIR, FilesystemStorage
from tests.contract.test_multipart_contract import all_parts, complete, create, upload_part
from tests.contract.test_storage_contract import get, make_bucket, put
from tests.integration.smallfs import MiB, everything_under, small_fs, used_bytes

BUCKET = "bucket"
MIN_PART = 1000


def body(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    pool = ThreadPool(minthreads=0, maxthreads=4, name="disk-full")
    pool.start()
    yield pool
    pool.stop()


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    with small_fs(tmp_path / "small") as path:
        yield path


@pytest.fixture(params=["xattr", "sidecar"])
def storage(request: pytest.FixtureRequest, mount: Path, pool: ThreadPool) -> FilesystemStorage:
    from twisted.internet import reactor

    return FilesystemStorage(
        str(mount / "root"), cast(IReactorThreads, reactor), pool, metadata=request.param
    )


def temp_files(storage: FilesystemStorage) -> list[str]:
    return sorted((Path(storage.root) / INTERNAL_DIR / "tmp").iterdir())  # type: ignore[arg-type]


class Snapshot:
    """The data root's files and the space used, to compare after a refused write."""

    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.files = everything_under(mount)
        self.used = used_bytes(mount)

    def assert_unchanged(self) -> None:
        assert everything_under(self.mount) == self.files
        assert used_bytes(self.mount) == self.used


@pytest_twisted.ensureDeferred
async def test_refused_writes_leave_nothing_behind(storage: FilesystemStorage, mount: Path) -> None:
    await make_bucket(storage)
    kept = body(MiB, seed=1)
    await put(storage, "kept", kept)
    upload = await create(storage, "assembled")
    parts = [body(3 * MiB, seed=n) for n in (2, 3)]
    etags = [(await upload_part(storage, upload, n + 1, d)).etag for n, d in enumerate(parts)]
    middle = body(5 * MiB, seed=6)
    await put(storage, "middle", middle)
    # 12 of the 16 MiB used: none of the writes below fits.
    before = Snapshot(mount)

    with pytest.raises(StorageFull):
        await put(storage, "too-big", body(8 * MiB, seed=4))
    before.assert_unchanged()
    with pytest.raises(StorageFull):
        await put(storage, "dir/sub/too-big", body(8 * MiB, seed=4))
    before.assert_unchanged()
    with pytest.raises(StorageFull):
        await upload_part(storage, upload, 3, body(8 * MiB, seed=5))
    before.assert_unchanged()
    # Completing copies the parts: 6 MiB.
    with pytest.raises(StorageFull):
        await complete(storage, upload, [(1, etags[0]), (2, etags[1])], MIN_PART)
    before.assert_unchanged()
    assert [p.etag for p in await all_parts(storage, upload)] == etags
    with pytest.raises(StorageFull):
        await storage.copy_object(BUCKET, "middle", BUCKET, "middle-copy", None)
    before.assert_unchanged()
    with pytest.raises(StorageFull):
        await storage.copy_part(BUCKET, "assembled", upload.upload_id, 3, BUCKET, "middle", None)
    before.assert_unchanged()

    # What was stored is served unchanged.
    assert await get(storage, "kept") == kept
    assert await get(storage, "middle") == middle
    assert temp_files(storage) == []

    # Space freed: the same writes succeed, with no restart.
    await storage.delete_object(BUCKET, "middle")
    done = await complete(storage, upload, [(1, etags[0]), (2, etags[1])], MIN_PART)
    assert done.size == 6 * MiB
    assert await get(storage, "assembled") == b"".join(parts)
    await storage.delete_object(BUCKET, "assembled")
    big = body(8 * MiB, seed=4)
    assert (await put(storage, "dir/sub/too-big", big)).etag == hashlib.md5(big).hexdigest()
    await storage.copy_object(BUCKET, "kept", BUCKET, "kept-copy", None)
    assert await get(storage, "kept-copy") == kept
    assert await get(storage, "dir/sub/too-big") == big


@pytest_twisted.ensureDeferred
async def test_filling_to_the_last_byte(storage: FilesystemStorage, mount: Path) -> None:
    """Objects of random sizes until not even a small one fits: every acknowledged
    object is listed and served whole, every refused one is absent, and the data root
    holds nothing else (no stray temporary file or metadata record)."""
    await make_bucket(storage)
    sizes = random.Random(7)
    stored: dict[str, bytes] = {}
    refused: list[str] = []
    consecutive = 0
    for n in range(400):
        key = f"fill/{n:03d}"
        # Larger objects first; once refused, ever smaller ones to fill the corners.
        size = sizes.randint(1, 600_000) >> min(consecutive, 19)
        data = body(size, seed=n)
        try:
            info = await put(
                storage, key, data, attributes=ObjectAttributes(metadata={"n": str(n)})
            )
        except StorageFull:
            refused.append(key)
            consecutive += 1
            if consecutive >= 25:
                break
            continue
        consecutive = 0
        assert info.etag == hashlib.md5(data).hexdigest()
        stored[key] = data
    assert refused and stored, "the file system never filled up"
    page = await storage.list_objects(BUCKET, "", "", "", 1000)
    assert [o.key for o in page.objects] == sorted(stored)
    for key, data in stored.items():
        head = await storage.head_object(BUCKET, key)
        assert (head.etag, head.size) == (hashlib.md5(data).hexdigest(), len(data))
        assert head.attributes.metadata == {"n": key.split("/")[1].lstrip("0") or "0"}
        assert await get(storage, key) == data
    assert temp_files(storage) == []
    objects = everything_under(mount / "root" / BUCKET / "fill")
    assert objects == {key.removeprefix("fill/"): len(data) for key, data in stored.items()}
    if storage.metadata.name == "sidecar":
        records = [
            name
            for name, size in everything_under(mount / "root" / INTERNAL_DIR / "meta").items()
            if not name.endswith("/")
        ]
        assert len(records) == len(stored)

    # Freeing one object makes room for one of the same size again.
    first = sorted(stored)[0]
    await storage.delete_object(BUCKET, first)
    again: ObjectInfo = await put(storage, first, stored[first])
    assert again.etag == hashlib.md5(stored[first]).hexdigest()
