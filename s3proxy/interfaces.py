"""Every zope interface of s3proxy.

All storage calls are asynchronous: they return Deferreds, because backends that talk to
the network (an upstream S3 store over treq) implement the same interface as the ones
that talk to the local disk. Failures are ``s3proxy.errors.S3Error`` subclasses.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer
from zope.interface import Attribute, Interface

from s3proxy.acl import AccessControl
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


class IObjectWriter(IConsumer):
    """Receives one object's bytes as they arrive and commits them atomically.

    ``write`` accepts chunks; the writer calls ``pauseProducing`` on the registered
    producer when it is behind and ``resumeProducing`` when it has caught up, so a slow
    disk or upstream slows the client instead of filling memory. Nothing becomes
    visible under the key until ``finish`` succeeds.
    """

    def finish(checksums: Mapping[str, str] | None = None) -> Deferred[ObjectInfo]:
        """All bytes were written. Verify them (Content-MD5, expected size) and make
        the object visible atomically, replacing any object under the key.

        ``checksums`` are the body's verified flexible checksums, stored with it
        ({"x-amz-checksum-crc32": "<base64>"}). Fires with the new ``ObjectInfo``.
        Fails with BadDigest or IncompleteBody (and leaves nothing behind),
        NoSuchBucket if the bucket went away, or the key-conflict errors of the
        backend.
        """

    def abort() -> Deferred[None]:
        """Discard everything written so far. Fires with None; safe to call twice
        and after a failed ``finish``."""


class IObjectReader(IPushProducer):
    """Produces one object's bytes (or one range of them) into a consumer."""

    info = Attribute("The ObjectInfo of the object being read.")
    byte_range = Attribute("The ByteRange being read, or None for the whole object.")

    def start(consumer: IConsumer) -> Deferred[None]:
        """Register with ``consumer`` as a push producer and write the bytes to it.

        Fires with None once every byte was written (the producer is unregistered
        and all resources are released by then); fails if reading fails. Calling
        ``stopProducing`` ends it early and releases the resources."""

    def restrict(byte_range: ByteRange | None) -> None:
        """Before ``start``: produce only ``byte_range`` (None: the whole object)."""

    def close() -> None:
        """Release the reader without producing anything (HEAD, 304, 412)."""


