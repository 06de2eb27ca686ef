"""``CachingStorage``: any IStorage, with the objects read through it cached on disk."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from s3proxy.acl import AccessControl
from s3proxy.cache import files
from s3proxy.cache.fill import CacheDisk
from s3proxy.cache.index import CacheIndex, Entry
from s3proxy.cache.pull import PullStream
from s3proxy.cache.reader import BlockSource, CachedObjectReader, OpenBackend
from s3proxy.errors import NoSuchBucket, NoSuchKey
from s3proxy.interfaces import IObjectReader, IObjectWriter, IStorage
from s3proxy.model import (
    BucketInfo,
    ByteRange,
    ListPage,
    ObjectAttributes,
    ObjectInfo,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
)

DEFAULT_BLOCK_SIZE = 1024 * 1024


@implementer(IObjectWriter)
class InvalidatingWriter:
    """The backend's writer; once it has committed, the cached version is dropped."""

    def __init__(self, writer: IObjectWriter, invalidate: Any) -> None:
        self._writer = writer
        self._invalidate = invalidate

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._writer.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._writer.unregisterProducer()

    def finish(self, checksums: Mapping[str, str] | None = None) -> Deferred[ObjectInfo]:
        return self._writer.finish(checksums).addBoth(self._invalidate)

    def abort(self) -> Deferred[None]:
        return self._writer.abort()


