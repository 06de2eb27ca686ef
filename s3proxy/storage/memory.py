"""A storage backend held in memory: for tests and throw-away deployments."""

from __future__ import annotations

import bisect
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IProducer
from zope.interface import implementer

from s3proxy.acl import AccessControl
from s3proxy.errors import (
    BadDigest,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    IncompleteBody,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    PreconditionFailed,
    S3Error,
)
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
from s3proxy.storage.listing import roll_up, take_page
from s3proxy.storage.multipart import (
    composite_checksums,
    multipart_etag,
    new_upload_id,
    page_uploads,
    select_parts,
)
from s3proxy.storage.streams import ChunkedReader

READ_CHUNK = 256 * 1024


@dataclass
class _Bucket:
    created: float
    acl: AccessControl | None = None
    config: dict[str, str] = field(default_factory=dict)  # put_bucket_config documents
    keys: list[str] = field(default_factory=list)  # sorted, for listing
    objects: dict[str, tuple[ObjectInfo, bytes]] = field(default_factory=dict)

    def put(self, info: ObjectInfo, data: bytes) -> None:
        if info.key not in self.objects:
            bisect.insort(self.keys, info.key)
        self.objects[info.key] = (info, data)

    def remove(self, key: str) -> None:
        if self.objects.pop(key, None) is not None:
            del self.keys[bisect.bisect_left(self.keys, key)]


@dataclass
class _Upload:
    info: UploadInfo
    parts: dict[int, tuple[PartInfo, bytes]] = field(default_factory=dict)


@implementer(IObjectWriter)
class MemoryWriter:
    """Collects the bytes, then ``commit(etag, data)`` stores them (as an object or a
    part) and returns their ObjectInfo."""

    def __init__(
        self,
        commit: Callable[[str, bytes, dict[str, str]], ObjectInfo],
        content_md5: bytes | None,
        expected_size: int | None,
    ) -> None:
        self._commit = commit
        self._content_md5 = content_md5
        self._expected_size = expected_size
        self._chunks: list[bytes] = []
        self._md5 = hashlib.md5()
        self._size = 0

    def write(self, data: bytes) -> None:
        self._chunks.append(data)
        self._md5.update(data)
        self._size += len(data)

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        pass  # never behind: memory takes everything at once

    def unregisterProducer(self) -> None:
        pass

    def finish(self, checksums: Mapping[str, str] | None = None) -> Deferred[ObjectInfo]:
        digest = self._md5.digest()
        data = b"".join(self._chunks)
        self._chunks = []
        if self._expected_size is not None and self._size != self._expected_size:
            return fail(IncompleteBody())
        if self._content_md5 is not None and digest != self._content_md5:
            return fail(BadDigest())
        try:
            return succeed(self._commit(digest.hex(), data, dict(checksums or {})))
        except S3Error as e:
            return fail(e)

    def abort(self) -> Deferred[None]:
        self._chunks = []
        return succeed(None)


def _reader_over(info: ObjectInfo, data: bytes, byte_range: ByteRange | None) -> ChunkedReader:
    view = memoryview(data)

    def read_at(offset: int, size: int) -> Deferred[bytes]:
        return succeed(bytes(view[offset : offset + size]))

    return ChunkedReader(info, read_at, view.release, READ_CHUNK, byte_range)