class IStorage(Interface):
    """Buckets of objects. Keys are str; S3 order is UTF-8 binary order, which is the
    code-point order of Python strings."""

    def check() -> Deferred[None]:
        """Fires with None when the backend answers (readiness); fails otherwise."""

    def list_buckets() -> Deferred[list[BucketInfo]]:
        """Fires with a list of BucketInfo sorted by name."""

    def create_bucket(bucket: str, acl: AccessControl | None = None) -> Deferred[None]:
        """Fires with None. Fails with BucketAlreadyOwnedByYou if it exists."""

    def put_bucket_acl(bucket: str, acl: AccessControl) -> Deferred[None]:
        """Replace the bucket's owner and grants. Fails with NoSuchBucket."""

    def get_bucket_config(bucket: str, name: str) -> Deferred[str | None]:
        """One small per-bucket configuration document (``name`` is e.g. "tagging" or
        "cors"; the value is whatever text the web layer stored), kept with the
        bucket's record. Fires with None if none is set. Fails with NoSuchBucket."""

    def put_bucket_config(bucket: str, name: str, value: str | None) -> Deferred[None]:
        """Store (or with None remove) the configuration document ``name`` of the
        bucket; the bucket's other documents, ACL and creation date stay. Fails with
        NoSuchBucket."""

    def head_bucket(bucket: str) -> Deferred[BucketInfo]:
        """Fires with BucketInfo. Fails with NoSuchBucket."""

    def delete_bucket(bucket: str) -> Deferred[None]:
        """Fires with None. Fails with NoSuchBucket or BucketNotEmpty."""

    def list_objects(
        bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int
    ) -> Deferred[ListPage]:
        """Fires with one ListPage of the keys that start with ``prefix`` and sort
        after ``marker``, keys sharing ``prefix`` + ... + ``delimiter`` rolled up into
        common prefixes (a common prefix is returned only if it sorts after
        ``marker``). At most ``max_keys`` entries; the bucket is never read whole.
        Fails with NoSuchBucket."""

    def head_object(bucket: str, key: str) -> Deferred[ObjectInfo]:
        """Fires with ObjectInfo. Fails with NoSuchBucket or NoSuchKey."""

    def open_writer(
        bucket: str,
        key: str,
        attributes: ObjectAttributes,
        content_md5: bytes | None,
        expected_size: int | None,
    ) -> Deferred[IObjectWriter]:
        """Fires with an IObjectWriter for a new version of ``key`` carrying
        ``attributes`` (ObjectAttributes). ``content_md5`` (16 raw bytes) and
        ``expected_size`` are checked by ``finish``. Fails with NoSuchBucket,
        InvalidArgument for a key this backend cannot store, or a key conflict."""

    def open_reader(bucket: str, key: str, byte_range: ByteRange | None) -> Deferred[IObjectReader]:
        """Fires with an IObjectReader for the object, limited to ``byte_range``
        (a ByteRange, or None for all of it). Fails with NoSuchBucket or NoSuchKey."""

    def put_object_acl(bucket: str, key: str, acl: AccessControl) -> Deferred[None]:
        """Replace an object's owner and grants, leaving its data and other attributes
        as they are. Fails with NoSuchBucket or NoSuchKey."""

    def put_object_tagging(bucket: str, key: str, tags: Mapping[str, str]) -> Deferred[None]:
        """Replace an object's tags (an empty mapping removes them), leaving its data
        and other attributes as they are. Fails with NoSuchBucket or NoSuchKey."""

    def delete_object(bucket: str, key: str) -> Deferred[None]:
        """Fires with None, whether or not the key existed. Fails with NoSuchBucket."""

    def copy_object(
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        attributes: ObjectAttributes | None,
    ) -> Deferred[ObjectInfo]:
        """Copy an object without holding it in memory. ``attributes`` replaces the
        source's (ObjectAttributes) or, if None, the source's are kept. Fires with
        the new ObjectInfo; fails like head_object on the source and like
        open_writer on the destination."""

    # -- multipart uploads ---------------------------------------------------------
    # An upload's state (key, attributes, parts) is kept by the backend itself, so an
    # upload can be continued by another process or after a restart.

    def create_multipart_upload(
        bucket: str, key: str, attributes: ObjectAttributes
    ) -> Deferred[UploadInfo]:
        """Start an upload with an unguessable ID. Fails with NoSuchBucket."""

    def open_part_writer(
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        content_md5: bytes | None,
        expected_size: int | None,
    ) -> Deferred[IObjectWriter]:
        """A writer for one part (1-10000); its ``finish`` replaces any earlier part
        with that number and fires with an ObjectInfo holding the part's size and
        ETag. Fails with NoSuchUpload."""

    def copy_part(
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        src_bucket: str,
        src_key: str,
        byte_range: ByteRange | None,
    ) -> Deferred[PartInfo]:
        """UploadPartCopy: a part made of (a range of) another object, streamed."""

    def list_parts(
        bucket: str, key: str, upload_id: str, part_number_marker: int, max_parts: int
    ) -> Deferred[tuple[UploadInfo, PartsPage]]:
        """The upload and one page of its parts after ``part_number_marker``, in
        part-number order. Fails with NoSuchUpload."""

    def complete_multipart_upload(
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[tuple[int, str]],
        min_part_size: int,
    ) -> Deferred[ObjectInfo]:
        """Assemble the listed (part number, ETag) parts into the object, atomically,
        and remove the upload. Fails with NoSuchUpload, InvalidPart, InvalidPartOrder
        or EntityTooSmall (see ``s3proxy.storage.multipart.select_parts``). Of two
        concurrent completions of one upload exactly one succeeds."""

    def abort_multipart_upload(bucket: str, key: str, upload_id: str) -> Deferred[None]:
        """Remove the upload and its parts. Fails with NoSuchUpload."""

    def list_multipart_uploads(
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> Deferred[UploadsPage]:
        """Uploads in progress, in (key, initiation) order. Fails with NoSuchBucket."""

    def expire_multipart_uploads(older_than: float) -> Deferred[int]:
        """Abort every upload initiated before ``older_than`` (epoch seconds); fires
        with how many were removed."""
