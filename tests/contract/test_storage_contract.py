"""The IStorage contract: every backend runs these tests (see conftest.py).

Tests that only make sense for a backend on a real filesystem (foreign files, symlinks,
file/directory conflicts, temporary files) take the ``fs_storage`` fixture and are
skipped for the memory backend.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import (
    IConsumer,
    IProducer,
    IPushProducer,
    IReactorThreads,
    IReactorTime,
)
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer
from zope.interface.verify import verifyObject

from s3proxy.errors import (
    BadDigest,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    ExistingObjectIsDirectory,
    IncompleteBody,
    InvalidArgument,
    NoSuchBucket,
    NoSuchKey,
    ObjectParentIsFile,
    S3Error,
)
from s3proxy.interfaces import IObjectReader, IObjectWriter, IStorage
from s3proxy.model import DEFAULT_CONTENT_TYPE, ByteRange, ListPage, ObjectAttributes, ObjectInfo
from s3proxy.storage.filesystem import INTERNAL_DIR, FilesystemStorage
from s3proxy.storage.memory import MemoryStorage

Storage = MemoryStorage | FilesystemStorage

BUCKET = "bucket"
MiB = 1024 * 1024
EMPTY_MD5 = hashlib.md5(b"").hexdigest()


# -- helpers --------------------------------------------------------------------------


@implementer(IConsumer)
class Collector:
    """A consumer that keeps everything written to it and checks the producer protocol.

    With ``hold`` set it pauses its producer after every write; ``release`` resumes it.
    """

    def __init__(self, hold: bool = False) -> None:
        self.chunks: list[bytes] = []
        self.producer: IPushProducer | None = None
        self.registrations = 0
        self.unregistrations = 0
        self.hold = hold
        self.paused = False
        self.writes_while_paused = 0

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        assert streaming, "object readers are push producers"
        assert self.producer is None
        self.producer = cast(IPushProducer, producer)
        self.registrations += 1

    def unregisterProducer(self) -> None:
        assert self.producer is not None
        self.producer = None
        self.unregistrations += 1

    def write(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        if self.paused:
            self.writes_while_paused += 1
        self.chunks.append(data)
        if self.hold and not self.paused and self.producer is not None:
            self.paused = True
            self.producer.pauseProducing()

    def release(self) -> None:
        if self.paused and self.producer is not None:
            self.paused = False
            self.producer.resumeProducing()

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


@implementer(IPushProducer)
class FakeProducer:
    """Stands for the client's transport feeding a writer."""

    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0
        self.resumes = 0
        self.stopped = False
        self._resumed: Deferred[None] | None = None

    def pauseProducing(self) -> None:
        assert not self.paused, "paused twice without a resume"
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        assert self.paused, "resumed without a pause"
        self.paused = False
        self.resumes += 1
        waiting, self._resumed = self._resumed, None
        if waiting is not None:
            waiting.callback(None)

    def stopProducing(self) -> None:
        self.stopped = True

    def wait_until_resumed(self) -> Deferred[None]:
        if not self.paused:
            return succeed(None)
        self._resumed = Deferred()
        return self._resumed


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def put(
    storage: Storage,
    key: str,
    data: bytes = b"",
    *,
    bucket: str = BUCKET,
    attributes: ObjectAttributes | None = None,
    chunk_sizes: list[int] | None = None,
    content_md5: bytes | None = None,
    expected_size: int | None = None,
) -> ObjectInfo:
    """Write ``data`` under ``key`` through a writer, in chunks (64 KiB by default)."""
    writer = await storage.open_writer(
        bucket, key, attributes or ObjectAttributes(), content_md5, expected_size
    )
    position = 0
    sizes = iter(chunk_sizes or [])
    while position < len(data):
        size = next(sizes, 64 * 1024)
        writer.write(data[position : position + size])
        position += size
    return await writer.finish()


async def get(
    storage: Storage, key: str, byte_range: ByteRange | None = None, *, bucket: str = BUCKET
) -> bytes:
    """Read an object (or a range of it) through a reader into a consumer."""
    reader = await storage.open_reader(bucket, key, byte_range)
    consumer = Collector()
    assert await result_of(reader.start(consumer)) is None
    assert consumer.registrations == consumer.unregistrations == 1
    return consumer.data


def temp_files(storage: Storage) -> list[str]:
    """What the filesystem backend left in its temporary directory."""
    if not isinstance(storage, FilesystemStorage):
        return []
    return os.listdir(os.path.join(storage.root, INTERNAL_DIR, "tmp"))


