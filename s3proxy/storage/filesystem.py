"""The filesystem backend: an object is the plain file ``<root>/<bucket>/<key>``.

Programs that work on files see the same data: a file dropped into a bucket's
directory is listed and served. Internal state (temporary files, sidecar metadata,
bucket records) lives under ``<root>/.s3proxy``, which can never be a bucket because
bucket names start with a letter or digit.

Safety: every path below a bucket is opened one component at a time relative to its
parent's descriptor with O_NOFOLLOW, so no key and no symlink planted in the tree can
lead outside ``<root>``. Writes go to a temporary file and are renamed into place only
when complete and verified. All blocking calls run on the daemon's thread pool.
"""

from __future__ import annotations

import bisect
import dataclasses
import errno
import fcntl
import functools
import hashlib
import json
import mimetypes
import os
import stat
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IProducer, IPushProducer, IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from s3proxy.acl import AccessControl
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
    PreconditionFailed,
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
from s3proxy.names import is_valid_bucket_name, is_xml_safe
from s3proxy.storage.bucketcache import BucketInfoCache
from s3proxy.storage.fslistcache import RACY_NS, ListingFieldCache
from s3proxy.storage.fsmeta import (
    MetadataStore,
    MetaRecord,
    SidecarMetadata,
    XattrMetadata,
    replace_with,
    xattrs_work,
)
from s3proxy.storage.fstemp import TempFile, TemporaryFiles
from s3proxy.storage.fsuploads import FilesystemUploads
from s3proxy.storage.listing import CommonPrefix, ListEntry, roll_up, take_page
from s3proxy.storage.oserrors import s3_error_for
from s3proxy.storage.streams import ChunkedReader

T = TypeVar("T")

INTERNAL_DIR = ".s3proxy"
# Reading a large object: each chunk is one trip to the pool and one wake-up of the
# reactor, and a download holds two chunks. 2 MiB chunks moved a 1 GiB GET at ~2.2
# GB/s against ~1.5 at 512 KiB, but 200 clients downloading at once then held ~4 MiB
# each, so the chunk shrinks as downloads multiply: together they read ahead about
# READ_BUDGET, and never less than READ_CHUNK_MIN each.
READ_CHUNK_MAX = 2 * 1024 * 1024
READ_CHUNK_MIN = 256 * 1024
READ_BUDGET = 32 * 1024 * 1024
# Objects up to this size are read whole when opened: one trip to the thread pool.
PREFETCH_LIMIT = 64 * 1024
COPY_CHUNK = 1024 * 1024
# The writer pauses the client above HIGH bytes queued for the disk, resumes below LOW.
WRITE_HIGH_WATER = 4 * 1024 * 1024
WRITE_LOW_WATER = 1024 * 1024
# Bytes worth a trip to the pool on their own; less waits for more or for finish().
WRITE_BATCH_MIN = 256 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NAME_MAX = 255


def read_chunk_size(large_reads: int) -> int:
    """The chunk of a download that starts while ``large_reads`` are open (itself
    included): READ_BUDGET shared out, in 64 KiB steps, within the bounds."""
    share = (READ_BUDGET // max(1, large_reads)) & ~(64 * 1024 - 1)
    return max(READ_CHUNK_MIN, min(READ_CHUNK_MAX, share))


class KeyPath:
    """A key split into directory components and a final name. A key ending in "/" is
    a directory marker: its ``name`` is the directory itself."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.marker = key.endswith("/")
        parts = (key[:-1] if self.marker else key).split("/")
        for part in parts:
            # NUL and lone surrogates: no file name can hold them (the os calls would
            # raise ValueError or UnicodeEncodeError).
            size = len(part.encode("utf-8", "replace"))
            if part in ("", ".", "..") or size > _NAME_MAX or "\0" in part or not _utf8(part):
                raise InvalidArgument(
                    "The filesystem backend cannot store this key: empty, '.' or '..' "
                    "path segments, segments over 255 bytes and NUL are not allowed.",
                    Key=key.encode("utf-8", "replace").decode("utf-8"),
                )
        self.parents = parts[:-1]
        self.name = parts[-1]


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class DirectoryCache:
    """Sorted directory listings, kept while the directory's mtime is unchanged (any
    entry added, removed or renamed changes it). Paging through a large directory then
    reads and sorts it once, not once per page. As with ListingFieldCache, an mtime
    younger than ``RACY_NS`` is not trusted (two changes within one tick of the file
    system's clock leave the same mtime): such a directory is read afresh."""

    SIZE = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[int, list[str], list[bool]]] = OrderedDict()

    def entries(self, path: str) -> tuple[list[str], list[bool]] | None:
        """(names, is-directory flags) in S3 key order, or None if unreadable."""
        try:
            mtime = os.stat(path, follow_symlinks=False).st_mtime_ns
        except OSError:
            return None
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None and cached[0] == mtime:
                self._cache.move_to_end(path)
                return cached[1], cached[2]
        try:
            scanned = list(os.scandir(path))
        except OSError:
            return None
        rows = []
        for entry in scanned:
            name = entry.name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                continue  # not a UTF-8 name: no S3 key can name it
            if not is_xml_safe(name):
                continue  # a name no S3 key can have (control characters)
            if entry.is_dir(follow_symlinks=False):
                rows.append((name + "/", name, True))
            elif entry.is_file(follow_symlinks=False):
                rows.append((name, name, False))
        rows.sort()
        names = [r[1] for r in rows]
        dirs = [r[2] for r in rows]
        if mtime > time.time_ns() - RACY_NS:
            return names, dirs
        with self._lock:
            self._cache[path] = (mtime, names, dirs)
            self._cache.move_to_end(path)
            while len(self._cache) > self.SIZE:
                self._cache.popitem(last=False)
        return names, dirs


