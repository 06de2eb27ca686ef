"""A cache whose disk fails (full, read-only, unreadable, unusable) passes reads
through to the backend: clients never see its errors."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted  # type: ignore[import-untyped]

from s3proxy.cache import CachingStorage, files
from tests.cache.conftest import (
    BLOCK,
    CountingStorage,
    SteppedClock,
    block_files,
    settle,
    temp_files,
    uploaded,
)
from tests.contract.test_storage_contract import get

SIZE = 4 * BLOCK + 10


def fail_with(code: int) -> Callable[..., Any]:
    def failing(*args: object) -> Any:
        raise OSError(code, os.strerror(code))

    return failing


async def stored(cache: CachingStorage) -> bytes:
    return await uploaded(cache, SIZE, seed=11)


@pytest.mark.parametrize("step", ["write_chunk", "open_temp", "publish"])
@pytest_twisted.ensureDeferred
async def test_full_disk_passes_through(
    cache: CachingStorage,
    cache_dir: Path,
    clock: SteppedClock,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    data = await stored(cache)
    monkeypatch.setattr(files, step, fail_with(errno.ENOSPC))
    assert await get(cache, "k") == data
    await settle(cache)
    stats = cache.stats()
    assert stats["errors"] >= 1 and stats["bytes"] == 0 and stats["fills"] == 0
    assert block_files(cache_dir) == {} and temp_files(cache_dir) == []
    assert cache.index.reserved == 0
    # While it cools down the cache does not even try; afterwards it works again.
    errors = stats["errors"]
    assert await get(cache, "k") == data
    assert cache.stats()["errors"] == errors
    monkeypatch.undo()
    clock.now += 60
    assert await get(cache, "k") == data
    await settle(cache)
    assert cache.stats()["bytes"] == SIZE


@pytest_twisted.ensureDeferred
async def test_cache_directory_gone_unusable(cache: CachingStorage, cache_dir: Path) -> None:
    """The blocks directory replaced by a file: every write fails (as on a read-only
    or vanished disk, which root's tests cannot make with chmod)."""
    data = await stored(cache)
    shutil.rmtree(cache_dir / "blocks")
    (cache_dir / "blocks").write_bytes(b"not a directory")
    assert await get(cache, "k") == data
    await settle(cache)
    assert cache.stats()["errors"] >= 1 and cache.stats()["bytes"] == 0
    assert await get(cache, "k") == data


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
@pytest_twisted.ensureDeferred
async def test_read_only_cache_directory(cache: CachingStorage, cache_dir: Path) -> None:
    data = await stored(cache)
    os.chmod(cache_dir / "blocks", 0o500)
    try:
        assert await get(cache, "k") == data
        await settle(cache)
        assert cache.stats()["errors"] >= 1 and cache.stats()["bytes"] == 0
    finally:
        os.chmod(cache_dir / "blocks", 0o700)


@pytest_twisted.ensureDeferred
async def test_unreadable_block_is_fetched_from_the_backend(
    cache: CachingStorage, backend: CountingStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = await stored(cache)
    assert await get(cache, "k") == data
    await settle(cache)
    monkeypatch.setattr(files, "read_block", fail_with(errno.EIO))
    assert await get(cache, "k") == data
    assert cache.stats()["errors"] >= 1
    assert len(backend.opened) == 2


@pytest_twisted.ensureDeferred
async def test_unusable_cache_directory_at_start_up(
    make_cache: Callable[..., CachingStorage], cache_dir: Path
) -> None:
    cache_dir.write_bytes(b"a file where the cache directory should be")
    cache = make_cache()
    assert cache.stats()["errors"] == 1
    data = await stored(cache)
    assert await get(cache, "k") == data
    assert await get(cache, "k") == data
    await settle(cache)
    assert cache_dir.read_bytes().startswith(b"a file")