def files_under(path: Path) -> set[str]:
    """Every path below ``path`` (not following symlinks), relative to it."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), path))
    return found


async def result_of(d: Deferred[Any]) -> object:
    """What ``d`` fires with (typed ``object``, so a Deferred[None] can be checked)."""
    return await d


def the_reactor() -> IReactorTime:
    from twisted.internet import reactor

    return cast(IReactorTime, reactor)


def sleep(seconds: float) -> Deferred[None]:
    return task.deferLater(the_reactor(), seconds)


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Let the reactor run until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await sleep(0.001)


def open_fds() -> set[str]:
    try:
        return set(os.listdir("/proc/self/fd"))
    except FileNotFoundError:
        pytest.skip("needs /proc/self/fd")


async def make_bucket(storage: Storage, bucket: str = BUCKET) -> None:
    assert await result_of(storage.create_bucket(bucket)) is None


# -- interfaces -----------------------------------------------------------------------


def test_provides_istorage(storage: Storage) -> None:
    assert verifyObject(IStorage, storage)


@pytest_twisted.ensureDeferred
async def test_writers_and_readers_provide_interfaces(storage: Storage) -> None:
    assert await result_of(storage.check()) is None
    await make_bucket(storage)
    writer = await storage.open_writer(BUCKET, "k", ObjectAttributes(), None, None)
    assert verifyObject(IObjectWriter, writer)
    writer.write(b"hello")
    await writer.finish()
    reader = await storage.open_reader(BUCKET, "k", None)
    assert verifyObject(IObjectReader, reader)
    assert reader.byte_range is None
    assert reader.info.key == "k"
    reader.close()
    ranged = await storage.open_reader(BUCKET, "k", ByteRange(1, 2))
    assert ranged.byte_range == ByteRange(1, 2)
    ranged.close()


# -- buckets --------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_bucket_lifecycle(storage: Storage) -> None:
    assert await storage.list_buckets() == []
    await make_bucket(storage)
    info = await storage.head_bucket(BUCKET)
    assert info.name == BUCKET
    assert info.creation_date > 0
    with pytest.raises(BucketAlreadyOwnedByYou):
        await storage.create_bucket(BUCKET)
    assert [b.name for b in await storage.list_buckets()] == [BUCKET]
    assert await result_of(storage.delete_bucket(BUCKET)) is None
    with pytest.raises(NoSuchBucket):
        await storage.head_bucket(BUCKET)
    assert await storage.list_buckets() == []
    # The name is free again.
    await make_bucket(storage)
    assert await storage.list_objects(BUCKET, "", "", "", 1000) == ListPage([], [], False, None)


@pytest_twisted.ensureDeferred
async def test_list_buckets_sorted(storage: Storage) -> None:
    names = ["zeta", "alpha", "b-2", "b.1", "b01", "0zero", "mid"]
    for name in names:
        await make_bucket(storage, name)
    listed = await storage.list_buckets()
    assert [b.name for b in listed] == sorted(names)
    for b in listed:
        assert b == await storage.head_bucket(b.name)


@pytest_twisted.ensureDeferred
async def test_delete_non_empty_bucket(storage: Storage) -> None:
    await make_bucket(storage)
    await put(storage, "deep/down/key", b"x")
    with pytest.raises(BucketNotEmpty):
        await storage.delete_bucket(BUCKET)
    assert await get(storage, "deep/down/key") == b"x"
    await storage.delete_object(BUCKET, "deep/down/key")
    await storage.delete_bucket(BUCKET)
    assert await storage.list_buckets() == []


@pytest_twisted.ensureDeferred
async def test_bucket_holding_only_a_marker_is_not_empty(storage: Storage) -> None:
    await make_bucket(storage)
    await put(storage, "dir/")
    with pytest.raises(BucketNotEmpty):
        await storage.delete_bucket(BUCKET)
    await storage.delete_object(BUCKET, "dir/")
    await storage.delete_bucket(BUCKET)


def _missing_bucket_calls() -> dict[str, Callable[[Storage], Deferred[Any]]]:
    attrs = ObjectAttributes()
    return {
        "head_bucket": lambda s: s.head_bucket("missing"),
        "delete_bucket": lambda s: s.delete_bucket("missing"),
        "list_objects": lambda s: s.list_objects("missing", "", "", "", 1000),
        "list_objects_delimited": lambda s: s.list_objects("missing", "a/", "/", "", 1000),
        # Prefixes that name no storable directory must not hide the missing bucket.
        "list_objects_odd_prefix": lambda s: s.list_objects("missing", "a//b", "", "", 1000),
        "list_objects_dotdot_prefix": lambda s: s.list_objects("missing", "../", "/", "", 9),
        "head_object": lambda s: s.head_object("missing", "k"),
        "open_writer": lambda s: s.open_writer("missing", "k", attrs, None, None),
        "open_reader": lambda s: s.open_reader("missing", "k", None),
        "delete_object": lambda s: s.delete_object("missing", "k"),
        "delete_object_nested": lambda s: s.delete_object("missing", "a/b/c"),
        "delete_object_marker": lambda s: s.delete_object("missing", "a/"),
        "copy_object_src": lambda s: s.copy_object("missing", "k", BUCKET, "k2", None),
        "copy_object_dst": lambda s: s.copy_object(BUCKET, "k", "missing", "k2", None),
    }


@pytest.mark.parametrize("call", sorted(_missing_bucket_calls()))
@pytest_twisted.ensureDeferred
async def test_no_such_bucket(storage: Storage, call: str) -> None:
    await make_bucket(storage)
    await put(storage, "k", b"data")
    with pytest.raises(NoSuchBucket):
        await _missing_bucket_calls()[call](storage)
    assert [b.name for b in await storage.list_buckets()] == [BUCKET]


@pytest_twisted.ensureDeferred
async def test_finish_after_bucket_deleted(storage: Storage) -> None:
    await make_bucket(storage)
    writer = await storage.open_writer(BUCKET, "k", ObjectAttributes(), None, None)
    writer.write(b"late")
    await storage.delete_bucket(BUCKET)
    with pytest.raises(NoSuchBucket):
        await writer.finish()
    assert temp_files(storage) == []
    assert await storage.list_buckets() == []


# -- writing and reading --------------------------------------------------------------


ATTRIBUTES = ObjectAttributes(
    content_type="text/plain; charset=utf-8",
    headers={
        "Cache-Control": "no-cache",
        "Content-Disposition": 'attachment; filename="x.txt"',
        "Content-Encoding": "identity",
        "Content-Language": "fr",
        "Expires": "Wed, 21 Oct 2015 07:28:00 GMT",
    },
    metadata={"colour": "bleu", "empty": "", "unicode": "élan ✓"},
)


@pytest_twisted.ensureDeferred
async def test_write_and_read_back(storage: Storage) -> None:
    await make_bucket(storage)
    data = b"hello, world\n" * 1000
    info = await put(storage, "greeting.txt", data, attributes=ATTRIBUTES)
    assert info.key == "greeting.txt"
    assert info.size == len(data)
    assert info.etag == md5_hex(data)
    assert info.quoted_etag == f'"{md5_hex(data)}"'
    assert info.attributes == ATTRIBUTES
    assert info.last_modified > 0

    head = await storage.head_object(BUCKET, "greeting.txt")
    assert (head.key, head.size, head.etag, head.attributes) == (
        "greeting.txt",
        len(data),
        md5_hex(data),
        ATTRIBUTES,
    )
    reader = await storage.open_reader(BUCKET, "greeting.txt", None)
    assert reader.info == head
    reader.close()
    assert await get(storage, "greeting.txt") == data


@pytest_twisted.ensureDeferred
async def test_default_attributes_and_empty_object(storage: Storage) -> None:
    await make_bucket(storage)
    info = await put(storage, "empty", b"", content_md5=hashlib.md5(b"").digest(), expected_size=0)
    assert (info.size, info.etag) == (0, EMPTY_MD5)
    head = await storage.head_object(BUCKET, "empty")
    assert head.attributes == ObjectAttributes()
    assert head.attributes.content_type == DEFAULT_CONTENT_TYPE
    assert await get(storage, "empty") == b""


@pytest_twisted.ensureDeferred
async def test_large_object_in_many_chunks(storage: Storage) -> None:
    await make_bucket(storage)
    data = payload(5 * MiB + 12345, seed=1)
    rng = random.Random(2)
    sizes = [rng.choice([1, 7, 4096, 65536, 100_000, 333_333]) for _ in range(400)]
    info = await put(
        storage,
        "big/object.bin",
        data,
        chunk_sizes=sizes,
        content_md5=hashlib.md5(data).digest(),
        expected_size=len(data),
    )
    assert (info.size, info.etag) == (len(data), md5_hex(data))
    assert await get(storage, "big/object.bin") == data


@pytest_twisted.ensureDeferred
async def test_byte_ranges(storage: Storage) -> None:
    await make_bucket(storage)
    size = 3 * 512 * 1024 + 7  # spans the filesystem backend's read chunks
    data = payload(size, seed=3)
    await put(storage, "ranged", data)
    ranges = [
        (0, 0),
        (0, 9),
        (5, 5),
        (size - 1, size - 1),
        (0, size - 1),
        (512 * 1024 - 1, 512 * 1024),
        (100, 1024 * 1024 + 100),
        (512 * 1024, 1024 * 1024 - 1),
        (size - 10, size - 1),
    ]
    for first, last in ranges:
        reader = await storage.open_reader(BUCKET, "ranged", ByteRange(first, last))
        assert reader.info.size == size
        consumer = Collector()
        await reader.start(consumer)
        assert consumer.data == data[first : last + 1], (first, last)


@pytest_twisted.ensureDeferred
async def test_reader_honours_pause(storage: Storage) -> None:
    await make_bucket(storage)
    data = payload(2 * MiB + 3, seed=4)
    await put(storage, "k", data)
    reader = await storage.open_reader(BUCKET, "k", None)
    consumer = Collector(hold=True)
    done = reader.start(consumer)
    # Bounded by time, not by reactor turns: backends reading on the I/O pool need
    # more turns when the machine is busy.
    deadline = time.monotonic() + 60
    while not done.called:
        assert time.monotonic() < deadline
        await sleep(0)
        consumer.release()
    await done
    assert consumer.writes_while_paused == 0
    assert consumer.data == data
    assert consumer.unregistrations == 1


@pytest_twisted.ensureDeferred
async def test_reader_stop_producing_ends_early(storage: Storage) -> None:
    await make_bucket(storage)
    data = payload(8 * MiB, seed=5)  # several chunks of any backend
    await put(storage, "k", data)
    fds = open_fds()
    reader = await storage.open_reader(BUCKET, "k", None)
    consumer = Collector(hold=True)
    done = reader.start(consumer)
    await until(lambda: consumer.chunks)
    assert consumer.producer is not None
    consumer.producer.stopProducing()
    assert await result_of(done) is None
    assert consumer.unregistrations == 1
    assert 0 < len(consumer.data) < len(data)
    assert data.startswith(consumer.data)
    # Cancelling the Deferred of a reader stops it too.
    reader = await storage.open_reader(BUCKET, "k", None)
    cancelled = Collector(hold=True)
    done = reader.start(cancelled)
    done.addErrback(lambda f: f.trap(CancelledError))
    done.cancel()
    await done
    assert cancelled.unregistrations == 1
    # Every descriptor was released (reads still in flight close theirs when they end).
    await sleep(0.05)
    assert open_fds() <= fds


@pytest_twisted.ensureDeferred
async def test_readers_release_descriptors(storage: Storage) -> None:
    await make_bucket(storage)
    await put(storage, "k", payload(MiB + 1))
    await put(storage, "d/")
    fds = open_fds()
    for _ in range(20):
        await get(storage, "k")
        await get(storage, "k", ByteRange(10, 20))
        await get(storage, "d/")
        (await storage.open_reader(BUCKET, "k", None)).close()
        await storage.head_object(BUCKET, "k")
    assert open_fds() <= fds


@pytest_twisted.ensureDeferred
async def test_bad_digest_stores_nothing(storage: Storage) -> None:
    await make_bucket(storage)
    data = payload(300_000, seed=6)
    with pytest.raises(BadDigest):
        await put(storage, "k", data, content_md5=hashlib.md5(b"other").digest())
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "k")
    assert temp_files(storage) == []
    assert (await storage.list_objects(BUCKET, "", "", "", 1000)).objects == []
    # A failed overwrite leaves the previous object as it was.
    old = await put(storage, "k", b"old", attributes=ATTRIBUTES)
    with pytest.raises(BadDigest):
        await put(storage, "k", data, content_md5=hashlib.md5(b"other").digest())
    assert await storage.head_object(BUCKET, "k") == old
    assert await get(storage, "k") == b"old"
    assert temp_files(storage) == []


@pytest.mark.parametrize("delta", [-1, 1])
@pytest_twisted.ensureDeferred
async def test_incomplete_body_stores_nothing(storage: Storage, delta: int) -> None:
    await make_bucket(storage)
    data = payload(200_000, seed=7)
    with pytest.raises(IncompleteBody):
        await put(storage, "a/b", data, expected_size=len(data) + delta)
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "a/b")
    assert temp_files(storage) == []
    assert await storage.list_objects(BUCKET, "", "", "", 1000) == ListPage([], [], False, None)
    # A failed finish can be followed by abort(), which is then a no-op.
    writer = await storage.open_writer(BUCKET, "k", ObjectAttributes(), None, 1)
    with pytest.raises(IncompleteBody):
        await writer.finish()
    assert await result_of(writer.abort()) is None
    assert await result_of(writer.abort()) is None
    assert temp_files(storage) == []


@pytest_twisted.ensureDeferred
async def test_abort_leaves_nothing(storage: Storage) -> None:
    await make_bucket(storage)
    writer = await storage.open_writer(BUCKET, "dir/k", ObjectAttributes(), None, None)
    for _ in range(40):
        writer.write(payload(100_000))
    assert await result_of(writer.abort()) is None
    assert await result_of(writer.abort()) is None
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "dir/k")
    assert temp_files(storage) == []
    assert await storage.list_objects(BUCKET, "", "", "", 1000) == ListPage([], [], False, None)
    # The bucket is still empty, so it can be deleted.
    await storage.delete_bucket(BUCKET)


@pytest_twisted.ensureDeferred
async def test_nothing_visible_before_finish(storage: Storage) -> None:
    await make_bucket(storage)
    await put(storage, "k", b"old")
    writer = await storage.open_writer(BUCKET, "k", ObjectAttributes(), None, None)
    writer.write(b"new bytes")
    await sleep(0.01)
    assert await get(storage, "k") == b"old"
    writer2 = await storage.open_writer(BUCKET, "fresh", ObjectAttributes(), None, None)
    writer2.write(b"x")
    await sleep(0.01)
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "fresh")
    assert [o.key for o in (await storage.list_objects(BUCKET, "", "", "", 10)).objects] == ["k"]
    await writer.finish()
    await writer2.finish()
    assert await get(storage, "k") == b"new bytes"
    assert await get(storage, "fresh") == b"x"


@pytest_twisted.ensureDeferred
async def test_overwrite_replaces(storage: Storage) -> None:
    await make_bucket(storage)
    await put(storage, "k", b"first version", attributes=ATTRIBUTES)
    info = await put(storage, "k", b"second")
    assert info.etag == md5_hex(b"second")
    head = await storage.head_object(BUCKET, "k")
    assert (head.size, head.etag, head.attributes) == (6, md5_hex(b"second"), ObjectAttributes())
    assert await get(storage, "k") == b"second"
    page = await storage.list_objects(BUCKET, "", "", "", 1000)
    assert [(o.key, o.etag) for o in page.objects] == [("k", md5_hex(b"second"))]


@pytest_twisted.ensureDeferred
async def test_reader_keeps_reading_the_old_version(storage: Storage) -> None:
    await make_bucket(storage)
    old = payload(2 * MiB + 1, seed=8)
    new = payload(MiB, seed=9)
    await put(storage, "k", old)
    # Opened before the overwrite, started after it.
    reader = await storage.open_reader(BUCKET, "k", None)
    await put(storage, "k", new)
    consumer = Collector()
    await reader.start(consumer)
    assert consumer.data == old
    # Overwritten while the reader is part-way through.
    await put(storage, "k", old)
    reader = await storage.open_reader(BUCKET, "k", None)
    consumer = Collector(hold=True)
    done = reader.start(consumer)
    await until(lambda: consumer.chunks)
    assert 0 < len(consumer.data) < len(old)
    await put(storage, "k", new)
    await storage.delete_object(BUCKET, "k")
    while not done.called:
        consumer.release()
        await sleep(0)
    await done
    assert consumer.data == old
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "k")


@pytest_twisted.ensureDeferred
async def test_writer_backpressure(storage: Storage) -> None:
    await make_bucket(storage)
    writer = await storage.open_writer(BUCKET, "k", ObjectAttributes(), None, None)
    producer = FakeProducer()
    writer.registerProducer(producer, True)
    chunk = payload(64 * 1024, seed=10)
    total = 12 * MiB
    md5 = hashlib.md5()
    sent = 0
    while sent < total:
        # A well-behaved transport: no data while paused.
        await producer.wait_until_resumed()
        writer.write(chunk)
        md5.update(chunk)
        sent += len(chunk)
    writer.unregisterProducer()
    info = await writer.finish()
    assert (info.size, info.etag) == (total, md5.hexdigest())
    assert producer.resumes == producer.pauses
    assert not producer.paused
    assert not producer.stopped
    if isinstance(storage, FilesystemStorage):
        assert producer.pauses >= 1
    data = await get(storage, "k")
    assert len(data) == total
    assert md5_hex(data) == md5.hexdigest()


@pytest_twisted.ensureDeferred
async def test_writer_backpressure_with_reentrant_writes(storage: Storage) -> None:
    """A producer that writes from inside resumeProducing (like an object reader
    piped into a writer) gets the same bytes stored."""
    await make_bucket(storage)
    data = payload(10 * MiB, seed=11)
    await put(storage, "src", data)
    writer = await storage.open_writer(BUCKET, "dst", ObjectAttributes(), None, len(data))
    reader = await storage.open_reader(BUCKET, "src", None)
    await reader.start(writer)
    info = await writer.finish()
    assert (info.size, info.etag) == (len(data), md5_hex(data))
    assert await get(storage, "dst") == data


# -- deleting, directory markers ------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_delete_object(storage: Storage) -> None:
    await make_bucket(storage)
    assert await result_of(storage.delete_object(BUCKET, "never-existed")) is None
    assert await result_of(storage.delete_object(BUCKET, "no/such/dir/key")) is None
    assert await result_of(storage.delete_object(BUCKET, "no/such/marker/")) is None
    await put(storage, "k", b"data")
    await put(storage, "k2", b"data")
    assert await result_of(storage.delete_object(BUCKET, "k")) is None
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "k")
    with pytest.raises(NoSuchKey):
        await storage.open_reader(BUCKET, "k", None)
    assert await result_of(storage.delete_object(BUCKET, "k")) is None
    page = await storage.list_objects(BUCKET, "", "", "", 1000)
    assert [o.key for o in page.objects] == ["k2"]


@pytest_twisted.ensureDeferred
async def test_delete_removes_implicit_parents(storage: Storage) -> None:
    await make_bucket(storage)
    await put(storage, "a/b/c", b"data")
    await put(storage, "x/y/z", b"data")
    await storage.delete_object(BUCKET, "a/b/c")
    page = await storage.list_objects(BUCKET, "", "/", "", 1000)
    assert (page.objects, page.common_prefixes) == ([], ["x/"])
    if isinstance(storage, FilesystemStorage):
        assert not os.path.lexists(os.path.join(storage.root, BUCKET, "a"))
        assert os.path.isdir(os.path.join(storage.root, BUCKET, "x", "y"))
    await storage.delete_object(BUCKET, "x/y/z")
    await storage.delete_bucket(BUCKET)


@pytest_twisted.ensureDeferred
async def test_delete_keeps_marker_parents(storage: Storage) -> None:
    await make_bucket(storage)
    await put(storage, "a/")
    await put(storage, "a/b/c", b"data")
    await storage.delete_object(BUCKET, "a/b/c")
    head = await storage.head_object(BUCKET, "a/")
    assert (head.key, head.size, head.etag) == ("a/", 0, EMPTY_MD5)
    page = await storage.list_objects(BUCKET, "", "", "", 1000)
    assert [o.key for o in page.objects] == ["a/"]
    if isinstance(storage, FilesystemStorage):
        assert os.path.isdir(os.path.join(storage.root, BUCKET, "a"))
        assert not os.path.lexists(os.path.join(storage.root, BUCKET, "a", "b"))


@pytest_twisted.ensureDeferred
async def test_directory_markers(storage: Storage) -> None:
    await make_bucket(storage)
    info = await put(storage, "a/", attributes=ATTRIBUTES)
    assert (info.key, info.size, info.etag) == ("a/", 0, EMPTY_MD5)
    head = await storage.head_object(BUCKET, "a/")
    assert (head.size, head.etag, head.attributes) == (0, EMPTY_MD5, ATTRIBUTES)
    assert await get(storage, "a/") == b""
    # "a" and "a/" are different keys.
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "a")
    with pytest.raises(NoSuchKey):
        await storage.open_reader(BUCKET, "a", None)
    await storage.delete_object(BUCKET, "a")
    assert (await storage.head_object(BUCKET, "a/")).key == "a/"
    # A marker holding objects: deleting it leaves them, and the directory, alone.
    await put(storage, "a/b", b"inside")
    await storage.delete_object(BUCKET, "a/")
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "a/")
    assert await get(storage, "a/b") == b"inside"
    page = await storage.list_objects(BUCKET, "", "", "", 1000)
    assert [o.key for o in page.objects] == ["a/b"]
    # A directory implied by an object is not a marker object.
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "x/")
    await put(storage, "x/y", b"y")
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "x/")
    # The key "a" holds no object (only "a/b" exists).
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "a")


@pytest_twisted.ensureDeferred
async def test_marker_without_marker_prefix(storage: Storage) -> None:
    """Only "a/" exists: "a" is absent, and "a/" is listed as the object it is."""
    await make_bucket(storage)
    await put(storage, "a/")
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "a")
    page = await storage.list_objects(BUCKET, "a", "", "", 1000)
    assert [o.key for o in page.objects] == ["a/"]
    page = await storage.list_objects(BUCKET, "", "/", "", 1000)
    assert (page.objects, page.common_prefixes) == ([], ["a/"])
    page = await storage.list_objects(BUCKET, "a/", "/", "", 1000)
    assert ([o.key for o in page.objects], page.common_prefixes) == (["a/"], [])


# -- listing --------------------------------------------------------------------------

# No key is a path prefix of another ("k" and "k/..."), which a filesystem cannot hold.
LISTING_KEYS = [
    "a-b",
    "a.b",
    "a/b-c",
    "a/b.c",
    "a/b/",
    "a/b/c",
    "a/b/d/e",
    "a/b0",
    "a/c",
    "a0",
    "ab",
    "b/",
    "b/x",
    "c",
    "d/e/f/g",
    "m/",
    "sp ace",
    "z",
    "z-1",
    "z-2/q",
    "é",
    "éa/x",
    "\ufb01",  # U+FB01 sorts before the astral key below in UTF-8 (and code-point) order,
    "\U0001f600x/y",  # after it in UTF-16 order (surrogates start at U+D800)
]
PREFIXES = ["", "a", "a/", "a/b", "a/b/", "a/b/c", "a/b/d", "b", "b/", "d/e/", "é", "z", "q", "a//"]
DELIMITERS = ["", "/", "-", "/b"]
MARKERS = ["", "a", "a/", "a/b", "a/b/", "a/b/c", "a/b/d/e", "a0", "b/", "m", "zz", "é", "\uffff"]


def model_listing(
    keys: dict[str, str], prefix: str, delimiter: str, marker: str, max_keys: int
) -> tuple[list[tuple[str, str]], list[str], bool, str | None]:
    """The reference: (key, etag) pairs, common prefixes, truncation, next marker."""
    entries: list[tuple[str, str | None]] = []  # (key or prefix, etag or None)
    rolled: set[str] = set()
    for key in sorted(keys, key=lambda k: k.encode("utf-8")):
        if not key.startswith(prefix) or key <= marker:
            continue
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                if common not in rolled and common > marker:
                    entries.append((common, None))
                rolled.add(common)
                continue
        entries.append((key, keys[key]))
    page = entries[: max(max_keys, 0)]
    truncated = len(entries) > len(page) and max_keys > 0
    objects = [(name, etag) for name, etag in page if etag is not None]
    prefixes = [name for name, etag in page if etag is None]
    return objects, prefixes, truncated, page[-1][0] if truncated else None


def as_model(page: ListPage) -> tuple[list[tuple[str, str]], list[str], bool, str | None]:
    return (
        [(o.key, o.etag) for o in page.objects],
        page.common_prefixes,
        page.is_truncated,
        page.next_marker,
    )


async def fill_listing_bucket(storage: Storage) -> dict[str, str]:
    await make_bucket(storage)
    etags = {}
    for i, key in enumerate(LISTING_KEYS):
        data = b"" if key.endswith("/") else f"body of {key} {i}".encode()
        etags[key] = (await put(storage, key, data)).etag
    return etags


def test_model_sorts_in_utf8_order() -> None:
    assert sorted(LISTING_KEYS) == sorted(LISTING_KEYS, key=lambda k: k.encode("utf-8"))
    objects, prefixes, truncated, next_marker = model_listing(
        dict.fromkeys(["a/b", "a/c", "a-b", "b"], "e"), "", "/", "", 2
    )
    assert (objects, prefixes, truncated, next_marker) == ([("a-b", "e")], ["a/"], True, "a/")


@pytest_twisted.ensureDeferred
async def test_listing_order_and_details(storage: Storage) -> None:
    etags = await fill_listing_bucket(storage)
    page = await storage.list_objects(BUCKET, "", "", "", 1000)
    keys = [o.key for o in page.objects]
    assert keys == sorted(LISTING_KEYS, key=lambda k: k.encode("utf-8"))
    assert (page.common_prefixes, page.is_truncated, page.next_marker) == ([], False, None)
    for o in page.objects:
        assert o.etag == etags[o.key]
        head = await storage.head_object(BUCKET, o.key)
        assert (o.size, o.etag) == (head.size, head.etag)
        assert o.size == (0 if o.key.endswith("/") else len(await get(storage, o.key)))


@pytest_twisted.ensureDeferred
async def test_listing_matches_model(storage: Storage) -> None:
    etags = await fill_listing_bucket(storage)
    for prefix in PREFIXES:
        for delimiter in DELIMITERS:
            for marker in MARKERS:
                for max_keys in (1000, 0, 2):
                    args = (prefix, delimiter, marker, max_keys)
                    page = await storage.list_objects(BUCKET, *args)
                    assert as_model(page) == model_listing(etags, *args), args


@pytest_twisted.ensureDeferred
async def test_listing_pages_with_next_marker(storage: Storage) -> None:
    etags = await fill_listing_bucket(storage)
    for prefix in ["", "a", "a/", "a/b/", "z"]:
        for delimiter in DELIMITERS:
            everything = model_listing(etags, prefix, delimiter, "", 1000)
            expected = [k for k, _ in everything[0]] + everything[1]
            for max_keys in (1, 2, 3):
                collected: list[str] = []
                marker = ""
                for _ in range(len(LISTING_KEYS) + 1):
                    args = (prefix, delimiter, marker, max_keys)
                    page = await storage.list_objects(BUCKET, *args)
                    assert as_model(page) == model_listing(etags, *args), args
                    assert 0 < len(page.objects) + len(page.common_prefixes) <= max_keys or (
                        not expected
                    )
                    collected += [o.key for o in page.objects] + page.common_prefixes
                    if not page.is_truncated:
                        break
                    assert page.next_marker is not None
                    marker = page.next_marker
                else:
                    pytest.fail(f"listing never ended: {prefix!r} {delimiter!r} {max_keys}")
                assert len(collected) == len(set(collected))
                assert sorted(collected) == sorted(expected), (prefix, delimiter, max_keys)


@pytest_twisted.ensureDeferred
async def test_listing_examples(storage: Storage) -> None:
    """A few listings spelled out, as a check on the model itself."""
    await fill_listing_bucket(storage)
    page = await storage.list_objects(BUCKET, "a/", "/", "", 1000)
    assert [o.key for o in page.objects] == ["a/b-c", "a/b.c", "a/b0", "a/c"]
    assert page.common_prefixes == ["a/b/"]
    page = await storage.list_objects(BUCKET, "", "/", "", 1000)
    assert page.common_prefixes == ["a/", "b/", "d/", "m/", "z-2/", "éa/", "\U0001f600x/"]
    page = await storage.list_objects(BUCKET, "z", "-", "", 1000)
    assert ([o.key for o in page.objects], page.common_prefixes) == (["z"], ["z-"])
    page = await storage.list_objects(BUCKET, "a/b/", "/", "a/b/", 1000)
    assert ([o.key for o in page.objects], page.common_prefixes) == (["a/b/c"], ["a/b/d/"])
    page = await storage.list_objects(BUCKET, "", "", "a/b/c", 2)
    assert [o.key for o in page.objects] == ["a/b/d/e", "a/b0"]
    assert (page.is_truncated, page.next_marker) == (True, "a/b0")


# -- copying --------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_copy_object(storage: Storage) -> None:
    await make_bucket(storage)
    await make_bucket(storage, "other")
    data = payload(2 * MiB + 17, seed=12)
    await put(storage, "src", data, attributes=ATTRIBUTES)

    kept = await storage.copy_object(BUCKET, "src", "other", "dir/copy", None)
    assert (kept.key, kept.size, kept.etag) == ("dir/copy", len(data), md5_hex(data))
    assert kept.attributes == ATTRIBUTES
    assert await storage.head_object("other", "dir/copy") == kept
    assert await get(storage, "dir/copy", bucket="other") == data

    new_attributes = ObjectAttributes(content_type="image/png", metadata={"k": "v"})
    replaced = await storage.copy_object(BUCKET, "src", BUCKET, "copy2", new_attributes)
    assert replaced.attributes == new_attributes
    assert (await storage.head_object(BUCKET, "copy2")).attributes == new_attributes
    assert await get(storage, "copy2") == data

    # Onto itself, replacing the attributes only (how clients edit metadata).
    itself = await storage.copy_object(BUCKET, "src", BUCKET, "src", new_attributes)
    assert (itself.etag, itself.attributes) == (md5_hex(data), new_attributes)
    assert await get(storage, "src") == data
    # The source is untouched by the other copies, and a copy overwrites.
    await put(storage, "copy2", b"old")
    await storage.copy_object(BUCKET, "src", BUCKET, "copy2", None)
    assert await get(storage, "copy2") == data

    with pytest.raises(NoSuchKey):
        await storage.copy_object(BUCKET, "missing", BUCKET, "dst", None)
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, "dst")
    assert temp_files(storage) == []


@pytest_twisted.ensureDeferred
async def test_copy_marker(storage: Storage) -> None:
    await make_bucket(storage)
    await put(storage, "m/", attributes=ATTRIBUTES)
    info = await storage.copy_object(BUCKET, "m/", BUCKET, "n/", None)
    assert (info.key, info.size, info.etag, info.attributes) == ("n/", 0, EMPTY_MD5, ATTRIBUTES)
    assert (await storage.head_object(BUCKET, "n/")).attributes == ATTRIBUTES


# -- filesystem only ------------------------------------------------------------------


def bucket_dir(storage: FilesystemStorage, bucket: str = BUCKET) -> Path:
    return Path(storage.root) / bucket


@pytest_twisted.ensureDeferred
async def test_fs_foreign_files(fs_storage: FilesystemStorage) -> None:
    await make_bucket(fs_storage)
    (bucket_dir(fs_storage) / "dir").mkdir()
    (bucket_dir(fs_storage) / "dir" / "x.txt").write_bytes(b"dropped in\n")
    (bucket_dir(fs_storage) / "pic.png").write_bytes(b"\x89PNG")
    page = await fs_storage.list_objects(BUCKET, "", "", "", 1000)
    assert [(o.key, o.size) for o in page.objects] == [("dir/x.txt", 11), ("pic.png", 4)]
    page = await fs_storage.list_objects(BUCKET, "", "/", "", 1000)
    assert ([o.key for o in page.objects], page.common_prefixes) == (["pic.png"], ["dir/"])
    head = await fs_storage.head_object(BUCKET, "dir/x.txt")
    assert head.attributes.content_type == "text/plain"
    assert head.size == 11
    assert len(head.etag) == 32
    assert head == await fs_storage.head_object(BUCKET, "dir/x.txt")  # a stable ETag
    assert (await fs_storage.head_object(BUCKET, "pic.png")).attributes.content_type == "image/png"
    assert await get(fs_storage, "dir/x.txt") == b"dropped in\n"
    assert await get(fs_storage, "dir/x.txt", ByteRange(3, 4)) == b"pp"
    # An object written through the gateway and then replaced by another program is
    # served as the new file, without the old ETag or attributes.
    await put(fs_storage, "dir/y.bin", b"by the gateway", attributes=ATTRIBUTES)
    (bucket_dir(fs_storage) / "dir" / "y.bin").write_bytes(b"by another program")
    head = await fs_storage.head_object(BUCKET, "dir/y.bin")
    assert head.etag != md5_hex(b"by the gateway")
    assert head.attributes != ATTRIBUTES
    assert await get(fs_storage, "dir/y.bin") == b"by another program"


BAD_KEYS = ["a/../b", "../x", "a//b", "./a", "a/./b", "/a", "..", ".", "a/..", "x/../../y"]


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest_twisted.ensureDeferred
async def test_fs_unstorable_keys(fs_storage: FilesystemStorage, tmp_path: Path, key: str) -> None:
    await make_bucket(fs_storage)
    await put(fs_storage, "src", b"data")
    before = files_under(tmp_path)
    with pytest.raises(InvalidArgument):
        await put(fs_storage, key, b"escape")
    with pytest.raises(InvalidArgument):
        await fs_storage.copy_object(BUCKET, "src", BUCKET, key, None)
    with pytest.raises((InvalidArgument, NoSuchKey)):
        await fs_storage.head_object(BUCKET, key)
    with pytest.raises((InvalidArgument, NoSuchKey)):
        await fs_storage.open_reader(BUCKET, key, None)
    assert await result_of(fs_storage.delete_object(BUCKET, key)) is None
    assert files_under(tmp_path) == before
    assert temp_files(fs_storage) == []
    assert await get(fs_storage, "src") == b"data"


@pytest_twisted.ensureDeferred
async def test_fs_symlinks_lead_nowhere(fs_storage: FilesystemStorage, tmp_path: Path) -> None:
    await make_bucket(fs_storage)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (outside / "sub").mkdir()
    (outside / "sub" / "deeper.txt").write_bytes(b"deeper")
    bucket = bucket_dir(fs_storage)
    (bucket / "link").symlink_to(outside, target_is_directory=True)
    (bucket / "flink").symlink_to(outside / "secret.txt")
    (bucket / "real").mkdir()
    (bucket / "real" / "link").symlink_to(outside, target_is_directory=True)
    (Path(fs_storage.root) / "evil").symlink_to(outside, target_is_directory=True)
    await put(fs_storage, "visible", b"v")

    for delimiter in ("", "/"):
        page = await fs_storage.list_objects(BUCKET, "", delimiter, "", 1000)
        assert ([o.key for o in page.objects], page.common_prefixes) == (["visible"], [])
        for prefix in ("link", "link/", "real/", "flink"):
            page = await fs_storage.list_objects(BUCKET, prefix, delimiter, "", 1000)
            assert page == ListPage([], [], False, None), (prefix, delimiter)
    for key in ("link/secret.txt", "link/sub/deeper.txt", "flink", "real/link/secret.txt", "link/"):
        with pytest.raises(NoSuchKey):
            await fs_storage.head_object(BUCKET, key)
        with pytest.raises(NoSuchKey):
            await fs_storage.open_reader(BUCKET, key, None)
    with pytest.raises(NoSuchKey):
        await fs_storage.copy_object(BUCKET, "link/secret.txt", BUCKET, "stolen", None)

    # Writing through a link fails, and nothing appears in the target.
    before = files_under(outside)
    for key in ("link/x", "link/sub/x", "real/link/x", "link/new/", "link/"):
        with pytest.raises(S3Error):
            await put(fs_storage, key, b"")
        with pytest.raises(S3Error):
            await fs_storage.copy_object(BUCKET, "visible", BUCKET, key, None)
    # Deleting through a link does not touch the target either.
    for key in ("link/secret.txt", "link/sub/deeper.txt", "link/sub/", "link/"):
        await fs_storage.delete_object(BUCKET, key)
    assert files_under(outside) == before
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert temp_files(fs_storage) == []

    # A symlink standing for a bucket is no bucket.
    assert [b.name for b in await fs_storage.list_buckets()] == [BUCKET]
    with pytest.raises(NoSuchBucket):
        await fs_storage.head_bucket("evil")
    with pytest.raises(NoSuchBucket):
        await fs_storage.list_objects("evil", "", "", "", 1000)
    with pytest.raises(NoSuchBucket):
        await fs_storage.head_object("evil", "secret.txt")
    with pytest.raises(NoSuchBucket):
        await put(fs_storage, "planted", b"x", bucket="evil")
    with pytest.raises(NoSuchBucket):
        await fs_storage.delete_object("evil", "secret.txt")
    with pytest.raises(NoSuchBucket):
        await fs_storage.delete_bucket("evil")
    assert files_under(outside) == before

    # Replacing a file symlink replaces the link, never the file it points to.
    await put(fs_storage, "flink", b"replaced")
    assert await get(fs_storage, "flink") == b"replaced"
    await fs_storage.delete_object(BUCKET, "flink")
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert files_under(outside) == before


@pytest_twisted.ensureDeferred
async def test_fs_file_directory_conflicts(fs_storage: FilesystemStorage) -> None:
    await make_bucket(fs_storage)
    await put(fs_storage, "a/b", b"inside")
    with pytest.raises(ExistingObjectIsDirectory) as raised:
        await put(fs_storage, "a", b"file over directory")
    assert raised.value.status == 409
    with pytest.raises(ExistingObjectIsDirectory):
        await fs_storage.copy_object(BUCKET, "a/b", BUCKET, "a", None)

    await put(fs_storage, "f", b"plain file")
    with pytest.raises(ObjectParentIsFile) as parent_is_file:
        await put(fs_storage, "f/b", b"below a file")
    assert parent_is_file.value.status == 409
    with pytest.raises(ObjectParentIsFile):
        await put(fs_storage, "f/b/c", b"further below a file")
    with pytest.raises(ObjectParentIsFile):
        await fs_storage.copy_object(BUCKET, "a/b", BUCKET, "f/x", None)
    with pytest.raises(S3Error) as marker_on_file:
        await put(fs_storage, "f/")
    assert marker_on_file.value.status == 409

    assert await get(fs_storage, "a/b") == b"inside"
    assert await get(fs_storage, "f") == b"plain file"
    with pytest.raises(NoSuchKey):
        await fs_storage.head_object(BUCKET, "a")
    page = await fs_storage.list_objects(BUCKET, "", "", "", 1000)
    assert [o.key for o in page.objects] == ["a/b", "f"]
    assert temp_files(fs_storage) == []


@pytest_twisted.ensureDeferred
async def test_fs_marker_must_be_empty(fs_storage: FilesystemStorage) -> None:
    await make_bucket(fs_storage)
    with pytest.raises(InvalidArgument):
        await put(fs_storage, "dir/", b"a body")
    with pytest.raises(NoSuchKey):
        await fs_storage.head_object(BUCKET, "dir/")
    assert temp_files(fs_storage) == []


@pytest_twisted.ensureDeferred
async def test_fs_temporary_files_stay_hidden(fs_storage: FilesystemStorage) -> None:
    await make_bucket(fs_storage)
    await put(fs_storage, "done", b"x")
    writer = await fs_storage.open_writer(BUCKET, "pending", ObjectAttributes(), None, None)
    # Enough to be written out at once (smaller writes wait for more, or for finish).
    writer.write(payload(1024 * 1024))
    await sleep(0.05)
    assert temp_files(fs_storage) != []  # the upload is really under way
    assert [b.name for b in await fs_storage.list_buckets()] == [BUCKET]
    for delimiter in ("", "/"):
        page = await fs_storage.list_objects(BUCKET, "", delimiter, "", 1000)
        assert ([o.key for o in page.objects], page.common_prefixes) == (["done"], [])
    await writer.abort()
    assert temp_files(fs_storage) == []
    assert sorted(os.listdir(bucket_dir(fs_storage))) == ["done"]
    assert [b.name for b in await fs_storage.list_buckets()] == [BUCKET]


@pytest_twisted.ensureDeferred
async def test_fs_start_up_sweeps_temporary_files(
    fs_storage: FilesystemStorage, thread_pool: ThreadPool
) -> None:
    await make_bucket(fs_storage)
    await put(fs_storage, "kept", b"data", attributes=ATTRIBUTES)
    tmp = Path(fs_storage.root) / INTERNAL_DIR / "tmp"
    (tmp / "crashed-upload.part").write_bytes(b"half an object")
    (tmp / "crashed.meta").write_bytes(b"{}")
    restarted = FilesystemStorage(
        fs_storage.root,
        cast(IReactorThreads, the_reactor()),
        thread_pool,
        metadata=fs_storage.metadata.name,
        fsync=False,
    )
    assert temp_files(restarted) == []
    head = await restarted.head_object(BUCKET, "kept")
    assert (head.etag, head.attributes) == (md5_hex(b"data"), ATTRIBUTES)
    assert [b.name for b in await restarted.list_buckets()] == [BUCKET]