def _first_relevant(
    names: list[str], dirs: list[bool], dir_key: str, prefix: str, marker: str
) -> int:
    """Index of the first entry that can hold a key after ``marker`` with ``prefix``."""
    sort_keys = _SortKeys(names, dirs)
    start = 0
    for bound in (marker, prefix):
        if not bound.startswith(dir_key) or bound <= dir_key:
            continue
        local = bound[len(dir_key) :]
        index = bisect.bisect_left(sort_keys, local)
        # A directory sorting just before may hold keys beyond the bound.
        if index > 0 and dirs[index - 1] and local.startswith(names[index - 1] + "/"):
            index -= 1
        start = max(start, index)
    return start


class _SortKeys:
    """The sort keys (name, or name + "/" for directories) as a sequence for bisect."""

    def __init__(self, names: list[str], dirs: list[bool]) -> None:
        self._names = names
        self._dirs = dirs

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, index: int) -> str:
        return self._names[index] + "/" if self._dirs[index] else self._names[index]


@functools.lru_cache(maxsize=1024)
def _owner_only(owner_id: str, owner_name: str) -> ObjectAttributes:
    """Shared attributes naming just an owner, for listing entries."""
    acl = AccessControl(owner_id, owner_name) if owner_id else None
    return ObjectAttributes(acl=acl)


def _foreign_etag(st: os.stat_result) -> str:
    """A stable ETag for a file written by another program, without reading it."""
    return hashlib.md5(f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()


@implementer(IObjectWriter)
class FilesystemWriter:
    """Writes arriving chunks to a temporary file on the thread pool, in batches: one
    batch in flight at a time, the client paused while too much is queued.

    Everything blocking happens on the pool: ``prepare()`` (check the target, create
    the temporary file) runs with the first batch, and the last batch, the checks and
    ``commit(file, temp path, etag, checksums)`` run as one job, so a small upload
    costs a single trip to the pool. (A trip costs the reactor more than the file
    system calls of a small upload: waking a pool thread hands the GIL over.)"""

    def __init__(
        self,
        storage: FilesystemStorage,
        prepare: Callable[[], tuple[str, TempFile]],
        commit: Callable[[TempFile, str, str, dict[str, str]], ObjectInfo],
        content_md5: bytes | None,
        expected_size: int | None,
    ) -> None:
        self._storage = storage
        self._prepare = prepare
        self._commit = commit
        self._content_md5 = content_md5
        self._expected_size = expected_size
        self._temp: str | None = None
        self._file: TempFile | None = None
        self._md5 = hashlib.md5()
        self._size = 0
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._busy = False
        self._error: Failure | None = None
        self._producer: IPushProducer | None = None
        self._paused = False
        self._idle: list[Deferred[None]] = []
        self._closed = False

    # IConsumer
    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._producer = cast(IPushProducer, producer)

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        if self._closed or self._error is not None:
            return  # the failure is reported by finish()
        self._queue.append(data)
        self._queued += len(data)
        if self._queued > WRITE_HIGH_WATER and not self._paused and self._producer:
            self._paused = True
            self._producer.pauseProducing()
        self._kick()

    def _kick(self) -> None:
        if self._busy:
            return
        if self._error is not None or not self._queue or self._queued < WRITE_BATCH_MIN:
            # Not worth a trip to the pool yet: finish() writes what is left itself.
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)
            return
        batch = list(self._queue)
        self._queue.clear()
        self._busy = True
        d = self._storage._run(self._write_batch, batch)
        d.addCallbacks(self._batch_done, self._batch_failed, callbackArgs=(batch,))

    def _write_batch(self, batch: list[bytes]) -> None:
        """Runs on the pool."""
        if self._file is None:
            self._temp, self._file = self._prepare()
        for chunk in batch:
            self._md5.update(chunk)
            self._size += len(chunk)
        self._file.writelines(batch)

    def _batch_done(self, _: None, batch: list[bytes]) -> None:
        self._busy = False
        self._queued -= sum(map(len, batch))
        if self._paused and self._queued < WRITE_LOW_WATER and self._producer:
            self._paused = False
            self._producer.resumeProducing()
        self._kick()

    def _batch_failed(self, failure: Failure) -> None:
        self._busy = False
        self._error = failure
        self._queue.clear()
        self._queued = 0
        if self._paused and self._producer:
            # Let the client finish sending; finish() reports the error.
            self._paused = False
            self._producer.resumeProducing()
        self._kick()

    def _not_busy(self) -> Deferred[None]:
        if not self._busy:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    def _write_last_and_commit(self, batch: list[bytes], checksums: dict[str, str]) -> ObjectInfo:
        """Runs on the pool: the last batch, the checks, the commit."""
        try:
            self._write_batch(batch)
            assert self._file is not None and self._temp is not None
            if self._expected_size is not None and self._size != self._expected_size:
                raise IncompleteBody()
            digest = self._md5.digest()
            if self._content_md5 is not None and digest != self._content_md5:
                raise BadDigest()
            return self._commit(self._file, self._temp, digest.hex(), checksums)
        except BaseException:
            if self._temp is not None:
                _discard(self._file, self._temp)
            raise

    async def _finish(self, checksums: dict[str, str]) -> ObjectInfo:
        await self._not_busy()
        if self._error is not None:
            await self.abort()
            self._error.raiseException()
        self._closed = True
        batch = list(self._queue)
        self._queue.clear()
        return await self._storage._run(self._write_last_and_commit, batch, checksums)

    def finish(self, checksums: Mapping[str, str] | None = None) -> Deferred[ObjectInfo]:
        return Deferred.fromCoroutine(self._finish(dict(checksums or {})))

    def abort(self) -> Deferred[None]:
        if self._closed:
            return succeed(None)
        self._closed = True
        self._queue.clear()
        # Else _kick keeps sending empty batches to the pool and _not_busy never fires.
        self._queued = 0
        d = self._not_busy()
        d.addCallback(lambda _: self._discard_temp())
        return d

    def _discard_temp(self) -> Deferred[None] | None:
        if self._temp is None:
            return None  # never prepared: nothing on disk
        return self._storage._run(_discard, self._file, self._temp)


def _discard(file: TempFile | None, temp: str) -> None:
    if file is not None:
        try:
            file.close()
        except OSError:
            pass
    try:
        os.unlink(temp)
    except FileNotFoundError:
        pass


