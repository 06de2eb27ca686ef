"""The read cache: hits, validation, invalidation, eviction, ranges, concurrency."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet.defer import Deferred
from zope.interface.verify import verifyObject

from s3proxy.acl import AccessControl
from s3proxy.cache import CachingStorage
from s3proxy.errors import NoSuchKey
from s3proxy.interfaces import IObjectReader, IStorage
from s3proxy.model import ByteRange, ObjectAttributes
from tests.cache.conftest import (
    BLOCK,
    CountingStorage,
    SteppedClock,
    block_files,
    settle,
    temp_files,
    uploaded,
)
from tests.contract.test_storage_contract import (
    BUCKET,
    Collector,
    get,
    make_bucket,
    payload,
    put,
    result_of,
    sleep,
)

SIZE = 5 * BLOCK + 300  # six blocks, the last one short


async def cached_object(cache: CachingStorage, key: str = "k", size: int = SIZE) -> bytes:
    """An object written through the cache and read once, so its blocks are cached."""
    data = await uploaded(cache, size, seed=len(key) + size, key=key)
    assert await get(cache, key) == data
    await settle(cache)
    return data


def test_provides_istorage(cache: CachingStorage) -> None:
    assert verifyObject(IStorage, cache)


@pytest_twisted.ensureDeferred
async def test_miss_then_hit_without_reading_the_backend(
    cache: CachingStorage, backend: CountingStorage, cache_dir: Path
) -> None:
    data = await cached_object(cache)
    assert len(backend.opened) == 1
    stats = cache.stats()
    assert stats["misses"] == 6 and stats["fills"] == 6 and stats["hits"] == 0
    assert stats["bytes_from_backend"] == SIZE and stats["bytes"] == SIZE
    assert sorted(block_files(cache_dir).values()) == [300] + [BLOCK] * 5

    heads = backend.heads
    assert await get(cache, "k") == data
    assert len(backend.opened) == 1  # the bytes came from the cache only
    assert backend.heads == heads + 1  # but the ETag was checked
    stats = cache.stats()
    assert stats["hits"] == 6 and stats["bytes_from_cache"] == SIZE


@pytest_twisted.ensureDeferred
async def test_hit_honours_pause(cache: CachingStorage) -> None:
    data = await cached_object(cache, size=600 * 1024)
    reader = await cache.open_reader(BUCKET, "k", None)
    consumer = Collector(hold=True)
    done = reader.start(consumer)
    while not done.called:
        await sleep(0)
        consumer.release()
    await done
    assert consumer.writes_while_paused == 0
    assert consumer.data == data
    assert cache.stats()["misses"] == 600  # only the first read


@pytest_twisted.ensureDeferred
async def test_ttl_trusts_the_cached_etag(
    make_cache: Callable[..., CachingStorage], backend: CountingStorage, clock: SteppedClock
) -> None:
    cache = make_cache(ttl=30)
    data = await cached_object(cache)
    heads = backend.heads
    assert await get(cache, "k") == data
    assert backend.heads == heads  # within the TTL: no question to the backend
    clock.now += 31
    assert await get(cache, "k") == data
    assert backend.heads == heads + 1
    assert len(backend.opened) == 1


@pytest_twisted.ensureDeferred
async def test_etag_change_behind_the_cache_is_detected(
    cache: CachingStorage, backend: CountingStorage, cache_dir: Path
) -> None:
    await cached_object(cache)
    newer = payload(SIZE, seed=99)  # same size, other bytes
    await put(backend, "k", newer)  # straight to the backend
    assert await get(cache, "k") == newer
    assert cache.stats()["stale"] == 1
    await settle(cache)
    assert cache.stats()["bytes"] == SIZE  # the old version's blocks are gone
    assert sum(block_files(cache_dir).values()) == SIZE
    assert await get(cache, "k") == newer
    assert cache.stats()["hits"] == 6


@pytest_twisted.ensureDeferred
async def test_delete_behind_the_cache_is_detected(
    cache: CachingStorage, backend: CountingStorage
) -> None:
    await cached_object(cache)
    await backend.delete_object(BUCKET, "k")
    with pytest.raises(NoSuchKey):
        await cache.open_reader(BUCKET, "k", None)
    assert not cache.index.entries


async def _write_through(cache: CachingStorage, operation: str, data: bytes) -> None:
    if operation == "put":
        await put(cache, "k", data)
    elif operation == "copy":
        await put(cache, "src", data)
        await cache.copy_object(BUCKET, "src", BUCKET, "k", None)
    elif operation == "complete":
        upload = await cache.create_multipart_upload(BUCKET, "k", ObjectAttributes())
        writer = await cache.open_part_writer(BUCKET, "k", upload.upload_id, 1, None, None)
        writer.write(data)
        part = await writer.finish()
        await cache.complete_multipart_upload(BUCKET, "k", upload.upload_id, [(1, part.etag)], 0)


@pytest.mark.parametrize("operation", ["put", "copy", "complete"])
@pytest_twisted.ensureDeferred
async def test_writes_through_the_cache_invalidate(
    make_cache: Callable[..., CachingStorage], backend: CountingStorage, operation: str
) -> None:
    # With a long TTL only the invalidation can keep the old bytes from being served.
    cache = make_cache(ttl=3600)
    await cached_object(cache)
    newer = payload(SIZE, seed=7)
    await _write_through(cache, operation, newer)
    assert ("bucket", "k") not in [(e.bucket, e.key) for e in cache.index.entries.values()]
    assert cache.stats()["invalidations"] == 1
    assert await get(cache, "k") == newer


@pytest_twisted.ensureDeferred
async def test_delete_through_the_cache_invalidates(
    make_cache: Callable[..., CachingStorage],
) -> None:
    cache = make_cache(ttl=3600)
    await cached_object(cache)
    await cache.delete_object(BUCKET, "k")
    assert cache.stats()["invalidations"] == 1
    with pytest.raises(NoSuchKey):
        await cache.open_reader(BUCKET, "k", None)


@pytest_twisted.ensureDeferred
async def test_acl_change_makes_the_next_read_ask_the_backend(
    make_cache: Callable[..., CachingStorage], backend: CountingStorage
) -> None:
    cache = make_cache(ttl=3600)
    data = await cached_object(cache)
    acl = AccessControl("alice", "alice")
    await cache.put_object_acl(BUCKET, "k", acl)
    heads = backend.heads
    reader = await cache.open_reader(BUCKET, "k", None)
    assert backend.heads == heads + 1
    assert reader.info.attributes.acl == acl
    consumer = Collector()
    await reader.start(consumer)
    assert consumer.data == data
    assert len(backend.opened) == 1  # the data itself is still served from the cache


@pytest_twisted.ensureDeferred
async def test_lru_eviction_and_size_bound(
    make_cache: Callable[..., CachingStorage], cache_dir: Path
) -> None:
    cache = make_cache(max_bytes=4 * BLOCK)
    await make_bucket(cache)
    objects = {k: payload(2 * BLOCK, seed=i) for i, k in enumerate("abc")}
    for key, data in objects.items():
        await put(cache, key, data)
    for key in ("a", "b", "a", "c"):  # "a" read again: "b" is the least recently used
        assert await get(cache, key) == objects[key]
        await settle(cache)
        assert sum(block_files(cache_dir).values()) <= 4 * BLOCK
    entries = cache.index.entries
    assert len(entries[(BUCKET, "a")].blocks) == 2
    assert len(entries[(BUCKET, "c")].blocks) == 2
    assert (BUCKET, "b") not in entries  # nothing of it left: forgotten
    stats = cache.stats()
    assert stats["evictions"] == 2 and stats["bytes"] == 4 * BLOCK
    assert sum(block_files(cache_dir).values()) == 4 * BLOCK


@pytest_twisted.ensureDeferred
async def test_object_larger_than_the_cache_passes_through(
    make_cache: Callable[..., CachingStorage], cache_dir: Path
) -> None:
    cache = make_cache(max_bytes=3 * BLOCK)
    data = await cached_object(cache, size=10 * BLOCK)
    assert await get(cache, "k") == data
    await settle(cache)
    assert cache.stats()["bytes"] <= 3 * BLOCK
    assert sum(block_files(cache_dir).values()) <= 3 * BLOCK


@pytest.mark.parametrize("damage", ["flip", "truncate", "remove"])
@pytest_twisted.ensureDeferred
async def test_corrupt_block_is_detected_and_refetched(
    cache: CachingStorage, backend: CountingStorage, cache_dir: Path, damage: str
) -> None:
    data = await cached_object(cache)
    path = sorted(block_files(cache_dir))[0]
    if damage == "flip":
        raw = bytearray(Path(path).read_bytes())
        raw[10] ^= 0xFF
        Path(path).write_bytes(bytes(raw))
    elif damage == "truncate":
        Path(path).write_bytes(Path(path).read_bytes()[:-1])
    else:
        Path(path).unlink()
    assert await get(cache, "k") == data
    stats = cache.stats()
    assert stats["corrupt"] == 1 and stats["hits"] == 5
    assert len(backend.opened) == 2  # the damaged block came from the backend again
    await settle(cache)
    assert await get(cache, "k") == data  # and was cached again
    assert cache.stats()["hits"] == 11
    assert len(backend.opened) == 2


RANGES = [(1000, 3100), (0, 0), (SIZE - 1, SIZE - 1), (BLOCK, 2 * BLOCK - 1), (500, SIZE - 1)]


@pytest_twisted.ensureDeferred
async def test_ranges_across_block_boundaries(
    cache: CachingStorage, backend: CountingStorage
) -> None:
    data = await uploaded(cache, SIZE, seed=3)
    for first, last in RANGES:
        assert await get(cache, "k", ByteRange(first, last)) == data[first : last + 1]
        await settle(cache)
    # The first range touched blocks 0-3 (all four were cached whole); then only the
    # blocks no range had touched yet were asked of the backend.
    assert backend.opened == [
        ("k", None),
        ("k", ByteRange(5 * BLOCK, SIZE - 1)),
        ("k", ByteRange(4 * BLOCK, 5 * BLOCK - 1)),
    ]
    opened = len(backend.opened)
    assert await get(cache, "k") == data
    assert len(backend.opened) == opened  # every block is cached by now
    assert cache.stats()["bytes"] == SIZE


@pytest_twisted.ensureDeferred
async def test_range_of_a_partly_cached_object(
    cache: CachingStorage, backend: CountingStorage
) -> None:
    data = await uploaded(cache, SIZE, seed=4)
    assert await get(cache, "k", ByteRange(0, 10)) == data[:11]
    await settle(cache)
    assert set(cache.index.entries[(BUCKET, "k")].blocks) == {0}
    # Block 0 from the cache, blocks 1-5 in one backend read.
    assert await get(cache, "k", ByteRange(5, SIZE - 1)) == data[5:]
    assert backend.opened[-1] == ("k", ByteRange(BLOCK, SIZE - 1))
    assert cache.stats()["hits"] == 1


@pytest_twisted.ensureDeferred
async def test_concurrent_readers_of_a_missing_object(
    cache: CachingStorage, backend: CountingStorage, cache_dir: Path
) -> None:
    data = await uploaded(cache, 300 * BLOCK, seed=5)
    readers = [await cache.open_reader(BUCKET, "k", None) for _ in range(3)]
    consumers = [Collector(hold=True) for _ in readers]
    done = [r.start(c) for r, c in zip(readers, consumers, strict=True)]
    while not all(d.called for d in done):
        await sleep(0)
        for consumer in consumers:
            consumer.release()
    for d, consumer in zip(done, consumers, strict=True):
        assert await result_of(d) is None
        assert consumer.data == data
    await settle(cache)
    stats = cache.stats()
    assert stats["fills"] == 300 and stats["bytes"] == len(data)  # each block once
    assert sum(block_files(cache_dir).values()) == len(data)
    opened = len(backend.opened)
    assert await get(cache, "k") == data
    assert len(backend.opened) == opened


@pytest_twisted.ensureDeferred
async def test_stopped_reader_leaves_no_partial_block(
    cache: CachingStorage, cache_dir: Path
) -> None:
    data = await uploaded(cache, 600 * BLOCK, seed=6)
    reader = await cache.open_reader(BUCKET, "k", None)
    consumer = Collector(hold=True)
    done = reader.start(consumer)
    await sleep(0.01)
    assert consumer.producer is not None
    consumer.producer.stopProducing()
    assert await result_of(done) is None
    await settle(cache)
    assert temp_files(cache_dir) == []
    entry = cache.index.entries[(BUCKET, "k")]
    assert entry.pins == 0 and not entry.filling
    assert sum(block_files(cache_dir).values()) == cache.stats()["bytes"] < len(data)
    assert data.startswith(consumer.data)
    assert await get(cache, "k") == data


@pytest_twisted.ensureDeferred
async def test_reader_of_an_overwritten_version_keeps_its_blocks(
    cache: CachingStorage, cache_dir: Path
) -> None:
    data = await cached_object(cache)
    reader = await cache.open_reader(BUCKET, "k", None)
    newer = payload(SIZE, seed=8)
    await put(cache, "k", newer)  # invalidates while the reader still holds the version
    consumer = Collector()
    await reader.start(consumer)
    assert consumer.data == data
    await settle(cache)
    assert block_files(cache_dir) == {}  # deleted once its last reader was done
    assert cache.stats()["bytes"] == 0
    assert await get(cache, "k") == newer


@pytest_twisted.ensureDeferred
async def test_head_reads_nothing(cache: CachingStorage, backend: CountingStorage) -> None:
    await cached_object(cache)
    reader = await cache.open_reader(BUCKET, "k", None)
    reader.close()
    await settle(cache)
    assert cache.index.entries[(BUCKET, "k")].pins == 0
    assert len(backend.opened) == 1


@pytest_twisted.ensureDeferred
async def test_empty_object(cache: CachingStorage) -> None:
    await make_bucket(cache)
    await put(cache, "empty", b"")
    assert await get(cache, "empty") == b""
    assert await get(cache, "empty") == b""
    assert not cache.index.entries  # nothing cached, nothing remembered


@pytest_twisted.ensureDeferred
async def test_heads_of_many_objects_do_not_grow_the_index(cache: CachingStorage) -> None:
    await make_bucket(cache)
    for i in range(50):
        await put(cache, f"k{i}", b"data")
        reader = await cache.open_reader(BUCKET, f"k{i}", None)
        reader.close()
    assert not cache.index.entries


@pytest_twisted.ensureDeferred
async def test_start_up_empties_an_earlier_cache(
    make_cache: Callable[..., CachingStorage], cache_dir: Path
) -> None:
    first = make_cache()
    await cached_object(first)
    assert block_files(cache_dir)
    second = make_cache()
    await settle(second)
    assert block_files(cache_dir) == {}
    assert second.stats()["bytes"] == 0


class SlowOpen(CountingStorage):
    """Its next open_reader opens at once but answers only when ``gate`` fires."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: Deferred[None] | None = None

    def open_reader(
        self, bucket: str, key: str, byte_range: ByteRange | None
    ) -> Deferred[IObjectReader]:
        d = super().open_reader(bucket, key, byte_range)
        if self.gate is None:
            return d
        gate, self.gate = self.gate, None
        return gate.addCallback(lambda _: d)


@pytest_twisted.ensureDeferred
async def test_write_racing_a_miss_is_not_trusted_by_the_ttl(
    make_cache: Callable[..., CachingStorage],
) -> None:
    backend = SlowOpen()
    cache = make_cache(ttl=3600, over=backend)
    old = await uploaded(cache, SIZE, seed=1)
    gate: Deferred[None] = Deferred()
    backend.gate = gate
    reading = Deferred.fromCoroutine(get(cache, "k"))
    newer = payload(SIZE, seed=2)
    await put(cache, "k", newer)  # lands while the first read's open is in flight
    gate.callback(None)
    assert await reading == old  # it had opened the old version
    await settle(cache)
    assert await get(cache, "k") == newer
