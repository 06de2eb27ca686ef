"""Fixtures of the IStorage contract suite: one ``storage`` per backend.

pytest-twisted is loaded through its entry point and installs the default reactor;
the async tests are marked ``@pytest_twisted.ensureDeferred`` and run in the reactor.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from twisted.internet.interfaces import IReactorThreads
from twisted.python.threadpool import ThreadPool

from s3proxy.cache import CachingStorage
from s3proxy.storage.filesystem import FilesystemStorage
from s3proxy.storage.memory import MemoryStorage

# cache-*: the read cache over a backend; small blocks, so that objects span several.
BACKENDS = ("memory", "fs-xattr", "fs-sidecar", "cache-memory", "cache-fs")
CACHE_BLOCK_SIZE = 64 * 1024


def the_reactor() -> IReactorThreads:
    """The reactor pytest-twisted installed (imported late, after it did)."""
    from twisted.internet import reactor

    return cast(IReactorThreads, reactor)


@pytest.fixture
def thread_pool() -> Iterator[ThreadPool]:
    """The daemon's blocking-I/O pool, started for one test and stopped after it."""
    pool = ThreadPool(minthreads=0, maxthreads=4, name="contract")
    pool.start()
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture
def fs_root(tmp_path: Path) -> Path:
    """The filesystem backend's root, one level below ``tmp_path`` so that the tests
    can check that nothing is ever created outside it."""
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture(params=BACKENDS)
def storage(
    request: pytest.FixtureRequest, fs_root: Path, tmp_path: Path
) -> Iterator[MemoryStorage | FilesystemStorage | CachingStorage]:
    if request.param == "memory":
        yield MemoryStorage()
        return
    pool = cast(ThreadPool, request.getfixturevalue("thread_pool"))
    if request.param.startswith("cache-"):
        backend: MemoryStorage | FilesystemStorage = (
            MemoryStorage()
            if request.param == "cache-memory"
            else FilesystemStorage(str(fs_root), the_reactor(), pool, fsync=False)
        )
        cache_dir = str(tmp_path / "cache")
        yield CachingStorage(
            backend, cache_dir, 64 * 1024 * 1024, the_reactor(), pool, block_size=CACHE_BLOCK_SIZE
        )
        return
    metadata = request.param.removeprefix("fs-")
    yield FilesystemStorage(str(fs_root), the_reactor(), pool, metadata=metadata, fsync=False)


@pytest.fixture
def fs_storage(storage: MemoryStorage | FilesystemStorage | CachingStorage) -> FilesystemStorage:
    """The filesystem backends only; the memory run of a test using this is skipped."""
    if not isinstance(storage, FilesystemStorage):
        pytest.skip("filesystem backend only")
    return storage
