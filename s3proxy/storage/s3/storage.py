"""IStorage over an upstream S3-compatible store: buckets, objects, listings, copies.
Multipart uploads are in ``uploads.py``; state S3 has no place for, in ``state.py``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

from s3proxy.acl import AccessControl
from s3proxy.errors import (
    BadDigest,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InvalidBucketName,
    NoSuchBucket,
    NoSuchKey,
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
from s3proxy.names import is_valid_bucket_name
from s3proxy.storage.bucketcache import BucketInfoCache
from s3proxy.storage.s3 import upstream_xml
from s3proxy.storage.s3.attributes import (
    attribute_headers,
    attributes_of,
    etag_of,
    last_modified_of,
)
from s3proxy.storage.s3.client import UpstreamClient, header, object_path
from s3proxy.storage.s3.common import gather, key_digest, now, to_deferred
from s3proxy.storage.s3.creating import CreateGuard, Release
from s3proxy.storage.s3.listing import list_page
from s3proxy.storage.s3.reader import UpstreamReader, discard
from s3proxy.storage.s3.state import STATE_BUCKET, StateStore
from s3proxy.storage.s3.uploads import Uploads
from s3proxy.storage.s3.writer import UpstreamWriter


@implementer(IStorage)
class S3Storage:
    """Our bucket ``b`` is the upstream bucket ``<prefix>b``; buckets without the
    prefix are not ours and never shown."""

    log = Logger()

    def __init__(self, client: UpstreamClient, bucket_prefix: str = "") -> None:
        self.client = client
        self.prefix = bucket_prefix
        self.state = StateStore(client, bucket_prefix + STATE_BUCKET)
        self.uploads = Uploads(self)
        self.creating = CreateGuard(client)
        # Every request's authorization reads its bucket (two upstream requests).
        self._bucket_infos = BucketInfoCache()

    # -- names -----------------------------------------------------------------------

    def upstream_name(self, bucket: str) -> str:
        """The upstream bucket of ours; a name we could never have created is no
        bucket (and is never sent upstream)."""
        if bucket == STATE_BUCKET or not is_valid_bucket_name(bucket):
            raise NoSuchBucket(BucketName=bucket)
        return self.prefix + bucket

    async def bucket_exists(self, bucket: str) -> bool:
        try:
            await self.client.fetch("HEAD", self.upstream_name(bucket), not_found=NoSuchBucket)
        except NoSuchBucket:
            return False
        return True

    async def require_bucket(self, bucket: str) -> str:
        name = self.upstream_name(bucket)
        # Authorization has usually just read the bucket: no second upstream HEAD.
        # (Deleted since, the upstream's own NoSuchBucket answers the request.)
        if not self._bucket_infos.known(bucket) and not await self.bucket_exists(bucket):
            raise NoSuchBucket(BucketName=bucket)
        return name

    # -- buckets ---------------------------------------------------------------------

    def check(self) -> Deferred[None]:
        async def check() -> None:
            await self.client.fetch("GET", "", None)

        return to_deferred(check())

    async def upstream_buckets(self) -> list[upstream_xml.UpstreamBucket]:
        _, body = await self.client.fetch("GET", "")
        mine = []
        for b in upstream_xml.list_buckets(body):
            name = b.name[len(self.prefix) :]
            if b.name.startswith(self.prefix) and name != STATE_BUCKET:
                mine.append(upstream_xml.UpstreamBucket(name, b.created))
        return sorted(mine, key=lambda b: b.name)

    async def _bucket_acl(self, bucket: str) -> AccessControl | None:
        record = await self.state.get(f"buckets/{bucket}")
        return AccessControl.from_json(record.get("acl")) if record else None

    def list_buckets(self) -> Deferred[list[BucketInfo]]:
        async def list_buckets() -> list[BucketInfo]:
            buckets = await self.upstream_buckets()
            acls = await gather([partial(self._bucket_acl, b.name) for b in buckets])
            return [
                BucketInfo(b.name, b.created, acl) for b, acl in zip(buckets, acls, strict=True)
            ]

        return to_deferred(list_buckets())

    def create_bucket(self, bucket: str, acl: AccessControl | None = None) -> Deferred[None]:
        async def create_bucket() -> None:
            if bucket == STATE_BUCKET or not is_valid_bucket_name(bucket):
                raise InvalidBucketName(BucketName=bucket)
            if await self.bucket_exists(bucket):
                raise BucketAlreadyOwnedByYou(BucketName=bucket)
            body = None
            if self.client.region != "us-east-1":
                body = (
                    "<CreateBucketConfiguration><LocationConstraint>"
                    f"{self.client.region}</LocationConstraint></CreateBucketConfiguration>"
                ).encode()
            await self.client.fetch("PUT", self.upstream_name(bucket), body=body)
            if acl is not None:
                await self.state.put(f"buckets/{bucket}", {"acl": acl.to_json()})

        return self._bucket_infos.changing(bucket, to_deferred(create_bucket()))

    def put_bucket_acl(self, bucket: str, acl: AccessControl) -> Deferred[None]:
        def change(record: dict[str, Any]) -> dict[str, Any]:
            return {**record, "acl": acl.to_json()}

        return self._update_bucket_record(bucket, change)

    def _update_bucket_record(
        self, bucket: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Deferred[None]:
        """Read, change, write the bucket's one state object: the last of two racing
        changes of one bucket's documents wins (as the filesystem's record)."""

        async def update() -> None:
            await self.require_bucket(bucket)
            record = await self.state.get(f"buckets/{bucket}") or {}
            await self.state.put(f"buckets/{bucket}", change(record))

        return self._bucket_infos.changing(bucket, to_deferred(update()))

    def get_bucket_config(self, bucket: str, name: str) -> Deferred[str | None]:
        async def get_bucket_config() -> str | None:
            await self.require_bucket(bucket)
            record = await self.state.get(f"buckets/{bucket}") or {}
            value = (record.get("config") or {}).get(name)
            return str(value) if value is not None else None

        return to_deferred(get_bucket_config())

    def put_bucket_config(self, bucket: str, name: str, value: str | None) -> Deferred[None]:
        def change(record: dict[str, Any]) -> dict[str, Any]:
            config = dict(record.get("config") or {})
            if value is None:
                config.pop(name, None)
            else:
                config[name] = value
            return {**record, "config": config}

        return self._update_bucket_record(bucket, change)

    def head_bucket(self, bucket: str) -> Deferred[BucketInfo]:
        return self._bucket_infos.head(bucket, self._head_bucket)

    def _head_bucket(self, bucket: str) -> Deferred[BucketInfo]:
        async def head_bucket() -> BucketInfo:
            self.upstream_name(bucket)
            for b in await self.upstream_buckets():
                if b.name == bucket:
                    return BucketInfo(bucket, b.created, await self._bucket_acl(bucket))
            raise NoSuchBucket(BucketName=bucket)

        return to_deferred(head_bucket())

    def delete_bucket(self, bucket: str) -> Deferred[None]:
        async def delete_bucket() -> None:
            name = self.upstream_name(bucket)
            # Uploads in progress do not keep a bucket (as on our other backends).
            page = await list_page(self.client, name, "", "", "", 1)
            if page.objects or page.common_prefixes:
                raise BucketNotEmpty(BucketName=bucket)
            await self.uploads.abort_all(bucket)
            await self.client.fetch("DELETE", name)
            await self.state.delete(f"buckets/{bucket}")
            parts = await self.state.keys(f"parts/{bucket}/")
            await gather([partial(self.state.delete, key) for key in parts])

        return self._bucket_infos.changing(bucket, to_deferred(delete_bucket()))

    def list_objects(
        self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int
    ) -> Deferred[ListPage]:
        async def list_objects() -> ListPage:
            name = self.upstream_name(bucket)
            return await list_page(self.client, name, prefix, delimiter, marker, max_keys)

        return to_deferred(list_objects())

    # -- objects ---------------------------------------------------------------------

    async def object_info(self, bucket: str, key: str, response: IResponse) -> ObjectInfo:
        """The ObjectInfo of a HEAD or GET answer (a 206's size is the whole object's)."""
        content_range = header(response, "Content-Range")
        content_length = header(response, "Content-Length")
        if content_range:
            size = int(content_range.rpartition("/")[2])
        elif content_length:
            size = int(content_length)
        else:  # a GET's length: the HTTP client took the header
            size = response.length if isinstance(response.length, int) else 0
        etag = etag_of(response)
        return ObjectInfo(
            key,
            size,
            etag,
            last_modified_of(response),
            attributes_of(response),
            part_sizes=await self._part_sizes(bucket, key, etag),
        )

    async def _part_sizes(self, bucket: str, key: str, etag: str) -> tuple[int, ...]:
        if "-" not in etag:
            return ()
        record = await self.state.get(f"parts/{bucket}/{key_digest(key)}")
        if not record or record.get("etag") != etag:
            return ()
        return tuple(int(s) for s in record.get("sizes", []))

    async def remember_parts(self, bucket: str, key: str, etag: str, sizes: list[int]) -> None:
        await self.state.put(f"parts/{bucket}/{key_digest(key)}", {"etag": etag, "sizes": sizes})

    async def _head(self, bucket: str, key: str) -> ObjectInfo:
        name = self.upstream_name(bucket)
        try:
            response, _ = await self.client.fetch("HEAD", name, key, not_found=NoSuchKey)
        except NoSuchKey:
            if not await self.bucket_exists(bucket):
                raise NoSuchBucket(BucketName=bucket) from None
            raise NoSuchKey(Key=key) from None
        return await self.object_info(bucket, key, response)

    def head_object(self, bucket: str, key: str) -> Deferred[ObjectInfo]:
        return to_deferred(self._head(bucket, key))

    def open_writer(
        self,
        bucket: str,
        key: str,
        attributes: ObjectAttributes,
        content_md5: bytes | None,
        expected_size: int | None,
        create_only: bool = False,
    ) -> Deferred[IObjectWriter]:
        async def open_writer() -> IObjectWriter:
            name = await self.require_bucket(bucket)

            async def send(body: IBodyProducer) -> IResponse:
                headers = attribute_headers(attributes)
                if create_only:
                    headers["If-None-Match"] = "*"  # atomic where the upstream honours it
                try:
                    response = await self.client.request(
                        "PUT", name, key, headers=headers, body=body
                    )
                except NoSuchKey:
                    # Ceph RGW's answer to a PUT into a bucket deleted meanwhile.
                    raise NoSuchBucket(BucketName=bucket) from None
                await self.client.read_body(response)  # frees the connection for reuse
                return response

            async def commit(
                response: IResponse, md5: str, size: int, checksums: dict[str, str]
            ) -> ObjectInfo:
                await self._verify_etag(name, key, etag_of(response), md5)
                stored = replace(attributes, checksums=checksums)
                return ObjectInfo(key, size, md5, now(), stored)

            def claim() -> Awaitable[Release]:
                return self.creating.claim(name, key)

            return UpstreamWriter(
                send,
                commit,
                content_md5,
                expected_size,
                self.client.reactor,
                self.client.timeout,
                claim if create_only else None,
            )

        return to_deferred(open_writer())

    async def _verify_etag(self, name: str, key: str, etag: str, md5: str) -> None:
        """The upstream stored other bytes than we sent (an ETag that is a plain MD5 and
        not ours): remove them rather than serve them."""
        if len(etag) == 32 and "-" not in etag and etag != md5:
            self.log.error(
                "upstream stored {key} with ETag {etag}, not {md5}", key=key, etag=etag, md5=md5
            )
            await self.client.fetch("DELETE", name, key)
            raise BadDigest()

    async def get_response(
        self, bucket: str, key: str, byte_range: ByteRange | None, etag: str | None = None
    ) -> IResponse:
        headers = {}
        if byte_range is not None:
            headers["range"] = f"bytes={byte_range.first}-{byte_range.last}"
        if etag is not None:
            headers["if-match"] = f'"{etag}"'
        name = self.upstream_name(bucket)
        return await self.client.request("GET", name, key, headers=headers, not_found=NoSuchKey)

    def open_reader(
        self, bucket: str, key: str, byte_range: ByteRange | None
    ) -> Deferred[IObjectReader]:
        async def open_reader() -> IObjectReader:
            response = await self.get_response(bucket, key, byte_range)
            try:
                info = await self.object_info(bucket, key, response)
            except BaseException:
                discard(response)
                raise

            def refetch(wanted: ByteRange | None) -> Deferred[IResponse]:
                return to_deferred(self.get_response(bucket, key, wanted, info.etag))

            return UpstreamReader(
                info, response, byte_range, refetch, self.client.reactor, self.client.timeout
            )

        return to_deferred(open_reader())

    def put_object_acl(self, bucket: str, key: str, acl: AccessControl) -> Deferred[None]:
        return to_deferred(self._replace_attributes(bucket, key, acl=acl))

    def put_object_tagging(self, bucket: str, key: str, tags: Mapping[str, str]) -> Deferred[None]:
        return to_deferred(self._replace_attributes(bucket, key, tags=dict(tags)))

    async def _replace_attributes(self, bucket: str, key: str, **changes: Any) -> None:
        # The ACL and tags ride in our metadata (see attributes.py), so a copy onto
        # itself stores them.
        info = await self._head(bucket, key)
        await self._copy(bucket, key, bucket, key, replace(info.attributes, **changes))

    def delete_object(self, bucket: str, key: str) -> Deferred[None]:
        async def delete_object() -> None:
            await self.client.fetch("DELETE", self.upstream_name(bucket), key)

        return to_deferred(delete_object())

    async def _copy(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        attributes: ObjectAttributes,
        extra: dict[str, str] | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> tuple[str, float]:
        """A server-side copy upstream; (ETag, last modified) of the result. The
        attributes are always sent (REPLACE): that also allows copying onto itself."""
        headers = attribute_headers(attributes) if query is None else {}
        source = object_path(self.upstream_name(src_bucket), src_key).decode("ascii")
        headers["x-amz-copy-source"] = source
        if query is None:
            headers["x-amz-metadata-directive"] = "REPLACE"
        headers.update(extra or {})
        _, body = await self.client.fetch(
            "PUT", self.upstream_name(dst_bucket), dst_key, query=query or (), headers=headers
        )
        return upstream_xml.copy_result(body)  # S3 may fail a copy after its 200

    def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        attributes: ObjectAttributes | None,
    ) -> Deferred[ObjectInfo]:
        async def copy_object() -> ObjectInfo:
            source = await self._head(src_bucket, src_key)
            kept = attributes if attributes is not None else source.attributes
            etag, modified = await self._copy(src_bucket, src_key, dst_bucket, dst_key, kept)
            return ObjectInfo(dst_key, source.size, etag, modified, kept)

        return to_deferred(copy_object())

    # -- multipart uploads (uploads.py) --------------------------------------------

    def create_multipart_upload(
        self, bucket: str, key: str, attributes: ObjectAttributes
    ) -> Deferred[UploadInfo]:
        return to_deferred(self.uploads.create(bucket, key, attributes))

    def open_part_writer(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        content_md5: bytes | None,
        expected_size: int | None,
    ) -> Deferred[IObjectWriter]:
        return to_deferred(
            self.uploads.open_part_writer(
                bucket, key, upload_id, part_number, content_md5, expected_size
            )
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
        return to_deferred(
            self.uploads.copy_part(
                bucket, key, upload_id, part_number, src_bucket, src_key, byte_range
            )
        )

    def list_parts(
        self, bucket: str, key: str, upload_id: str, part_number_marker: int, max_parts: int
    ) -> Deferred[tuple[UploadInfo, PartsPage]]:
        return to_deferred(
            self.uploads.list_parts(bucket, key, upload_id, part_number_marker, max_parts)
        )

    def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[tuple[int, str]],
        min_part_size: int,
        create_only: bool = False,
    ) -> Deferred[ObjectInfo]:
        return to_deferred(
            self.uploads.complete(bucket, key, upload_id, parts, min_part_size, create_only)
        )

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> Deferred[None]:
        return to_deferred(self.uploads.abort(bucket, key, upload_id))

    def list_multipart_uploads(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> Deferred[UploadsPage]:
        return to_deferred(
            self.uploads.list_uploads(
                bucket, prefix, delimiter, key_marker, upload_id_marker, max_uploads
            )
        )

    def expire_multipart_uploads(self, older_than: float) -> Deferred[int]:
        return to_deferred(self.uploads.expire(older_than))