@implementer(IStorage)
class CachingStorage:
    """Wraps ``backend`` (only through IStorage) and keeps the blocks of the objects
    read through it under ``cache_dir``, at most ``max_bytes`` of them, least
    recently used evicted first. Every GET asks the backend for the object's ETag
    (``head_object``) unless it was checked less than ``ttl`` seconds ago; a
    different ETag or size drops the cached version. Writes through this storage
    drop it too. The cache can only make reads faster: when its disk fails, reads go
    to the backend."""

    log = Logger()

    def __init__(
        self,
        backend: IStorage,
        cache_dir: str,
        max_bytes: int,
        reactor: Any,
        pool: ThreadPool,
        ttl: float = 0.0,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        self.backend = backend
        self.ttl = ttl
        self.reactor = reactor
        self._changes = 0  # writes through us, to spot those racing a backend open
        root = f"{cache_dir}/blocks"
        self.index = CacheIndex(root, max_bytes, block_size)
        self.disk = CacheDisk(self.index, reactor, pool)
        try:
            stale = files.set_aside(cache_dir)
        except OSError as e:
            self.disk.failed(Failure(e), f"preparing {cache_dir}")
        else:
            self.disk.delete(stale)

    def stats(self) -> dict[str, int]:
        """Counters since start-up and the current size: see docs/configuration.md."""
        return self.index.stats()

    # -- reads -----------------------------------------------------------------------

    def open_reader(
        self, bucket: str, key: str, byte_range: ByteRange | None
    ) -> Deferred[IObjectReader]:
        return Deferred.fromCoroutine(self._open_reader(bucket, key, byte_range))

    async def _open_reader(
        self, bucket: str, key: str, byte_range: ByteRange | None
    ) -> IObjectReader:
        entry = await self._valid_entry(bucket, key)
        if entry is not None:
            source = BlockSource(self.disk, entry, self._opener(bucket, key), None)
            return CachedObjectReader(entry.info, source, byte_range)
        changes = self._changes
        reader: IObjectReader = await self.backend.open_reader(bucket, key, None)
        info: ObjectInfo = reader.info
        entry = self.index.entries.get((bucket, key))
        if entry is not None and not entry.matches(info):
            self.disk.drop(entry, "stale")  # its files go when its last reader does
            entry = None
        if entry is None:
            entry = self.index.new_entry(bucket, key, info, self.reactor.seconds())
        entry.info, entry.validated_at = info, self.reactor.seconds()
        if self._changes != changes:
            # Something was written through us while the backend opened the object:
            # this may be the version before it, so the TTL must not vouch for it.
            entry.validated_at = float("-inf")
        source = BlockSource(self.disk, entry, self._opener(bucket, key), PullStream(reader))
        return CachedObjectReader(info, source, byte_range)

    async def _valid_entry(self, bucket: str, key: str) -> Entry | None:
        """The cached version if it has blocks and is still the backend's."""
        entry = self.index.entries.get((bucket, key))
        if entry is None or not entry.blocks:
            return None
        if self.reactor.seconds() - entry.validated_at < self.ttl:
            return entry
        try:
            info: ObjectInfo = await self.backend.head_object(bucket, key)
        except (NoSuchKey, NoSuchBucket):
            self.disk.drop(entry, "stale")
            raise
        if entry.dead:
            return None
        if not entry.matches(info):
            self.disk.drop(entry, "stale")
            return None
        entry.info, entry.validated_at = info, self.reactor.seconds()
        return entry

    def _opener(self, bucket: str, key: str) -> OpenBackend:
        return lambda byte_range: self.backend.open_reader(bucket, key, byte_range)

    # -- invalidation ----------------------------------------------------------------

    def invalidate(self, bucket: str, key: str) -> None:
        """Forget the cached version of ``bucket/key`` (it was written through us)."""
        self._changes += 1
        entry = self.index.entries.get((bucket, key))
        if entry is not None:
            self.disk.drop(entry, "invalidations")

    def _invalidating(self, bucket: str, key: str) -> Any:
        def invalidate(result: Any) -> Any:
            self.invalidate(bucket, key)
            return result

        return invalidate

    def _recheck(self, bucket: str, key: str) -> Any:
        """After an ACL change: the data stays, its ObjectInfo must be asked for again."""

        def recheck(result: Any) -> Any:
            self._changes += 1
            entry = self.index.entries.get((bucket, key))
            if entry is not None:
                entry.validated_at = float("-inf")
            return result

        return recheck

    # -- IStorage: objects -----------------------------------------------------------

    def head_object(self, bucket: str, key: str) -> Deferred[ObjectInfo]:
        return self.backend.head_object(bucket, key)

    def open_writer(
        self,
        bucket: str,
        key: str,
        attributes: ObjectAttributes,
        content_md5: bytes | None,
        expected_size: int | None,
        create_only: bool = False,
    ) -> Deferred[IObjectWriter]:
        d = self.backend.open_writer(
            bucket, key, attributes, content_md5, expected_size, create_only=create_only
        )
        return d.addCallback(InvalidatingWriter, self._invalidating(bucket, key))

    def put_object_acl(self, bucket: str, key: str, acl: AccessControl) -> Deferred[None]:
        return self.backend.put_object_acl(bucket, key, acl).addBoth(self._recheck(bucket, key))

    def put_object_tagging(self, bucket: str, key: str, tags: Mapping[str, str]) -> Deferred[None]:
        d = self.backend.put_object_tagging(bucket, key, tags)
        return d.addBoth(self._recheck(bucket, key))

    def delete_object(self, bucket: str, key: str) -> Deferred[None]:
        d = self.backend.delete_object(bucket, key)
        return d.addBoth(self._invalidating(bucket, key))

    def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        attributes: ObjectAttributes | None,
    ) -> Deferred[ObjectInfo]:
        d = self.backend.copy_object(src_bucket, src_key, dst_bucket, dst_key, attributes)
        return d.addBoth(self._invalidating(dst_bucket, dst_key))

    def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[tuple[int, str]],
        min_part_size: int,
        create_only: bool = False,
    ) -> Deferred[ObjectInfo]:
        d = self.backend.complete_multipart_upload(
            bucket, key, upload_id, parts, min_part_size, create_only=create_only
        )
        return d.addBoth(self._invalidating(bucket, key))

    # -- IStorage: buckets -----------------------------------------------------------

    def check(self) -> Deferred[None]:
        return self.backend.check()

    def list_buckets(self) -> Deferred[list[BucketInfo]]:
        return self.backend.list_buckets()

    def create_bucket(self, bucket: str, acl: AccessControl | None = None) -> Deferred[None]:
        return self.backend.create_bucket(bucket, acl)

    def put_bucket_acl(self, bucket: str, acl: AccessControl) -> Deferred[None]:
        return self.backend.put_bucket_acl(bucket, acl)

    def get_bucket_config(self, bucket: str, name: str) -> Deferred[str | None]:
        return self.backend.get_bucket_config(bucket, name)

    def put_bucket_config(self, bucket: str, name: str, value: str | None) -> Deferred[None]:
        return self.backend.put_bucket_config(bucket, name, value)

    def head_bucket(self, bucket: str) -> Deferred[BucketInfo]:
        return self.backend.head_bucket(bucket)

    def delete_bucket(self, bucket: str) -> Deferred[None]:
        def forget(result: Any) -> Any:
            for entry in [e for (b, _), e in self.index.entries.items() if b == bucket]:
                self.disk.drop(entry, "invalidations")
            return result

        return self.backend.delete_bucket(bucket).addBoth(forget)

    def list_objects(
        self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int
    ) -> Deferred[ListPage]:
        return self.backend.list_objects(bucket, prefix, delimiter, marker, max_keys)

    # -- IStorage: multipart (passed through; completion invalidates above) ----------

    def create_multipart_upload(
        self, bucket: str, key: str, attributes: ObjectAttributes
    ) -> Deferred[UploadInfo]:
        return self.backend.create_multipart_upload(bucket, key, attributes)

    def open_part_writer(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        content_md5: bytes | None,
        expected_size: int | None,
    ) -> Deferred[IObjectWriter]:
        return self.backend.open_part_writer(
            bucket, key, upload_id, part_number, content_md5, expected_size
        )

    def copy_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        src_bucket: str,
        src_key: str,
        byte_range: ByteRange | None,
    ) -> Deferred[PartInfo]:
        return self.backend.copy_part(
            bucket, key, upload_id, part_number, src_bucket, src_key, byte_range
        )

    def list_parts(
        self, bucket: str, key: str, upload_id: str, part_number_marker: int, max_parts: int
    ) -> Deferred[tuple[UploadInfo, PartsPage]]:
        return self.backend.list_parts(bucket, key, upload_id, part_number_marker, max_parts)

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> Deferred[None]:
        return self.backend.abort_multipart_upload(bucket, key, upload_id)

    def list_multipart_uploads(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> Deferred[UploadsPage]:
        return self.backend.list_multipart_uploads(
            bucket, prefix, delimiter, key_marker, upload_id_marker, max_uploads
        )

    def expire_multipart_uploads(self, older_than: float) -> Deferred[int]:
        return self.backend.expire_multipart_uploads(older_than)