@implementer(IStorage)
class MemoryStorage:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._uploads: dict[str, _Upload] = {}

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
        return succeed([BucketInfo(n, b.created, b.acl) for n, b in sorted(self._buckets.items())])

    def create_bucket(self, bucket: str, acl: AccessControl | None = None) -> Deferred[None]:
        if bucket in self._buckets:
            return fail(BucketAlreadyOwnedByYou(BucketName=bucket))
        self._buckets[bucket] = _Bucket(created=time.time(), acl=acl)
        return succeed(None)

    def put_bucket_acl(self, bucket: str, acl: AccessControl) -> Deferred[None]:
        try:
            self._bucket(bucket).acl = acl
        except S3Error as e:
            return fail(e)
        return succeed(None)

    def put_object_acl(self, bucket: str, key: str, acl: AccessControl) -> Deferred[None]:
        return self._change_attributes(bucket, key, lambda a: replace(a, acl=acl))

    def _change_attributes(
        self, bucket: str, key: str, change: Callable[[ObjectAttributes], ObjectAttributes]
    ) -> Deferred[None]:
        """Rewrite an object's stored attributes (not its data) with ``change``."""
        try:
            info, data = self._object(bucket, key)
        except S3Error as e:
            return fail(e)
        attributes = change(info.attributes)
        self._bucket(bucket).objects[key] = (replace(info, attributes=attributes), data)
        return succeed(None)

    def get_bucket_config(self, bucket: str, name: str) -> Deferred[str | None]:
        try:
            return succeed(self._bucket(bucket).config.get(name))
        except S3Error as e:
            return fail(e)

    def put_bucket_config(self, bucket: str, name: str, value: str | None) -> Deferred[None]:
        try:
            config = self._bucket(bucket).config
        except S3Error as e:
            return fail(e)
        if value is None:
            config.pop(name, None)
        else:
            config[name] = value
        return succeed(None)

    def put_object_tagging(self, bucket: str, key: str, tags: Mapping[str, str]) -> Deferred[None]:
        return self._change_attributes(bucket, key, lambda a: replace(a, tags=dict(tags)))

    def head_bucket(self, bucket: str) -> Deferred[BucketInfo]:
        try:
            b = self._bucket(bucket)
            return succeed(BucketInfo(bucket, b.created, b.acl))
        except S3Error as e:
            return fail(e)

    def delete_bucket(self, bucket: str) -> Deferred[None]:
        try:
            if self._bucket(bucket).objects:
                raise BucketNotEmpty(BucketName=bucket)
        except S3Error as e:
            return fail(e)
        del self._buckets[bucket]
        for upload_id in [u for u, up in self._uploads.items() if up.info.bucket == bucket]:
            del self._uploads[upload_id]
        return succeed(None)

    def list_objects(
        self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int
    ) -> Deferred[ListPage]:
        try:
            b = self._bucket(bucket)
        except S3Error as e:
            return fail(e)
        start = (
            bisect.bisect_right(b.keys, max(marker, prefix))
            if marker >= prefix
            else bisect.bisect_left(b.keys, prefix)
        )

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
        create_only: bool = False,
    ) -> Deferred[IObjectWriter]:
        try:
            self._bucket(bucket)
        except S3Error as e:
            return fail(e)

        def commit(etag: str, data: bytes, checksums: dict[str, str]) -> ObjectInfo:
            stored = replace(attributes, checksums=checksums)
            info = ObjectInfo(key, len(data), etag, time.time(), stored)
            if create_only and key in self._bucket(bucket).objects:
                raise PreconditionFailed(Condition="If-None-Match")
            self._bucket(bucket).put(info, data)
            return info

        return succeed(MemoryWriter(commit, content_md5, expected_size))

    def open_reader(
        self, bucket: str, key: str, byte_range: ByteRange | None
    ) -> Deferred[IObjectReader]:
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

    # -- multipart uploads -------------------------------------------------------------

    def _upload(self, bucket: str, key: str, upload_id: str) -> _Upload:
        self._bucket(bucket)
        upload = self._uploads.get(upload_id)
        if upload is None or (upload.info.bucket, upload.info.key) != (bucket, key):
            raise NoSuchUpload(UploadId=upload_id)
        return upload

    def create_multipart_upload(
        self, bucket: str, key: str, attributes: ObjectAttributes
    ) -> Deferred[UploadInfo]:
        try:
            self._bucket(bucket)
        except S3Error as e:
            return fail(e)
        info = UploadInfo(bucket, key, new_upload_id(), time.time(), attributes)
        self._uploads[info.upload_id] = _Upload(info)
        return succeed(info)

    def _put_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        data: bytes,
        checksums: dict[str, str] | None = None,
    ) -> PartInfo:
        upload = self._upload(bucket, key, upload_id)
        etag = hashlib.md5(data).hexdigest()
        part = PartInfo(number, len(data), etag, time.time(), checksums or {})
        upload.parts[number] = (part, data)
        return part

    def open_part_writer(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        content_md5: bytes | None,
        expected_size: int | None,
    ) -> Deferred[IObjectWriter]:
        try:
            self._upload(bucket, key, upload_id)
        except S3Error as e:
            return fail(e)

        def commit(etag: str, data: bytes, checksums: dict[str, str]) -> ObjectInfo:
            part = self._put_part(bucket, key, upload_id, part_number, data, checksums)
            return ObjectInfo(key, part.size, part.etag, part.last_modified)

        return succeed(MemoryWriter(commit, content_md5, expected_size))

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
        try:
            self._upload(bucket, key, upload_id)
            _, data = self._object(src_bucket, src_key)
            if byte_range is not None:
                data = data[byte_range.first : byte_range.last + 1]
            return succeed(self._put_part(bucket, key, upload_id, part_number, data))
        except S3Error as e:
            return fail(e)

    def list_parts(
        self, bucket: str, key: str, upload_id: str, part_number_marker: int, max_parts: int
    ) -> Deferred[tuple[UploadInfo, PartsPage]]:
        try:
            upload = self._upload(bucket, key, upload_id)
        except S3Error as e:
            return fail(e)
        parts = [p for n, (p, _) in sorted(upload.parts.items()) if n > part_number_marker]
        page = parts[:max_parts]
        truncated = len(parts) > max_parts
        next_marker = page[-1].number if page and truncated else None
        return succeed((upload.info, PartsPage(page, truncated, next_marker)))

    def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[tuple[int, str]],
        min_part_size: int,
        create_only: bool = False,
    ) -> Deferred[ObjectInfo]:
        try:
            upload = self._upload(bucket, key, upload_id)
            stored = {n: p for n, (p, _) in upload.parts.items()}
            chosen = select_parts(parts, stored, min_part_size)
            if create_only and key in self._bucket(bucket).objects:
                raise PreconditionFailed(Condition="If-None-Match")
        except S3Error as e:
            return fail(e)
        data = b"".join(upload.parts[p.number][1] for p in chosen)
        info = ObjectInfo(
            key,
            len(data),
            multipart_etag(chosen),
            time.time(),
            replace(upload.info.attributes, checksums=composite_checksums(chosen)),
            part_sizes=tuple(p.size for p in chosen),
        )
        self._bucket(bucket).put(info, data)
        del self._uploads[upload_id]
        return succeed(info)

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> Deferred[None]:
        try:
            self._upload(bucket, key, upload_id)
        except S3Error as e:
            return fail(e)
        del self._uploads[upload_id]
        return succeed(None)

    def list_multipart_uploads(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> Deferred[UploadsPage]:
        try:
            self._bucket(bucket)
        except S3Error as e:
            return fail(e)
        uploads = (u.info for u in self._uploads.values() if u.info.bucket == bucket)
        return succeed(
            page_uploads(uploads, prefix, delimiter, key_marker, upload_id_marker, max_uploads)
        )

    def expire_multipart_uploads(self, older_than: float) -> Deferred[int]:
        expired = [u for u, up in self._uploads.items() if up.info.initiated < older_than]
        for upload_id in expired:
            del self._uploads[upload_id]
        return succeed(len(expired))
