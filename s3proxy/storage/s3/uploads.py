"""Multipart uploads, straight into the upstream's own multipart upload: parts are
streamed to UploadPart, copied with UploadPartCopy, listed with ListParts, assembled
with CompleteMultipartUpload. Nothing is staged locally.

Our upload ID is our own (``new_upload_id``: time, then 128 random bits); the state
record ``uploads/<bucket>/<our id>`` maps it to the key, the upstream ID and the
attributes. CompleteMultipartUpload checks the part list with the same rules as our
other backends (``select_parts``) before the upstream assembles it."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.web.iweb import IBodyProducer, IResponse

from s3proxy.errors import NoSuchBucket, NoSuchUpload, ServiceUnavailable
from s3proxy.interfaces import IObjectWriter
from s3proxy.model import (
    ByteRange,
    ObjectAttributes,
    ObjectInfo,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
)
from s3proxy.storage.multipart import (
    check_upload_id,
    new_upload_id,
    page_uploads,
    select_parts,
)
from s3proxy.storage.s3 import upstream_xml
from s3proxy.storage.s3.attributes import attribute_headers, etag_of
from s3proxy.storage.s3.common import gather, now
from s3proxy.storage.s3.writer import UpstreamWriter

if TYPE_CHECKING:
    from s3proxy.storage.s3.storage import S3Storage

UPSTREAM_PARTS_PAGE = 1000


def initiated_of(upload_id: str) -> float:
    return int(upload_id[:16], 16) / 1e9


class _Upload:
    def __init__(self, bucket: str, upstream_bucket: str, upload_id: str, record: dict[str, Any]):
        self.bucket = bucket
        self.upstream_bucket = upstream_bucket
        self.upload_id = upload_id
        self.key = str(record["key"])
        self.upstream_id = str(record["upstream_id"])
        self.attributes = ObjectAttributes.from_json(record.get("attributes") or {})

    @property
    def info(self) -> UploadInfo:
        return UploadInfo(
            self.bucket, self.key, self.upload_id, initiated_of(self.upload_id), self.attributes
        )


class Uploads:
    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage
        self.client = storage.client
        self.state = storage.state

    @staticmethod
    def _record_key(bucket: str, upload_id: str) -> str:
        return f"uploads/{bucket}/{upload_id}"

    async def _find(self, bucket: str, key: str, upload_id: str) -> _Upload:
        name = self.storage.upstream_name(bucket)
        check_upload_id(upload_id)
        record = await self.state.get(self._record_key(bucket, upload_id))
        if record is None:
            if not await self.storage.bucket_exists(bucket):
                raise NoSuchBucket(BucketName=bucket)
            raise NoSuchUpload(UploadId=upload_id)
        upload = _Upload(bucket, name, upload_id, record)
        if upload.key != key:
            raise NoSuchUpload(UploadId=upload_id)
        return upload

    def _query(self, upload: _Upload, part_number: int | None = None) -> list[tuple[str, str]]:
        query = [("uploadId", upload.upstream_id)]
        if part_number is not None:
            query.insert(0, ("partNumber", str(part_number)))
        return query

    async def create(self, bucket: str, key: str, attributes: ObjectAttributes) -> UploadInfo:
        name = self.storage.upstream_name(bucket)
        headers = attribute_headers(attributes)
        _, body = await self.client.fetch(
            "POST", name, key, query=[("uploads", "")], headers=headers
        )
        upstream_id = upstream_xml.upload_id(body)
        upload_id = new_upload_id()
        record = {"key": key, "upstream_id": upstream_id, "attributes": attributes.to_json()}
        try:
            await self.state.put(self._record_key(bucket, upload_id), record)
        except BaseException:
            await self.client.fetch("DELETE", name, key, query=[("uploadId", upstream_id)])
            raise
        return UploadInfo(bucket, key, upload_id, initiated_of(upload_id), attributes)

    async def open_part_writer(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        content_md5: bytes | None,
        expected_size: int | None,
    ) -> IObjectWriter:
        upload = await self._find(bucket, key, upload_id)

        async def send(body: IBodyProducer) -> IResponse:
            query = self._query(upload, part_number)
            try:
                response = await self.client.request(
                    "PUT", upload.upstream_bucket, key, query=query, body=body
                )
            except ServiceUnavailable:
                # An upload ended meanwhile is NoSuchUpload, whatever the upstream
                # said (moto answers a part for an aborted upload with a 500).
                await self._find(bucket, key, upload_id)
                raise
            await self.client.read_body(response)  # frees the connection for reuse
            return response

        async def commit(
            response: IResponse, md5: str, size: int, checksums: dict[str, str]
        ) -> ObjectInfo:
            etag = etag_of(response) or md5
            return ObjectInfo(key, size, etag, now())

        return UpstreamWriter(
            send, commit, content_md5, expected_size, self.client.reactor, self.client.timeout
        )

    async def copy_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        src_bucket: str,
        src_key: str,
        byte_range: ByteRange | None,
    ) -> PartInfo:
        upload = await self._find(bucket, key, upload_id)
        source = await self.storage.head_object(src_bucket, src_key)
        extra = {}
        size = source.size
        if byte_range is not None:
            extra["x-amz-copy-source-range"] = f"bytes={byte_range.first}-{byte_range.last}"
            size = byte_range.length
        etag, modified = await self.storage._copy(
            src_bucket,
            src_key,
            bucket,
            key,
            ObjectAttributes(),
            extra,
            self._query(upload, part_number),
        )
        return PartInfo(part_number, size, etag, modified)

    async def _parts(
        self, upload: _Upload, marker: int, max_parts: int
    ) -> tuple[list[PartInfo], bool]:
        """At most ``max_parts`` parts after ``marker`` in number order, and whether
        more follow. Every upstream page is read (at most ten: 10000 parts) and sorted
        here, as not every upstream orders them by number (moto sorts them as text)."""
        parts: list[PartInfo] = []
        marker_upstream = 0
        while True:
            query = self._query(upload) + [
                ("max-parts", str(UPSTREAM_PARTS_PAGE)),
                ("part-number-marker", str(marker_upstream)),
            ]
            _, body = await self.client.fetch(
                "GET", upload.upstream_bucket, upload.key, query=query
            )
            page, next_marker = upstream_xml.list_parts(body)
            parts += [PartInfo(p.number, p.size, p.etag, p.last_modified) for p in page]
            if next_marker is None:
                break
            marker_upstream = next_marker
        after = sorted((p for p in parts if p.number > marker), key=lambda p: p.number)
        return after[: max(max_parts, 0)], len(after) > max(max_parts, 0)

    async def list_parts(
        self, bucket: str, key: str, upload_id: str, part_number_marker: int, max_parts: int
    ) -> tuple[UploadInfo, PartsPage]:
        upload = await self._find(bucket, key, upload_id)
        page, truncated = await self._parts(upload, part_number_marker, max_parts)
        next_marker = page[-1].number if page and truncated else None
        return upload.info, PartsPage(page, truncated, next_marker)

    async def complete(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[tuple[int, str]],
        min_part_size: int,
        create_only: bool = False,
    ) -> ObjectInfo:
        upload = await self._find(bucket, key, upload_id)
        stored, _ = await self._parts(upload, 0, 10_000)
        chosen = select_parts(parts, {p.number: p for p in stored}, min_part_size)
        document = "".join(
            f"<Part><PartNumber>{p.number}</PartNumber><ETag>{p.quoted_etag}</ETag></Part>"
            for p in chosen
        )
        body = f"<CompleteMultipartUpload>{document}</CompleteMultipartUpload>".encode()
        release = None
        if create_only:
            release = await self.storage.creating.claim(upload.upstream_bucket, key)
        try:
            _, answer = await self.client.fetch(
                "POST",
                upload.upstream_bucket,
                key,
                query=self._query(upload),
                headers={"If-None-Match": "*"} if create_only else None,
                body=body,
            )
        finally:
            if release is not None:
                release()
        etag = upstream_xml.complete_result(answer)  # S3 may fail after its 200
        if not etag:
            # Ceph RGW 16.2 answers with an empty <ETag>; its HEAD has the "<md5>-N".
            response, _ = await self.client.fetch("HEAD", upload.upstream_bucket, key)
            etag = etag_of(response)
        sizes = [p.size for p in chosen]
        await self.state.delete(self._record_key(bucket, upload_id))
        await self.storage.remember_parts(bucket, key, etag, sizes)
        return ObjectInfo(key, sum(sizes), etag, now(), upload.attributes, part_sizes=tuple(sizes))

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        upload = await self._find(bucket, key, upload_id)
        await self._abort(upload)

    async def _abort(self, upload: _Upload) -> None:
        try:
            await self.client.fetch(
                "DELETE", upload.upstream_bucket, upload.key, query=self._query(upload)
            )
        except (NoSuchUpload, NoSuchBucket):
            pass  # gone upstream already: forget it here too
        await self.state.delete(self._record_key(upload.bucket, upload.upload_id))

    async def _uploads_of(self, bucket: str) -> list[_Upload]:
        name = self.storage.upstream_name(bucket)
        keys = await self.state.keys(f"uploads/{bucket}/")

        async def load(state_key: str) -> _Upload | None:
            record = await self.state.get(state_key)
            upload_id = state_key.rpartition("/")[2]
            return _Upload(bucket, name, upload_id, record) if record else None

        loaded = await gather([partial(load, k) for k in keys])
        return [u for u in loaded if u is not None]

    async def list_uploads(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> UploadsPage:
        await self.storage.require_bucket(bucket)
        uploads = [u.info for u in await self._uploads_of(bucket)]
        return page_uploads(uploads, prefix, delimiter, key_marker, upload_id_marker, max_uploads)

    async def abort_all(self, bucket: str) -> None:
        await gather([partial(self._abort, upload) for upload in await self._uploads_of(bucket)])

    async def expire(self, older_than: float) -> int:
        """Abort our uploads initiated before ``older_than``, then the upstream uploads
        of our buckets that no record names (left by a crash between the upstream's
        CreateMultipartUpload and our record), if as old."""
        removed = 0
        known: set[str] = set()
        state_keys = await self.state.keys("uploads/")
        records = await gather([partial(self.state.get, k) for k in state_keys])
        for state_key, record in zip(state_keys, records, strict=True):
            _, bucket, upload_id = state_key.split("/", 2)
            if record is None:
                continue
            known.add(str(record.get("upstream_id")))
            if initiated_of(upload_id) >= older_than:
                continue
            try:
                name = self.storage.upstream_name(bucket)
            except NoSuchBucket:
                await self.state.delete(state_key)
                continue
            await self._abort(_Upload(bucket, name, upload_id, record))
            removed += 1
        return removed + await self._expire_orphans(older_than, known)

    async def _expire_orphans(self, older_than: float, known: set[str]) -> int:
        removed = 0
        for bucket in await self.storage.upstream_buckets():
            name = self.storage.upstream_name(bucket.name)
            markers: tuple[str, str] | None = ("", "")
            while markers is not None:
                query = [("uploads", ""), ("encoding-type", "url")]
                if markers[0]:
                    query += [("key-marker", markers[0]), ("upload-id-marker", markers[1])]
                try:
                    _, body = await self.client.fetch("GET", name, query=query)
                except NoSuchBucket:
                    break
                page, markers = upstream_xml.list_uploads(body)
                for orphan in page:
                    if orphan.upload_id in known or orphan.initiated >= older_than:
                        continue
                    try:
                        await self.client.fetch(
                            "DELETE", name, orphan.key, query=[("uploadId", orphan.upload_id)]
                        )
                    except (NoSuchUpload, NoSuchBucket):
                        continue
                    removed += 1
        return removed
