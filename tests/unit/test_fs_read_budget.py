"""Large downloads share a read-ahead budget: the chunk shrinks as they multiply."""

from __future__ import annotations

import os
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool

from s3proxy.model import ObjectAttributes
from s3proxy.storage import filesystem
from s3proxy.storage.filesystem import (
    READ_BUDGET,
    READ_CHUNK_MAX,
    READ_CHUNK_MIN,
    FilesystemStorage,
    read_chunk_size,
)


def test_chunk_sizes() -> None:
    assert read_chunk_size(0) == read_chunk_size(1) == READ_CHUNK_MAX
    assert read_chunk_size(READ_BUDGET // READ_CHUNK_MAX) == READ_CHUNK_MAX
    middle = read_chunk_size(READ_BUDGET // READ_CHUNK_MAX * 3)
    assert READ_CHUNK_MIN < middle < READ_CHUNK_MAX and middle % (64 * 1024) == 0
    assert read_chunk_size(10_000) == READ_CHUNK_MIN
    # The whole read-ahead (two chunks per download) stays near twice the budget.
    for n in (1, 10, 16, 40, 128):
        assert n * read_chunk_size(n) <= max(READ_BUDGET, n * READ_CHUNK_MIN)


@pytest_twisted.ensureDeferred
async def test_open_large_readers_are_counted_and_shrink_the_chunk(tmp_path: Path) -> None:
    pool = ThreadPool(minthreads=1, maxthreads=2)
    pool.start()
    try:
        storage = FilesystemStorage(str(tmp_path), reactor, pool, fsync=False)
        await storage.create_bucket("bkt")
        for key, size in (("big", filesystem.PREFETCH_LIMIT + 1), ("small", 10)):
            writer = await storage.open_writer("bkt", key, ObjectAttributes(), None, size)
            writer.write(os.urandom(size))
            await writer.finish()
        small = [await storage.open_reader("bkt", "small", None) for _ in range(3)]
        assert storage._large_reads == 0  # read whole when opened: no chunks
        readers = [await storage.open_reader("bkt", "big", None) for _ in range(40)]
        assert storage._large_reads == 40
        sizes = [r._chunk_size for r in readers]  # type: ignore[attr-defined]
        assert sizes[0] == READ_CHUNK_MAX and sizes[-1] == read_chunk_size(40) < READ_CHUNK_MAX
        assert sizes == sorted(sizes, reverse=True)
        for reader in readers + small:
            reader.close()  # type: ignore[attr-defined]
            reader.close()  # twice: counted once
        assert storage._large_reads == 0
        again = await storage.open_reader("bkt", "big", None)
        assert again._chunk_size == READ_CHUNK_MAX  # type: ignore[attr-defined]
        again.close()  # type: ignore[attr-defined]
    finally:
        pool.stop()
