"""A storage backend held in memory: for tests and throw-away deployments."""

from __future__ import annotations

import bisect
import hashlib
import time
from dataclasses import dataclass, field, replace

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from s3proxy.errors import (
    BadDigest,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    IncompleteBody,
    NoSuchBucket,
    NoSuchKey,
    S3Error,
)
from s3proxy.interfaces import IObjectWriter, IStorage
from s3proxy.model import (
    BucketInfo,
    ByteRange,
    ListPage,
    ObjectAttributes,
    ObjectInfo,
)
from s3proxy.storage.listing import roll_up, take_page
from s3proxy.storage.streams import ChunkedReader

READ_CHUNK = 256 * 1024


@dataclass
class _Bucket:
    created: float
    keys: list[str] = field(default_factory=list)  # sorted, for listing
    objects: dict[str, tuple[ObjectInfo, bytes]] = field(default_factory=dict)

    def put(self, info: ObjectInfo, data: bytes) -> None:
        if info.key not in self.objects:
            bisect.insort(self.keys, info.key)
        self.objects[info.key] = (info, data)

    def remove(self, key: str) -> None:
        if self.objects.pop(key, None) is not None:
            del self.keys[bisect.bisect_left(self.keys, key)]


@implementer(IObjectWriter)
class MemoryWriter:
    def __init__(
        self,
        storage: MemoryStorage,
        bucket: str,
        key: str,
        attributes: ObjectAttributes,
        content_md5: bytes | None,
        expected_size: int | None,
    ) -> None:
        self._storage = storage
        self._bucket = bucket
        self._key = key
        self._attributes = attributes
        self._content_md5 = content_md5
        self._expected_size = expected_size
        self._chunks: list[bytes] = []
        self._md5 = hashlib.md5()
        self._size = 0

    def write(self, data: bytes) -> None:
        self._chunks.append(data)
        self._md5.update(data)
        self._size += len(data)

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        pass  # never behind: memory takes everything at once

    def unregisterProducer(self) -> None:
        pass

    def finish(self) -> Deferred[ObjectInfo]:
        digest = self._md5.digest()
        data = b"".join(self._chunks)
        self._chunks = []
        if self._expected_size is not None and self._size != self._expected_size:
            return fail(IncompleteBody())
        if self._content_md5 is not None and digest != self._content_md5:
            return fail(BadDigest())
        info = ObjectInfo(
            key=self._key,
            size=self._size,
            etag=digest.hex(),
            last_modified=time.time(),
            attributes=self._attributes,
        )
        try:
            self._storage._bucket(self._bucket).put(info, data)
        except S3Error as e:
            return fail(e)
        return succeed(info)

    def abort(self) -> Deferred[None]:
        self._chunks = []
        return succeed(None)


def _reader_over(info: ObjectInfo, data: bytes, byte_range: ByteRange | None) -> ChunkedReader:
    view = memoryview(data)
    position, end = (0, len(data)) if byte_range is None else (byte_range.first, byte_range.last + 1)

    def read_chunk() -> Deferred[bytes]:
        nonlocal position
        chunk = bytes(view[position : min(end, position + READ_CHUNK)])
        position += len(chunk)
        return succeed(chunk)

    return ChunkedReader(info, byte_range, read_chunk, view.release)


@implementer(IStorage)
class MemoryStorage:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, name: str) -> _Bucket:
        try:
            return self._buckets[name]
        except KeyError:
            raise NoSuchBucket(BucketName=name) from None

    def _object(self, bucket: str, key: str) -> tuple[ObjectInfo, bytes]:
        try:
            return self._bucket(bucket).objects[key]
        except KeyError:
            raise NoSuchKey(Key=key) from None

    def check(self) -> Deferred[None]:
        return succeed(None)

    def list_buckets(self) -> Deferred[list[BucketInfo]]:
        return succeed([BucketInfo(n, b.created) for n, b in sorted(self._buckets.items())])

    def create_bucket(self, bucket: str) -> Deferred[None]:
        if bucket in self._buckets:
            return fail(BucketAlreadyOwnedByYou(BucketName=bucket))
        self._buckets[bucket] = _Bucket(created=time.time())
        return succeed(None)

    def head_bucket(self, bucket: str) -> Deferred[BucketInfo]:
        try:
            return succeed(BucketInfo(bucket, self._bucket(bucket).created))
        except S3Error as e:
            return fail(e)

    def delete_bucket(self, bucket: str) -> Deferred[None]:
        try:
            if self._bucket(bucket).objects:
                raise BucketNotEmpty(BucketName=bucket)
        except S3Error as e:
            return fail(e)
        del self._buckets[bucket]
        return succeed(None)

    def list_objects(
        self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int
    ) -> Deferred[ListPage]:
        try:
            b = self._bucket(bucket)
        except S3Error as e:
            return fail(e)
        start = bisect.bisect_right(b.keys, max(marker, prefix)) if marker >= prefix else bisect.bisect_left(b.keys, prefix)

        def matching():  # type: ignore[no-untyped-def]
            for key in b.keys[start:]:
                if not key.startswith(prefix):
                    return
                yield b.objects[key][0]

        return succeed(take_page(roll_up(matching(), prefix, delimiter, marker), max_keys))

    def head_object(self, bucket: str, key: str) -> Deferred[ObjectInfo]:
        try:
            return succeed(self._object(bucket, key)[0])
        except S3Error as e:
            return fail(e)

    def open_writer(
        self,
        bucket: str,
        key: str,
        attributes: ObjectAttributes,
        content_md5: bytes | None,
        expected_size: int | None,
    ) -> Deferred[MemoryWriter]:
        try:
            self._bucket(bucket)
        except S3Error as e:
            return fail(e)
        return succeed(MemoryWriter(self, bucket, key, attributes, content_md5, expected_size))

    def open_reader(
        self, bucket: str, key: str, byte_range: ByteRange | None
    ) -> Deferred[ChunkedReader]:
        try:
            info, data = self._object(bucket, key)
        except S3Error as e:
            return fail(e)
        return succeed(_reader_over(info, data, byte_range))

    def delete_object(self, bucket: str, key: str) -> Deferred[None]:
        try:
            self._bucket(bucket).remove(key)
        except S3Error as e:
            return fail(e)
        return succeed(None)

    def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        attributes: ObjectAttributes | None,
    ) -> Deferred[ObjectInfo]:
        try:
            info, data = self._object(src_bucket, src_key)
            target = self._bucket(dst_bucket)
        except S3Error as e:
            return fail(e)
        copied = replace(
            info,
            key=dst_key,
            etag=hashlib.md5(data).hexdigest(),
            last_modified=time.time(),
            attributes=attributes if attributes is not None else info.attributes,
        )
        target.put(copied, data)
        return succeed(copied)
