"""Where the filesystem backend keeps object metadata: in a user xattr on the file itself,
or, where the filesystem has no user xattrs, in a sidecar tree outside the buckets.

A record remembers the size and mtime of the data it describes; a file that another
program replaced no longer matches, and is then served as a foreign file (no stale
ETag or Content-Type is ever attached to new data)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from s3proxy.errors import MetadataTooLarge
from s3proxy.model import ObjectAttributes
from s3proxy.storage.fstemp import TempFile

XATTR_NAME = "user.s3proxy"
# ext4 keeps all of a file's xattrs in one block (4 KiB), so a long record (a multipart
# object's part sizes, a long key with metadata and tags) is kept zlib-compressed,
# after this prefix (a plain record is JSON and starts with "{").
_COMPRESSED = b"z"
_COMPRESS_ABOVE = 2048
_MAX_RECORD = 1 << 20  # no record we write inflates past this
# What setxattr says when a value is too big; ENOSPC only counts for a value past
# _COMPRESS_ABOVE (ext4's limit is one 4 KiB block), as a full disk says it too.
_TOO_BIG = (errno.E2BIG, errno.ERANGE)


@dataclass(frozen=True)
class MetaRecord:
    etag: str
    size: int
    mtime_ns: int
    attributes: ObjectAttributes
    marker: bool = False  # a directory marker object ("key/")
    part_sizes: tuple[int, ...] = ()  # of an object made by a multipart upload

    def to_bytes(self, key: str) -> bytes:
        return json.dumps(
            {
                "v": 1,
                "key": key,
                "etag": self.etag,
                "size": self.size,
                "mtime_ns": self.mtime_ns,
                "marker": self.marker,
                "parts": list(self.part_sizes),
                "attributes": self.attributes.to_json(),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> MetaRecord | None:
        try:
            data = json.loads(raw)
            return cls(
                etag=str(data["etag"]),
                size=int(data["size"]),
                mtime_ns=int(data["mtime_ns"]),
                attributes=ObjectAttributes.from_json(data["attributes"]),
                marker=bool(data.get("marker", False)),
                part_sizes=tuple(int(n) for n in data.get("parts", ())),
            )
        except (ValueError, KeyError, TypeError, AssertionError):
            return None

    @staticmethod
    def listing_fields(raw: bytes, st: os.stat_result) -> tuple[str, str, str] | None:
        """(etag, owner id, owner name) straight from a record's JSON, if it describes
        ``st``: all a listing shows, without building the whole record (a listing
        page reads a thousand of them)."""
        try:
            data = json.loads(raw)
            if not data.get("marker") and (
                data["size"] != st.st_size or data["mtime_ns"] != st.st_mtime_ns
            ):
                return None
            acl = data["attributes"].get("acl") or {}
            return str(data["etag"]), str(acl.get("owner_id", "")), str(acl.get("owner_name", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def describes(self, st: os.stat_result) -> bool:
        if self.marker:
            return True  # a directory's mtime moves with its children
        return self.size == st.st_size and self.mtime_ns == st.st_mtime_ns


class MetadataStore:
    """The interface both stores share. ``path`` is the object's data path (a file, or
    the directory of a marker object); ``fd`` an open descriptor of it when the caller
    has one."""

    name = "abstract"

    def load(self, bucket: str, key: str, path: str, fd: int | None = None) -> MetaRecord | None:
        raw = self.load_raw(bucket, key, path, fd)
        return MetaRecord.from_bytes(raw) if raw is not None else None

    def load_raw(self, bucket: str, key: str, path: str, fd: int | None = None) -> bytes | None:
        raise NotImplementedError

    def save(self, bucket: str, key: str, target: str | int, record: MetaRecord) -> None:
        raise NotImplementedError

    def remove(self, bucket: str, key: str, target: str | int) -> None:
        raise NotImplementedError

    def remove_bucket(self, bucket: str) -> None:
        pass

    def stamp(
        self, bucket: str, key: str, st: os.stat_result
    ) -> tuple[tuple[int, ...], int] | None:
        """(A value that changes whenever the record of the file ``st`` describes may
        have changed, the newest ctime in it), or None if there is none."""
        raise NotImplementedError


class XattrMetadata(MetadataStore):
    """Metadata in the file's own xattr: set on the temporary file before the rename,
    so data and metadata appear together atomically."""

    name = "xattr"

    def load_raw(self, bucket: str, key: str, path: str, fd: int | None = None) -> bytes | None:
        try:
            if fd is not None:
                return _unpack(os.getxattr(fd, XATTR_NAME))
            return _unpack(os.getxattr(path, XATTR_NAME, follow_symlinks=False))
        except OSError:
            return None

    def save(self, bucket: str, key: str, target: str | int, record: MetaRecord) -> None:
        value = _pack(record.to_bytes(key))
        try:
            if isinstance(target, int):
                os.setxattr(target, XATTR_NAME, value)
            else:
                os.setxattr(target, XATTR_NAME, value, follow_symlinks=False)
        except OSError as e:
            if e.errno in _TOO_BIG or (e.errno == errno.ENOSPC and len(value) > _COMPRESS_ABOVE):
                raise MetadataTooLarge(
                    "The object's attributes do not fit in the file system's extended "
                    "attributes (the sidecar metadata mode has no such limit)."
                ) from None
            raise

    def remove(self, bucket: str, key: str, target: str | int) -> None:
        try:
            if isinstance(target, int):
                os.removexattr(target, XATTR_NAME)
            else:
                os.removexattr(target, XATTR_NAME, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.ENOENT):
                raise

    def stamp(
        self, bucket: str, key: str, st: os.stat_result
    ) -> tuple[tuple[int, ...], int] | None:
        # Setting the xattr, and writing or renaming the file, all move its ctime.
        return (st.st_ino, st.st_ctime_ns, st.st_size, st.st_mtime_ns), st.st_ctime_ns


class SidecarMetadata(MetadataStore):
    """Metadata in ``<root>/.s3proxy/meta/<bucket>/<hh>/<sha256(key)>``: flat and
    hashed, so no key can collide with another's record or escape the tree.

    A record is written to a temporary file (``create()`` makes it, see fstemp) and
    renamed over the old one; with ``fsync`` the file is synced before the rename and its
    directory after it (and the parent of any directory created for it), so the
    record is on stable storage when ``save`` returns."""

    name = "sidecar"

    def __init__(
        self, meta_root: str, create: Callable[[], tuple[str, TempFile]], fsync: bool
    ) -> None:
        self._root = meta_root
        self._create = create
        self._fsync = fsync

    def _path(self, bucket: str, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return os.path.join(self._root, bucket, digest[:2], digest)

    def load_raw(self, bucket: str, key: str, path: str, fd: int | None = None) -> bytes | None:
        try:
            with open(self._path(bucket, key), "rb") as f:
                return f.read()
        except OSError:
            return None

    def save(self, bucket: str, key: str, target: str | int, record: MetaRecord) -> None:
        target = self._path(bucket, key)
        directory = os.path.dirname(target)
        self._make_dirs(directory)
        replace_with(self._create, target, record.to_bytes(key), self._fsync)
        if self._fsync:
            sync_dir(directory)

    def _make_dirs(self, directory: str) -> None:
        """``<bucket>/<hh>`` below the meta root; a directory created here is made
        durable in its parent (else a crash could lose every record in it)."""
        if os.path.isdir(directory):
            return
        bucket_dir = os.path.dirname(directory)
        for path in (bucket_dir, directory):
            try:
                os.mkdir(path)
            except FileExistsError:
                continue
            if self._fsync:
                sync_dir(os.path.dirname(path))

    def remove(self, bucket: str, key: str, target: str | int) -> None:
        try:
            os.unlink(self._path(bucket, key))
        except FileNotFoundError:
            pass

    def stamp(
        self, bucket: str, key: str, st: os.stat_result
    ) -> tuple[tuple[int, ...], int] | None:
        # A record is replaced by a rename: a new inode.
        try:
            side = os.stat(self._path(bucket, key))
        except OSError:
            return None
        changed = max(st.st_ctime_ns, side.st_ctime_ns)
        return (
            st.st_ino,
            st.st_ctime_ns,
            st.st_size,
            st.st_mtime_ns,
            side.st_ino,
            side.st_ctime_ns,
        ), changed

    def remove_bucket(self, bucket: str) -> None:
        shutil.rmtree(os.path.join(self._root, bucket), ignore_errors=True)


def _pack(raw: bytes) -> bytes:
    return raw if len(raw) <= _COMPRESS_ABOVE else _COMPRESSED + zlib.compress(raw, 9)


def _unpack(value: bytes) -> bytes | None:
    """A record as JSON; None if the value is not one we could have written."""
    if not value.startswith(_COMPRESSED):
        return value
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(value[len(_COMPRESSED) :], _MAX_RECORD)
    except zlib.error:
        return None
    return None if inflater.unconsumed_tail else raw


def replace_with(
    create: Callable[[], tuple[str, TempFile]], target: str, data: bytes, fsync: bool = False
) -> None:
    """Replace ``target`` by a file holding ``data``, written to a temporary file from
    ``create`` first (so readers never see half of it) and, with ``fsync``, synced
    before the rename (the caller syncs the directory). The file is renamed while still
    open (see fstemp). On any failure (a full disk) the temporary file is removed."""
    temp, f = create()
    try:
        with f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
            os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def sync_dir(path: str) -> None:
    """fsync a directory: the entries added, renamed or removed in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def xattrs_work(probe_dir: str) -> bool:
    """Whether the filesystem under ``probe_dir`` keeps user xattrs."""
    probe = os.path.join(probe_dir, f"{uuid.uuid4().hex}.probe")
    try:
        with open(probe, "wb"):
            pass
        os.setxattr(probe, XATTR_NAME, b"{}")
        return os.getxattr(probe, XATTR_NAME) == b"{}"
    except OSError:
        return False
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass
