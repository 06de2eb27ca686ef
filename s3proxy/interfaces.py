"""Every zope interface of s3proxy.

All storage calls are asynchronous: they return Deferreds, because backends that talk to
the network (an upstream S3 store over treq) implement the same interface as the ones
that talk to the local disk. Failures are ``s3proxy.errors.S3Error`` subclasses.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer
from zope.interface import Attribute, Interface

from s3proxy.model import BucketInfo, ByteRange, ListPage, ObjectAttributes, ObjectInfo


class IObjectWriter(IConsumer):
    """Receives one object's bytes as they arrive and commits them atomically.

    ``write`` accepts chunks; the writer calls ``pauseProducing`` on the registered
    producer when it is behind and ``resumeProducing`` when it has caught up, so a slow
    disk or upstream slows the client instead of filling memory. Nothing becomes
    visible under the key until ``finish`` succeeds.
    """

    def finish() -> Deferred[ObjectInfo]:
        """All bytes were written. Verify them (Content-MD5, expected size) and make
        the object visible atomically, replacing any object under the key.

        Fires with the new ``ObjectInfo``. Fails with BadDigest or IncompleteBody
        (and leaves nothing behind), NoSuchBucket if the bucket went away, or the
        key-conflict errors of the backend.
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

    def close() -> None:
        """Release the reader without producing anything (HEAD, 304, 412)."""


class IStorage(Interface):
    """Buckets of objects. Keys are str; S3 order is UTF-8 binary order, which is the
    code-point order of Python strings."""

    def check() -> Deferred[None]:
        """Fires with None when the backend answers (readiness); fails otherwise."""

    def list_buckets() -> Deferred[list[BucketInfo]]:
        """Fires with a list of BucketInfo sorted by name."""

    def create_bucket(bucket: str) -> Deferred[None]:
        """Fires with None. Fails with BucketAlreadyOwnedByYou if it exists."""

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

    def open_reader(
        bucket: str, key: str, byte_range: ByteRange | None
    ) -> Deferred[IObjectReader]:
        """Fires with an IObjectReader for the object, limited to ``byte_range``
        (a ByteRange, or None for all of it). Fails with NoSuchBucket or NoSuchKey."""

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
