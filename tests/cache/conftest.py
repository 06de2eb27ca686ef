"""Fixtures of the read cache tests: a cache over a backend that counts its reads."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.python.threadpool import ThreadPool

from s3proxy.cache import CachingStorage
from s3proxy.interfaces import IObjectReader
from s3proxy.model import ByteRange, ObjectInfo
from s3proxy.storage.memory import MemoryStorage
from tests.contract.test_storage_contract import make_bucket, payload, put, the_reactor, until

BLOCK = 1024


class CountingStorage(MemoryStorage):
    """The memory backend, counting the reads the cache asks of it."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[tuple[str, ByteRange | None]] = []
        self.heads = 0

    def open_reader(
        self, bucket: str, key: str, byte_range: ByteRange | None
    ) -> Deferred[IObjectReader]:
        self.opened.append((key, byte_range))
        return super().open_reader(bucket, key, byte_range)

    def head_object(self, bucket: str, key: str) -> Deferred[ObjectInfo]:
        self.heads += 1
        return super().head_object(bucket, key)


class SteppedClock:
    """The running reactor, with a ``seconds()`` the test moves on."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self.now = 1000.0

    def seconds(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    """One thread, so a job queued last runs after every job queued before it."""
    pool = ThreadPool(minthreads=1, maxthreads=1, name="cache-test")
    pool.start()
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture
def backend() -> CountingStorage:
    return CountingStorage()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(the_reactor())


@pytest.fixture
def make_cache(
    backend: CountingStorage, cache_dir: Path, pool: ThreadPool, clock: SteppedClock
) -> Callable[..., CachingStorage]:
    def make(
        max_bytes: int = 1024 * 1024, ttl: float = 0.0, over: CountingStorage | None = None
    ) -> CachingStorage:
        """A cache over the ``backend`` fixture, or over ``over`` if given."""
        storage = backend if over is None else over
        return CachingStorage(
            storage, str(cache_dir), max_bytes, clock, pool, ttl=ttl, block_size=BLOCK
        )

    return make


@pytest.fixture
def cache(make_cache: Callable[..., CachingStorage]) -> CachingStorage:
    return make_cache()


async def uploaded(cache: CachingStorage, size: int, seed: int, key: str = "k") -> bytes:
    """An object written through the cache (its bucket made first if need be), not
    read yet: nothing of it is cached."""
    if not await cache.list_buckets():
        await make_bucket(cache)
    data = payload(size, seed=seed)
    await put(cache, key, data)
    return data


async def settle(cache: CachingStorage) -> None:
    """Wait until the cache has finished writing and deleting in the background."""
    await until(lambda: cache.index.reserved == 0)
    await cache.disk.run(lambda: None)  # the pool has one thread: earlier jobs are done


def block_files(cache_dir: Path) -> dict[str, int]:
    """Committed block files under the cache directory and their sizes."""
    found = {}
    for dirpath, _, filenames in os.walk(cache_dir):
        for name in filenames:
            if not name.startswith(".tmp-"):
                found[os.path.join(dirpath, name)] = os.path.getsize(os.path.join(dirpath, name))
    return found


def temp_files(cache_dir: Path) -> list[str]:
    return [n for _, _, names in os.walk(cache_dir) for n in names if n.startswith(".tmp-")]
