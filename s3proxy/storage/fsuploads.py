"""Multipart uploads of the filesystem backend, kept on disk so that any process
sharing the root (or the same one after a restart) can continue them.

Layout: ``<root>/.s3proxy/uploads/<bucket>/<upload id>/`` holds ``upload.json`` (key,
attributes, initiation time) and, per part, the data file ``00001`` with its record
``00001.json`` (ETag, size, mtime). A record that does not describe its data file (a
replacement half-way) makes that part unusable until the replacement lands.

Completion claims the upload by renaming its directory to ``<id>.completing`` (one
rename, so of two racing completions exactly one wins), assembles the parts into a
temporary file with ``os.copy_file_range`` (no bytes pass through Python), commits it
like any upload, and removes the directory. All methods here block: the backend runs
them on its thread pool.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import time
import uuid
from typing import TYPE_CHECKING

from s3proxy.errors import InvalidPart, NoSuchUpload
from s3proxy.model import (
    ByteRange,
    ObjectAttributes,
    ObjectInfo,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
)
from s3proxy.storage.fsmeta import replace_with
from s3proxy.storage.fstemp import TempFile
from s3proxy.storage.multipart import (
    check_upload_id,
    composite_checksums,
    multipart_etag,
    new_upload_id,
    page_uploads,
    select_parts,
)
from s3proxy.storage.oserrors import s3_error_for

if TYPE_CHECKING:
    from s3proxy.storage.filesystem import FilesystemStorage

COPY_CHUNK = 1024 * 1024
_CLAIMED = ".completing"
_ABORTING = ".aborting-"


def _part_name(number: int) -> str:
    return f"{number:05d}"


def _copy_range(src: int, dst: int, count: int) -> None:
    """Copy ``count`` bytes between file offsets in the kernel where it can."""
    while count > 0:
        try:
            copied = os.copy_file_range(src, dst, count)
        except OSError:
            copied = -1
        if copied < 0:  # not supported here: fall back to a read/write loop
            while count > 0:
                chunk = os.read(src, min(COPY_CHUNK, count))
                if not chunk:
                    raise InvalidPart("A part is shorter than recorded.")
                os.write(dst, chunk)
                count -= len(chunk)
            return
        if copied == 0:
            raise InvalidPart("A part is shorter than recorded.")
        count -= copied


class FilesystemUploads:
    def __init__(self, storage: FilesystemStorage, root: str) -> None:
        self._storage = storage
        self._root = root
        os.makedirs(root, exist_ok=True)
        self._release_stale_claims()

    def _release_stale_claims(self) -> None:
        """A completion cut short by a crash leaves its claim; give the upload back.
        A live completion (another daemon on this root) holds a lock on its record,
        which ends with its process: those are left alone. An abort cut short leaves
        its renamed directory, which no one uses any more: remove it."""
        for bucket in os.scandir(self._root):
            if not bucket.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(bucket.path):
                if _ABORTING in entry.name:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    continue
                if not entry.name.endswith(_CLAIMED):
                    continue
                try:
                    with open(os.path.join(entry.path, "upload.json"), "rb") as record:
                        fcntl.flock(record, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        original = entry.path[: -len(_CLAIMED)]
                        if not os.path.exists(original):
                            os.rename(entry.path, original)
                except OSError:
                    continue  # locked (live), or already gone

    # -- reading state ---------------------------------------------------------------

    def _dir(self, bucket: str, upload_id: str) -> str:
        check_upload_id(upload_id)
        self._storage._bucket_path(bucket)  # NoSuchBucket for impossible names
        return os.path.join(self._root, bucket, upload_id)

    def _read_upload(self, bucket: str, directory: str, upload_id: str) -> UploadInfo:
        try:
            with open(os.path.join(directory, "upload.json"), "rb") as f:
                data = json.load(f)
        except (OSError, ValueError):
            raise NoSuchUpload(UploadId=upload_id) from None
        return UploadInfo(
            bucket=bucket,
            key=data["key"],
            upload_id=upload_id,
            initiated=float(data["initiated"]),
            attributes=ObjectAttributes.from_json(data["attributes"]),
        )

    def _load(self, bucket: str, key: str, upload_id: str) -> tuple[str, UploadInfo]:
        os.close(self._storage._open_bucket(bucket))
        directory = self._dir(bucket, upload_id)
        upload = self._read_upload(bucket, directory, upload_id)
        if upload.key != key:
            raise NoSuchUpload(UploadId=upload_id)
        return directory, upload

    def _parts(self, directory: str) -> dict[int, PartInfo]:
        parts = {}
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return {}
        for entry in entries:
            name = entry.name
            if not (name.endswith(".json") and name[:5].isdigit() and len(name) == 10):
                continue
            try:
                with open(entry.path, "rb") as f:
                    record = json.load(f)
                st = os.stat(entry.path[: -len(".json")])
            except (OSError, ValueError):
                continue
            if st.st_size != record["size"] or st.st_mtime_ns != record["mtime_ns"]:
                continue  # the data file is being replaced
            number = int(name[:5])
            checksums = {str(k): str(v) for k, v in dict(record.get("checksums") or {}).items()}
            parts[number] = PartInfo(number, st.st_size, record["etag"], st.st_mtime, checksums)
        return parts

    # -- operations ------------------------------------------------------------------

    def create(self, bucket: str, key: str, attributes: ObjectAttributes) -> UploadInfo:
        from s3proxy.storage.filesystem import KeyPath

        KeyPath(key)  # a key this backend cannot store fails now, not at completion
        os.close(self._storage._open_bucket(bucket))
        upload = UploadInfo(bucket, key, new_upload_id(), time.time(), attributes)
        directory = self._dir(bucket, upload.upload_id)
        os.makedirs(directory)
        record = {"key": key, "initiated": upload.initiated, "attributes": attributes.to_json()}
        self._write_json(os.path.join(directory, "upload.json"), record)
        # The record, the upload's directory, and that directory's (maybe new) parent.
        for path in (directory, os.path.dirname(directory), self._root):
            self._storage._sync_dir(path)
        return upload

    def _write_json(self, path: str, record: dict[str, object]) -> None:
        """Write a record by rename (a FileNotFoundError, the upload directory gone,
        reaches the caller); durable once the caller syncs its directory."""
        data = json.dumps(record).encode()
        replace_with(self._storage._create_temp, path, data, self._storage._fsync)

    def check(self, bucket: str, key: str, upload_id: str) -> None:
        self._load(bucket, key, upload_id)

    def prepare_part(self, bucket: str, key: str, upload_id: str) -> tuple[str, TempFile]:
        self._load(bucket, key, upload_id)
        return self._storage._create_temp()  # the writer closes it

    def commit_part(
        self,
        file: TempFile,
        temp: str,
        bucket: str,
        upload_id: str,
        number: int,
        etag: str,
        checksums: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Runs on the pool: the record first, then the data, each by one rename (the
        file is closed, so unlocked, only after its rename: see fstemp)."""
        with file:
            self._storage._seal(file)
            directory = self._dir(bucket, upload_id)
            st = os.fstat(file.fileno())
            target = os.path.join(directory, _part_name(number))
            try:
                self._write_json(
                    target + ".json",
                    {
                        "etag": etag,
                        "size": st.st_size,
                        "mtime_ns": st.st_mtime_ns,
                        "checksums": checksums or {},
                    },
                )
                os.rename(temp, target)
                self._storage._sync_dir(directory)
            except BaseException as e:
                try:
                    os.unlink(temp)
                except FileNotFoundError:
                    pass
                if isinstance(e, FileNotFoundError):  # completed or aborted meanwhile
                    raise NoSuchUpload(UploadId=upload_id) from None
                raise  # e.g. no space left for the record
        return ObjectInfo(str(number), st.st_size, etag, st.st_mtime)

    def copy_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        src_bucket: str,
        src_key: str,
        byte_range: ByteRange | None,
    ) -> PartInfo:
        self._load(bucket, key, upload_id)
        _, etag, temp, out = self._storage._copy_to_temp(src_bucket, src_key, byte_range)
        done = self.commit_part(out, temp, bucket, upload_id, number, etag)
        return PartInfo(number, done.size, done.etag, done.last_modified)

    def list_parts(
        self, bucket: str, key: str, upload_id: str, marker: int, max_parts: int
    ) -> tuple[UploadInfo, PartsPage]:
        directory, upload = self._load(bucket, key, upload_id)
        parts = [p for n, p in sorted(self._parts(directory).items()) if n > marker]
        if not os.path.isdir(directory):  # completed or aborted while we read
            raise NoSuchUpload(UploadId=upload_id)
        page = parts[:max_parts]
        truncated = len(parts) > max_parts
        next_marker = page[-1].number if page and truncated else None
        return upload, PartsPage(page, truncated, next_marker)

    def complete(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        requested: list[tuple[int, str]],
        min_part_size: int,
        create_only: bool = False,
    ) -> ObjectInfo:
        directory, upload = self._load(bucket, key, upload_id)
        try:
            select_parts(requested, self._parts(directory), min_part_size)  # fail before claiming
        except InvalidPart:
            # A concurrent completion (or abort) may have taken the directory while we
            # read it: then the upload is gone, not the parts.
            if not os.path.isdir(directory):
                raise NoSuchUpload(UploadId=upload_id) from None
            raise
        claimed = directory + _CLAIMED
        lock = None
        try:
            # Locked before the claim, held until the end: see _release_stale_claims.
            lock = open(os.path.join(directory, "upload.json"), "rb")  # noqa: SIM115
            fcntl.flock(lock, fcntl.LOCK_EX)
            os.rename(directory, claimed)
        except OSError as e:
            if lock is not None:
                lock.close()
            if s3_error_for(e) is not None:
                raise  # a read-only or forbidding file system, not a lost race
            raise NoSuchUpload(UploadId=upload_id) from None
        with lock:
            return self._assemble(
                bucket, key, upload, directory, claimed, requested, min_part_size, create_only
            )

    def _assemble(
        self,
        bucket: str,
        key: str,
        upload: UploadInfo,
        directory: str,
        claimed: str,
        requested: list[tuple[int, str]],
        min_part_size: int,
        create_only: bool = False,
    ) -> ObjectInfo:
        from s3proxy.storage.filesystem import KeyPath

        temp, out = "", None
        try:
            # Parts may have been replaced between the check and the claim: check again.
            chosen = select_parts(requested, self._parts(claimed), min_part_size)
            temp, out = self._storage._create_temp()
            for part in chosen:
                with open(os.path.join(claimed, _part_name(part.number)), "rb") as src:
                    _copy_range(src.fileno(), out.fileno(), part.size)
            # _commit_temp fsyncs it, with its metadata, and closes it.
            info = self._storage._commit_temp(
                temp,
                bucket,
                KeyPath(key),
                dataclasses.replace(upload.attributes, checksums=composite_checksums(chosen)),
                multipart_etag(chosen),
                tuple(p.size for p in chosen),
                create_only=create_only,
                file=out,
            )
        except BaseException:
            if out is not None:
                out.close()
            try:
                if temp:
                    os.unlink(temp)
            except FileNotFoundError:
                pass
            os.rename(claimed, directory)  # the upload can be completed again
            raise
        shutil.rmtree(claimed, ignore_errors=True)
        # Else a crash could bring the claim back, and the start-up would release it:
        # a completed upload listed again.
        self._storage._sync_dir(os.path.dirname(claimed))
        return info

    def abort(self, bucket: str, key: str, upload_id: str) -> None:
        directory, _ = self._load(bucket, key, upload_id)
        self._remove(directory, upload_id)

    def _remove(self, directory: str, upload_id: str) -> None:
        doomed = f"{directory}{_ABORTING}{uuid.uuid4().hex}"
        try:
            os.rename(directory, doomed)
        except OSError as e:
            if s3_error_for(e) is not None:
                raise  # a read-only or forbidding file system, not a lost race
            raise NoSuchUpload(UploadId=upload_id) from None
        self._storage._sync_dir(os.path.dirname(doomed))  # gone for good, even after a crash
        shutil.rmtree(doomed, ignore_errors=True)

    def _uploads(self, bucket: str) -> list[UploadInfo]:
        bucket_dir = os.path.join(self._root, bucket)
        try:
            entries = list(os.scandir(bucket_dir))
        except (FileNotFoundError, NotADirectoryError):
            return []
        uploads = []
        for entry in entries:
            try:
                check_upload_id(entry.name)
                uploads.append(self._read_upload(bucket, entry.path, entry.name))
            except NoSuchUpload:
                continue
        return uploads

    def list_uploads(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> UploadsPage:
        os.close(self._storage._open_bucket(bucket))
        return page_uploads(
            self._uploads(bucket), prefix, delimiter, key_marker, upload_id_marker, max_uploads
        )

    def expire(self, older_than: float) -> int:
        removed = 0
        for bucket in os.scandir(self._root):
            for upload in self._uploads(bucket.name):
                if upload.initiated < older_than:
                    try:
                        self._remove(os.path.join(bucket.path, upload.upload_id), upload.upload_id)
                        removed += 1
                    except NoSuchUpload:
                        pass
        return removed

    def remove_bucket(self, bucket: str) -> None:
        shutil.rmtree(os.path.join(self._root, bucket), ignore_errors=True)