@implementer(IStorage)
class FilesystemStorage:
    log = Logger()

    def __init__(
        self,
        root: str,
        reactor: IReactorThreads,
        pool: ThreadPool,
        metadata: str = "auto",
        fsync: bool = True,
    ) -> None:
        self.root = os.path.abspath(root)
        self._reactor = reactor
        self._pool = pool
        self._fsync = fsync
        internal = os.path.join(self.root, INTERNAL_DIR)
        self._bucket_records = os.path.join(internal, "buckets")
        os.makedirs(self._bucket_records, exist_ok=True)
        # Each temporary file is locked while in use: the sweep removes only those of
        # processes that died, never another live process's (see fstemp).
        self.temporary = TemporaryFiles(os.path.join(internal, "tmp"))
        self._tmp_dir = self.temporary.tmp_dir
        self.temporary.sweep()
        self.metadata = self._choose_metadata(metadata, os.path.join(internal, "meta"))
        self._sidecar = isinstance(self.metadata, SidecarMetadata)
        self.uploads = FilesystemUploads(self, os.path.join(internal, "uploads"))
        self._directories = DirectoryCache()
        self._listing_fields = ListingFieldCache()
        # Buckets seen to exist, so writes to them need no extra trip to the pool.
        self._known_buckets: set[str] = set()
        self._bucket_infos = BucketInfoCache()
        # Readers of objects larger than their prefetch, open now (see READ_BUDGET).
        self._large_reads = 0
        # Changes to a bucket record (read, change, rename over) in this process.
        self._bucket_record_lock = threading.Lock()

    # -- start-up ---------------------------------------------------------------

    def _choose_metadata(self, mode: str, meta_root: str) -> MetadataStore:
        if mode not in ("auto", "xattr", "sidecar"):
            raise ValueError(f"unknown metadata mode {mode!r}: use auto, xattr or sidecar")
        if os.statvfs(self.root).f_flag & os.ST_RDONLY:
            # Nothing can be probed by writing; serve what is there. Only the sidecar
            # mode ever made the meta tree.
            self.log.warn("{root} is read-only: only reads will succeed", root=self.root)
            if mode == "sidecar" or (mode == "auto" and os.path.isdir(meta_root)):
                return SidecarMetadata(meta_root, self._create_meta_temp, self._fsync)
            return XattrMetadata()
        if mode in ("auto", "xattr"):
            # Probed beside tmp/, where no other process's sweep can remove the probe.
            if xattrs_work(os.path.dirname(self._tmp_dir)):
                return XattrMetadata()
            if mode == "xattr":
                raise RuntimeError(f"{self.root} does not keep user xattrs (metadata=xattr)")
            self.log.warn(
                "{root} does not keep user xattrs: metadata goes to a sidecar tree",
                root=self.root,
            )
        store = SidecarMetadata(meta_root, self._create_meta_temp, self._fsync)
        try:
            os.makedirs(meta_root, exist_ok=True)
            store.save("probe", "probe", "", MetaRecord("0", 0, 0, ObjectAttributes()))
            store.remove("probe", "probe", "")
            store.remove_bucket("probe")
        except OSError as e:
            raise RuntimeError(
                f"cannot keep object metadata under {self.root}: no user xattrs and "
                f"the sidecar tree {meta_root} is not writable ({e})"
            ) from e
        return store

    # -- helpers ----------------------------------------------------------------

    def _run(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        d = deferToThreadPool(self._reactor, self._pool, fn, *args)
        d.addErrback(self._refused)
        return d

    def _refused(self, failure: Failure) -> Failure:
        """A full, read-only or forbidding file system is the client's S3 error (and
        one log line), not an InternalError."""
        if isinstance(failure.value, OSError):
            error = s3_error_for(failure.value)
            if error is not None:
                self.log.warn(
                    "{root}: {reason} ({path}): answered {code}",
                    root=self.root,
                    reason=failure.value.strerror,
                    path=failure.value.filename,
                    code=error.code,
                )
                return Failure(error)
        return failure

    def _create_temp(self) -> tuple[str, TempFile]:
        """A new temporary file, locked while open: close it only once it is renamed
        into place or removed (see fstemp)."""
        return self.temporary.create()

    def _create_meta_temp(self) -> tuple[str, TempFile]:
        return self.temporary.create("meta")

    def _bucket_path(self, bucket: str) -> str:
        if not is_valid_bucket_name(bucket):
            raise NoSuchBucket(BucketName=bucket)
        return os.path.join(self.root, bucket)

    def _open_bucket(self, bucket: str) -> int:
        path = self._bucket_path(bucket)
        try:
            return os.open(path, _DIR_FLAGS)
        except OSError:
            raise NoSuchBucket(BucketName=bucket) from None

    def _open_parent(self, bucket: str, path: KeyPath, create: bool) -> int:
        """A descriptor of the directory holding ``path.name``, walked with O_NOFOLLOW.
        Raises NoSuchKey (reading) or ObjectParentIsFile (writing) when a component is
        missing, a file or a symlink."""
        fd = self._open_bucket(bucket)
        try:
            for part in path.parents:
                try:
                    child = self._open_dir_in(fd, part, create)
                except OSError as e:
                    if create and e.errno == errno.ENOENT:
                        raise  # removed by a concurrent delete: the caller walks again
                    if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        if create:
                            raise ObjectParentIsFile(Key=path.key) from None
                        raise NoSuchKey(Key=path.key) from None
                    raise
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _open_dir_in(self, parent: int, name: str, create: bool) -> int:
        """Open directory ``name`` in ``parent``; with ``create``, make it first if it
        is missing (tried after the open: the directory is almost always there)."""
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
        try:
            os.mkdir(name, dir_fd=parent)
            self._sync_dir(parent)  # the new directory's entry
        except FileExistsError:
            pass  # made meanwhile by another writer
        return os.open(name, _DIR_FLAGS, dir_fd=parent)

    def _info(
        self, bucket: str, key: str, path: str, st: os.stat_result, fd: int | None = None
    ) -> ObjectInfo:
        record = self.metadata.load(bucket, key, path, fd)
        if record is not None and record.describes(st):
            return ObjectInfo(
                key=key,
                size=0 if record.marker else st.st_size,
                etag=record.etag,
                last_modified=st.st_mtime,
                attributes=record.attributes,
                part_sizes=record.part_sizes,
            )
        guessed = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=_foreign_etag(st),
            last_modified=st.st_mtime,
            attributes=ObjectAttributes(content_type=guessed),
        )

    def _list_info(self, bucket: str, key: str, path: str, st: os.stat_result) -> ObjectInfo:
        """What a listing shows of a file (key, size, ETag, time, owner), read with
        less work than ``_info``: its attributes carry only the owner."""
        stamped = self.metadata.stamp(bucket, key, st)
        stamp = stamped[0] if stamped is not None else None
        fields = self._listing_fields.get(path, stamp)
        if fields is None:
            raw = self.metadata.load_raw(bucket, key, path)
            fields = MetaRecord.listing_fields(raw, st) if raw is not None else None
            if fields is None:
                return self._info(bucket, key, path, st)
            if stamped is not None:
                self._listing_fields.put(path, stamp, stamped[1], fields)
        etag, owner_id, owner_name = fields
        return ObjectInfo(key, st.st_size, etag, st.st_mtime, _owner_only(owner_id, owner_name))

    def _is_marker(self, bucket: str, key: str, path: str, fd: int | None = None) -> bool:
        record = self.metadata.load(bucket, key, path, fd)
        return record is not None and record.marker

    # -- buckets ----------------------------------------------------------------

    def check(self) -> Deferred[None]:
        return self._run(os.stat, self._tmp_dir).addCallback(lambda _: None)

    def _list_buckets(self) -> list[BucketInfo]:
        buckets = []
        for entry in os.scandir(self.root):
            if is_valid_bucket_name(entry.name) and entry.is_dir(follow_symlinks=False):
                buckets.append(self._bucket_info(entry.name))
        return sorted(buckets, key=lambda b: b.name)

    def _bucket_info(self, bucket: str) -> BucketInfo:
        """From the bucket's record (creation date, ACL); a directory another program
        made is a bucket created at its mtime, with no ACL."""
        try:
            with open(os.path.join(self._bucket_records, bucket), "rb") as f:
                record = json.loads(f.read() or b"{}")
            created = float(record["created"])
            return BucketInfo(bucket, created, AccessControl.from_json(record.get("acl")))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        try:
            return BucketInfo(bucket, os.stat(self._bucket_path(bucket)).st_mtime)
        except OSError:
            raise NoSuchBucket(BucketName=bucket) from None

    def _write_bucket_record(
        self,
        bucket: str,
        created: float,
        acl: AccessControl | None,
        config: Mapping[str, str] | None = None,
    ) -> None:
        record = {"created": created, "acl": acl.to_json() if acl else None}
        record["config"] = dict(config if config is not None else self._bucket_config(bucket))
        target = os.path.join(self._bucket_records, bucket)
        replace_with(self._create_temp, target, json.dumps(record).encode(), self._fsync)
        self._sync_dir(self._bucket_records)

    def _bucket_config(self, bucket: str) -> dict[str, str]:
        """The put_bucket_config documents in the bucket's record ({} if none)."""
        try:
            with open(os.path.join(self._bucket_records, bucket), "rb") as f:
                config = json.loads(f.read() or b"{}").get("config") or {}
        except (OSError, ValueError, AttributeError):
            return {}
        return {str(k): str(v) for k, v in config.items()} if isinstance(config, dict) else {}

    def _get_bucket_config(self, bucket: str, name: str) -> str | None:
        os.close(self._open_bucket(bucket))
        return self._bucket_config(bucket).get(name)

    def get_bucket_config(self, bucket: str, name: str) -> Deferred[str | None]:
        return self._run(self._get_bucket_config, bucket, name)

    def _put_bucket_config(self, bucket: str, name: str, value: str | None) -> None:
        # Read, change, replace: the record is renamed over, so readers never see half
        # of it. Two processes changing one bucket's documents at once: the last wins.
        with self._bucket_record_lock:
            info = self._head_bucket(bucket)
            config = self._bucket_config(bucket)
            if value is None:
                config.pop(name, None)
            else:
                config[name] = value
            self._write_bucket_record(bucket, info.creation_date, info.acl, config)

    def put_bucket_config(self, bucket: str, name: str, value: str | None) -> Deferred[None]:
        return self._bucket_infos.changing(
            bucket, self._run(self._put_bucket_config, bucket, name, value)
        )

    def list_buckets(self) -> Deferred[list[BucketInfo]]:
        return self._run(self._list_buckets)

    def _create_bucket(self, bucket: str, acl: AccessControl | None) -> None:
        path = self._bucket_path(bucket)
        try:
            os.mkdir(path)
        except FileExistsError:
            raise BucketAlreadyOwnedByYou(BucketName=bucket) from None
        self._write_bucket_record(bucket, time.time(), acl, config={})
        self._sync_dir(self.root)

    def create_bucket(self, bucket: str, acl: AccessControl | None = None) -> Deferred[None]:
        return self._bucket_infos.changing(bucket, self._run(self._create_bucket, bucket, acl))

    def _put_bucket_acl(self, bucket: str, acl: AccessControl) -> None:
        with self._bucket_record_lock:
            info = self._head_bucket(bucket)
            self._write_bucket_record(bucket, info.creation_date, acl)

    def put_bucket_acl(self, bucket: str, acl: AccessControl) -> Deferred[None]:
        return self._bucket_infos.changing(bucket, self._run(self._put_bucket_acl, bucket, acl))

    def _head_bucket(self, bucket: str) -> BucketInfo:
        os.close(self._open_bucket(bucket))
        return self._bucket_info(bucket)

    def head_bucket(self, bucket: str) -> Deferred[BucketInfo]:
        return self._bucket_infos.head(bucket, lambda b: self._run(self._head_bucket, b))

    def _delete_bucket(self, bucket: str) -> None:
        path = self._bucket_path(bucket)
        os.close(self._open_bucket(bucket))
        self._known_buckets.discard(bucket)
        if self._has_object(bucket, path, ""):
            raise BucketNotEmpty(BucketName=bucket)
        # Only rmdir, bottom-up: a file that arrives meanwhile makes this fail, so a
        # racing upload is never deleted.
        try:
            for dirpath, _dirs, _files in os.walk(path, topdown=False):
                os.rmdir(dirpath)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise BucketNotEmpty(BucketName=bucket) from None
            raise
        self._sync_dir(self.root)
        self.metadata.remove_bucket(bucket)
        self.uploads.remove_bucket(bucket)  # S3 drops a deleted bucket's uploads
        try:
            os.unlink(os.path.join(self._bucket_records, bucket))
        except FileNotFoundError:
            pass

    def delete_bucket(self, bucket: str) -> Deferred[None]:
        return self._bucket_infos.changing(bucket, self._run(self._delete_bucket, bucket))

    # -- listing ----------------------------------------------------------------

    def _has_object(self, bucket: str, dir_path: str, dir_key: str) -> bool:
        """Whether any object (file, or marker directory) lies under ``dir_path``."""
        try:
            entries = list(os.scandir(dir_path))
        except OSError:
            return False
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                return True
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                key = f"{dir_key}{entry.name}/"
                if self._is_marker(bucket, key, entry.path) or self._has_object(
                    bucket, entry.path, key
                ):
                    return True
        return False

    def _walk(
        self, bucket: str, dir_path: str, dir_key: str, prefix: str, marker: str, by_dir: bool
    ) -> Iterator[ListEntry]:
        """Objects under ``dir_path`` in S3 order, reading only directories that can
        hold keys with ``prefix`` after ``marker``. With ``by_dir`` (delimiter "/"),
        directories past the prefix are reported as common prefixes unread."""
        listing = self._directories.entries(dir_path)
        if listing is None:
            return
        names, dirs = listing
        # Keys below this directory are dir_key + name (+ "/" for directories), so the
        # entries are in key order; skip straight to the first that can matter.
        start = _first_relevant(names, dirs, dir_key, prefix, marker)
        for index in range(start, len(names)):
            name, is_dir = names[index], dirs[index]
            key = f"{dir_key}{name}/" if is_dir else f"{dir_key}{name}"
            if not key.startswith(prefix) and key > prefix:
                return  # past every key with the prefix
            path = f"{dir_path}/{name}"
            if not is_dir:
                if key > marker and key.startswith(prefix):
                    try:
                        st = os.stat(path, follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # deleted since the directory was read
                    yield self._list_info(bucket, key, path, st)
                continue
            # Every key below this directory starts with ``key``.
            if not (key.startswith(prefix) or prefix.startswith(key)):
                continue
            if marker > key and not marker.startswith(key):
                continue
            if by_dir and key.startswith(prefix) and key != prefix:
                if key > marker and (
                    self._is_marker(bucket, key, path) or self._has_object(bucket, path, key)
                ):
                    yield CommonPrefix(key)
                continue
            if key.startswith(prefix) and key > marker and self._is_marker(bucket, key, path):
                try:
                    yield self._info(bucket, key, path, os.stat(path, follow_symlinks=False))
                except FileNotFoundError:
                    pass
            yield from self._walk(bucket, path, key, prefix, marker, by_dir)

    def _list_objects(
        self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int
    ) -> ListPage:
        # Start at the deepest directory the prefix names whole: nothing else can match.
        start_key = prefix[: prefix.rfind("/") + 1]
        try:
            os.close(self._open_parent(bucket, KeyPath(start_key + "-"), create=False))
        except NoSuchKey:
            return ListPage([], [], False, None)
        except InvalidArgument:
            os.close(self._open_bucket(bucket))  # a missing bucket is still NoSuchBucket
            return ListPage([], [], False, None)
        start_dir = os.path.join(self._bucket_path(bucket), *start_key.split("/")[:-1])
        by_dir = delimiter == "/"
        walked = self._walk(bucket, start_dir, start_key, prefix, marker, by_dir)
        if start_key and prefix == start_key:
            walked = self._with_start_marker(bucket, start_key, start_dir, marker, walked)
        if by_dir or not delimiter:
            entries = walked  # the walk reports "/" prefixes itself; no delimiter: none
        else:
            entries = roll_up(
                (e for e in walked if isinstance(e, ObjectInfo)), prefix, delimiter, marker
            )
        return take_page(entries, max_keys)

    def _with_start_marker(
        self, bucket: str, key: str, path: str, marker: str, rest: Iterator[ListEntry]
    ) -> Iterator[ListEntry]:
        """The directory the walk starts in may itself be a marker object ("a/b/")."""
        if key > marker and self._is_marker(bucket, key, path):
            try:
                yield self._info(bucket, key, path, os.stat(path, follow_symlinks=False))
            except OSError:
                pass
        yield from rest

    def list_objects(
        self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int
    ) -> Deferred[ListPage]:
        return self._run(self._list_objects, bucket, prefix, delimiter, marker, max_keys)

    # -- objects ----------------------------------------------------------------

    def _stat_object(self, bucket: str, key: str) -> tuple[ObjectInfo, int | None]:
        """The object's info and, for a regular file, an open descriptor of it."""
        path = KeyPath(key)
        parent = self._open_parent(bucket, path, create=False)
        try:
            info, fd = self._stat_in(parent, bucket, path)
            if fd is not None and self._sidecar and info.etag == _foreign_etag(os.fstat(fd)):
                # The file and its record disagree: a change may be between its two
                # renames. Look again once none is under way.
                os.close(fd)
                self._lock_changes(parent, exclusive=False)
                info, fd = self._stat_in(parent, bucket, path)
            return info, fd
        finally:
            os.close(parent)  # (and with it the lock)

    def _stat_in(self, parent: int, bucket: str, path: KeyPath) -> tuple[ObjectInfo, int | None]:
        key = path.key
        flags = _DIR_FLAGS if path.marker else os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path.name, flags, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EISDIR):
                raise NoSuchKey(Key=key) from None
            raise
        try:
            st = os.fstat(fd)
            if path.marker:
                record = self.metadata.load(bucket, key, "", fd)
                if record is None or not record.marker:
                    raise NoSuchKey(Key=key)
                info = self._info(bucket, key, "", st, fd)
                os.close(fd)  # a marker has no data to read: no descriptor is returned
                return info, None
            if not stat.S_ISREG(st.st_mode):
                raise NoSuchKey(Key=key)
            return self._info(bucket, key, "", st, fd), fd
        except BaseException:
            os.close(fd)
            raise

    def _lock_changes(self, parent: int, exclusive: bool = True) -> None:
        """Sidecar metadata: a file and its record change by two renames, so changes
        hold their directory's lock across both (and readers take it when the two
        disagree): nobody sees the record of one version with the data of another.
        Closing ``parent`` releases the lock. (An xattr changes with its file.)"""
        if self._sidecar:
            fcntl.flock(parent, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)

    def _head_object(self, bucket: str, key: str) -> ObjectInfo:
        info, fd = self._stat_object(bucket, key)
        if fd is not None:
            os.close(fd)
        return info

    def head_object(self, bucket: str, key: str) -> Deferred[ObjectInfo]:
        return self._run(self._head_object, bucket, key)

    def _prepare_write(self, bucket: str) -> tuple[str, TempFile]:
        if bucket not in self._known_buckets:
            self._check_bucket(bucket)
        # else a bucket deleted meanwhile fails the commit with NoSuchBucket
        return self._create_temp()  # the writer closes it

    def _check_bucket(self, bucket: str) -> None:
        os.close(self._open_bucket(bucket))
        self._known_buckets.add(bucket)

    async def _open_writer(
        self,
        bucket: str,
        key: str,
        attributes: ObjectAttributes,
        content_md5: bytes | None,
        expected_size: int | None,
        create_only: bool = False,
    ) -> IObjectWriter:
        path = KeyPath(key)
        if bucket not in self._known_buckets:
            # Fail before reading a body for a bucket that is not there. A bucket seen
            # before is not checked again: if another process deleted it meanwhile,
            # the commit fails with NoSuchBucket instead.
            await self._run(self._check_bucket, bucket)

        def commit(file: TempFile, temp: str, etag: str, checksums: dict[str, str]) -> ObjectInfo:
            stored = dataclasses.replace(attributes, checksums=checksums)
            return self._commit_temp(
                temp, bucket, path, stored, etag, create_only=create_only, file=file
            )

        return FilesystemWriter(
            self, lambda: self._prepare_write(bucket), commit, content_md5, expected_size
        )

    def open_writer(
        self,
        bucket: str,
        key: str,
        attributes: ObjectAttributes,
        content_md5: bytes | None,
        expected_size: int | None,
        create_only: bool = False,
    ) -> Deferred[IObjectWriter]:
        return Deferred.fromCoroutine(
            self._open_writer(bucket, key, attributes, content_md5, expected_size, create_only)
        )

    def _sync_dir(self, path: str | int) -> None:
        if not self._fsync:
            return
        fd = os.open(path, _DIR_FLAGS) if isinstance(path, str) else path
        try:
            os.fsync(fd)
        finally:
            if isinstance(path, str):
                os.close(fd)

    def _sync_xattr(self, fd: int) -> None:
        """After an xattr record changed on ``fd``: make it durable."""
        if self._fsync and not self._sidecar:
            os.fsync(fd)

    def _seal(self, file: TempFile) -> None:
        """Runs on the pool: flush and fsync (unless disabled) a written file. (It stays
        open, so locked, until renamed: see fstemp.)"""
        file.flush()
        if self._fsync:
            os.fsync(file.fileno())

    def _commit_temp(
        self,
        temp: str,
        bucket: str,
        path: KeyPath,
        attributes: ObjectAttributes,
        etag: str,
        part_sizes: tuple[int, ...] = (),
        create_only: bool = False,
        file: TempFile | None = None,
    ) -> ObjectInfo:
        """Runs on the pool: make the verified temporary file (``file``, if still open)
        the object, atomically (with ``create_only``, only if no object has the key).

        Durability order (``--durability fsync``): the xattr record is set on the
        temporary file, the file is fsynced (data and record in one go), renamed into
        place, and the directory is fsynced, before this returns; a sidecar record is
        made durable by its own save before the rename."""
        if file is None:
            file = TempFile(os.open(temp, os.O_RDONLY | os.O_CLOEXEC))  # closed below
        with file:  # closed (unlocked) only once renamed: see fstemp
            file.flush()
            st = os.fstat(file.fileno())
            if path.marker and st.st_size:
                raise InvalidArgument(
                    "A key ending in '/' is a directory marker and must be empty.", Key=path.key
                )
            record = MetaRecord(
                etag, st.st_size, st.st_mtime_ns, attributes, path.marker, part_sizes
            )
            if not path.marker:  # a marker's record goes on its directory
                if not self._sidecar:
                    self.metadata.save(bucket, path.key, file.fileno(), record)
                if self._fsync:
                    os.fsync(file.fileno())
            self._place(temp, bucket, path, record, create_only)
        size = 0 if path.marker else st.st_size
        return ObjectInfo(path.key, size, etag, st.st_mtime, attributes, part_sizes=part_sizes)

    def _place(
        self, temp: str, bucket: str, path: KeyPath, record: MetaRecord, create_only: bool
    ) -> None:
        """Rename (or link) the temporary file to the key, then sync the directory."""
        for attempt in (1, 2, 3):
            try:
                parent = self._open_parent(bucket, path, create=True)
                try:
                    if path.marker:
                        self._commit_marker(parent, bucket, path, record, create_only)
                        os.unlink(temp)
                    else:
                        self._commit_file(parent, temp, bucket, path, record, create_only)
                    self._sync_dir(parent)
                finally:
                    os.close(parent)
                break
            except FileNotFoundError:
                # A concurrent delete removed an empty parent directory, or the whole
                # bucket (then this is NoSuchBucket): walk again.
                os.close(self._open_bucket(bucket))
                if attempt == 3:
                    raise

    def _commit_file(
        self,
        parent: int,
        temp: str,
        bucket: str,
        path: KeyPath,
        record: MetaRecord,
        create_only: bool = False,
    ) -> None:
        existing = None
        if create_only or self._sidecar:
            # (Otherwise rename(2) itself refuses a directory, with EISDIR, below.)
            try:
                existing = os.stat(path.name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                pass
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                raise ExistingObjectIsDirectory(Key=path.key)
        self._lock_changes(parent)  # released when the caller closes parent
        if create_only:
            # If-None-Match: *: link(2) creates the name only if nothing holds it, so of
            # two racing creators exactly one wins. (A sidecar record is written after
            # the link: until then the new file reads as a file another program wrote.)
            if existing is not None:
                raise PreconditionFailed(Condition="If-None-Match")
            try:
                os.link(temp, path.name, dst_dir_fd=parent, follow_symlinks=False)
            except FileExistsError:
                raise PreconditionFailed(Condition="If-None-Match") from None
            os.unlink(temp)
            if self._sidecar:
                self.metadata.save(bucket, path.key, "", record)
            return
        if self._sidecar:  # an xattr record is on the file already
            self.metadata.save(bucket, path.key, "", record)
        try:
            os.rename(temp, path.name, dst_dir_fd=parent)
        except IsADirectoryError:
            raise ExistingObjectIsDirectory(Key=path.key) from None

    def _commit_marker(
        self,
        parent: int,
        bucket: str,
        path: KeyPath,
        record: MetaRecord,
        create_only: bool = False,
    ) -> None:
        try:
            os.mkdir(path.name, dir_fd=parent)
        except FileExistsError:
            pass
        try:
            fd = os.open(path.name, _DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP):
                raise ObjectParentIsFile(Key=path.key) from None
            raise
        try:
            if create_only:
                # The directory may hold other keys already: the marker record is
                # what exists or not, checked and written under the directory's lock.
                fcntl.flock(fd, fcntl.LOCK_EX)
                if self._is_marker(bucket, path.key, "", fd):
                    raise PreconditionFailed(Condition="If-None-Match")
            record = MetaRecord(record.etag, 0, 0, record.attributes, marker=True)
            self.metadata.save(bucket, path.key, fd, record)
            self._sync_xattr(fd)
        finally:
            os.close(fd)

    def _open_read(self, bucket: str, key: str) -> tuple[ObjectInfo, int | None, bytes]:
        """The object's info, an open descriptor, and (small objects) all its bytes, in
        one trip to the pool."""
        info, fd = self._stat_object(bucket, key)
        prefetched = b""
        if fd is not None and info.size <= PREFETCH_LIMIT:
            try:
                prefetched = os.pread(fd, info.size, 0)
            except BaseException:
                os.close(fd)
                raise
        return info, fd, prefetched

    async def _open_reader(
        self, bucket: str, key: str, byte_range: ByteRange | None
    ) -> IObjectReader:
        info, fd, prefetched = await self._run(self._open_read, bucket, key)
        in_flight: Deferred[bytes] | None = None
        released = False

        def read_at(offset: int, size: int) -> Deferred[bytes]:
            nonlocal in_flight
            if fd is None:
                return succeed(b"")
            in_flight = self._run(os.pread, fd, size, offset)
            return in_flight

        def close_fd(_: object = None) -> object:
            if fd is not None:
                os.close(fd)
            return _

        large = info.size > len(prefetched)  # read in chunks: counted against the budget
        if large:
            self._large_reads += 1

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            if large:
                self._large_reads -= 1
            # Close only after a read still running on the pool has returned.
            if in_flight is not None and not in_flight.called:
                in_flight.addBoth(close_fd)
            else:
                close_fd()

        chunk = read_chunk_size(self._large_reads)
        return ChunkedReader(info, read_at, release, chunk, byte_range, prefetched)

    def open_reader(
        self, bucket: str, key: str, byte_range: ByteRange | None
    ) -> Deferred[IObjectReader]:
        return Deferred.fromCoroutine(self._open_reader(bucket, key, byte_range))

    def _delete_object(self, bucket: str, key: str) -> None:
        try:
            path = KeyPath(key)
        except InvalidArgument:
            os.close(self._open_bucket(bucket))
            return  # no such key can exist here
        try:
            parent = self._open_parent(bucket, path, create=False)
        except NoSuchKey:
            return
        try:
            if path.marker:
                try:
                    fd = os.open(path.name, _DIR_FLAGS, dir_fd=parent)
                except OSError:
                    return
                try:
                    if not self._is_marker(bucket, key, "", fd):
                        return
                    self.metadata.remove(bucket, key, fd)
                finally:
                    os.close(fd)
                try:
                    os.rmdir(path.name, dir_fd=parent)
                except OSError:
                    pass  # still holds objects: it stays, as an implicit directory
            else:
                try:
                    st = os.stat(path.name, dir_fd=parent, follow_symlinks=False)
                except FileNotFoundError:
                    return
                if stat.S_ISDIR(st.st_mode):
                    return
                self._lock_changes(parent)
                os.unlink(path.name, dir_fd=parent)
                self.metadata.remove(bucket, key, "")
            self._sync_dir(parent)
        finally:
            os.close(parent)
        self._remove_implicit_parents(bucket, path)

    def _remove_implicit_parents(self, bucket: str, path: KeyPath) -> None:
        """Remove the empty directories that were created only to hold the key; stop
        at the first one that is a marker object or still holds anything."""
        parents = list(path.parents)
        while parents:
            dir_key = "/".join(parents) + "/"
            dir_path = os.path.join(self._bucket_path(bucket), *parents)
            if os.path.islink(dir_path) or self._is_marker(bucket, dir_key, dir_path):
                return
            try:
                os.rmdir(dir_path)
            except OSError:
                return
            parents.pop()

    def _put_object_acl(self, bucket: str, key: str, acl: AccessControl) -> None:
        self._change_attributes(bucket, key, lambda a: dataclasses.replace(a, acl=acl))

    def _change_attributes(
        self, bucket: str, key: str, change: Callable[[ObjectAttributes], ObjectAttributes]
    ) -> None:
        """Rewrite an object's stored attributes (not its data) with ``change``."""
        path = KeyPath(key)
        parent = self._open_parent(bucket, path, create=False)
        try:
            if not path.marker:
                self._lock_changes(parent)
            flags = _DIR_FLAGS if path.marker else os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(path.name, flags, dir_fd=parent)
            except OSError:
                raise NoSuchKey(Key=key) from None
            try:
                st = os.fstat(fd)
                record = self.metadata.load(bucket, key, "", fd)
                if record is None or not record.describes(st):
                    if path.marker or not stat.S_ISREG(st.st_mode):
                        raise NoSuchKey(Key=key)
                    info = self._info(bucket, key, "", st, fd)  # a foreign file
                    record = MetaRecord(info.etag, st.st_size, st.st_mtime_ns, info.attributes)
                attributes = change(record.attributes)
                changed = dataclasses.replace(record, attributes=attributes)
                self.metadata.save(bucket, key, fd, changed)
                self._sync_xattr(fd)
            finally:
                os.close(fd)
        finally:
            os.close(parent)

    def put_object_acl(self, bucket: str, key: str, acl: AccessControl) -> Deferred[None]:
        return self._run(self._put_object_acl, bucket, key, acl)

    def put_object_tagging(self, bucket: str, key: str, tags: Mapping[str, str]) -> Deferred[None]:
        def retag(attributes: ObjectAttributes) -> ObjectAttributes:
            return dataclasses.replace(attributes, tags=dict(tags))

        return self._run(self._change_attributes, bucket, key, retag)

    def delete_object(self, bucket: str, key: str) -> Deferred[None]:
        return self._run(self._delete_object, bucket, key)

    def _copy_to_temp(
        self, bucket: str, key: str, byte_range: ByteRange | None = None
    ) -> tuple[ObjectInfo, str, str, TempFile]:
        """The source's info, and a temporary file (still open) holding a copy of it
        (or of ``byte_range`` of it) with the copy's MD5. The caller's commit fsyncs
        it, with its metadata."""
        info, fd = self._stat_object(bucket, key)
        position, end = (
            (0, info.size)
            if byte_range is None
            else (byte_range.first, byte_range.first + byte_range.length)
        )
        md5 = hashlib.md5()
        temp, out = "", None
        try:
            temp, out = self._create_temp()
            while fd is not None and position < end:
                chunk = os.pread(fd, min(COPY_CHUNK, end - position), position)
                if not chunk:
                    break
                md5.update(chunk)
                out.write(chunk)
                position += len(chunk)
        except BaseException:
            if temp:
                _discard(out, temp)
            raise
        finally:
            if fd is not None:
                os.close(fd)
        return info, md5.hexdigest(), temp, out

    def _copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        attributes: ObjectAttributes | None,
    ) -> ObjectInfo:
        path = KeyPath(dst_key)
        os.close(self._open_bucket(dst_bucket))
        info, etag, temp, out = self._copy_to_temp(src_bucket, src_key)
        try:
            return self._commit_temp(
                temp, dst_bucket, path, attributes or info.attributes, etag, file=out
            )
        except BaseException:
            _discard(out, temp)
            raise

    def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        attributes: ObjectAttributes | None,
    ) -> Deferred[ObjectInfo]:
        return self._run(self._copy_object, src_bucket, src_key, dst_bucket, dst_key, attributes)

    # -- multipart uploads (state on disk: see fsuploads) --------------------------------

    def create_multipart_upload(
        self, bucket: str, key: str, attributes: ObjectAttributes
    ) -> Deferred[UploadInfo]:
        return self._run(self.uploads.create, bucket, key, attributes)

    async def _open_part_writer(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        content_md5: bytes | None,
        expected_size: int | None,
    ) -> IObjectWriter:
        # The upload must exist now: no body is read into an upload that is gone.
        await self._run(self.uploads.check, bucket, key, upload_id)

        def commit(file: TempFile, temp: str, etag: str, checksums: dict[str, str]) -> ObjectInfo:
            return self.uploads.commit_part(
                file, temp, bucket, upload_id, part_number, etag, checksums
            )

        return FilesystemWriter(
            self,
            lambda: self.uploads.prepare_part(bucket, key, upload_id),
            commit,
            content_md5,
            expected_size,
        )

    def open_part_writer(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        content_md5: bytes | None,
        expected_size: int | None,
    ) -> Deferred[IObjectWriter]:
        return Deferred.fromCoroutine(
            self._open_part_writer(bucket, key, upload_id, part_number, content_md5, expected_size)
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
        return self._run(
            self.uploads.copy_part,
            bucket,
            key,
            upload_id,
            part_number,
            src_bucket,
            src_key,
            byte_range,
        )

    def list_parts(
        self, bucket: str, key: str, upload_id: str, part_number_marker: int, max_parts: int
    ) -> Deferred[tuple[UploadInfo, PartsPage]]:
        return self._run(
            self.uploads.list_parts, bucket, key, upload_id, part_number_marker, max_parts
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
        return self._run(
            self.uploads.complete, bucket, key, upload_id, parts, min_part_size, create_only
        )

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> Deferred[None]:
        return self._run(self.uploads.abort, bucket, key, upload_id)

    def list_multipart_uploads(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> Deferred[UploadsPage]:
        return self._run(
            self.uploads.list_uploads,
            bucket,
            prefix,
            delimiter,
            key_marker,
            upload_id_marker,
            max_uploads,
        )

    def expire_multipart_uploads(self, older_than: float) -> Deferred[int]:
        return self._run(self.uploads.expire, older_than)
