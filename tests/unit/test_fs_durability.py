"""``--durability fsync``: before an operation's Deferred fires, the data (with its
xattr record) is fsynced, then renamed into place, then its directory is fsynced; a
sidecar record likewise. Proved by recording, in order, every fsync, rename, link,
unlink and setxattr the filesystem backend makes (the real calls still run).
``--durability none``: no fsync at all."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet.interfaces import IReactorThreads
from twisted.python.threadpool import ThreadPool

from s3proxy.model import ObjectAttributes
from s3proxy.storage.filesystem import INTERNAL_DIR, FilesystemStorage
from s3proxy.storage.fsmeta import SidecarMetadata

BUCKET = "bkt"
BODY = b"durable bytes " * 1000


@dataclass(frozen=True)
class Event:
    op: str  # fsync, rename, link, unlink, setxattr, fired
    path: str = ""  # fsync/setxattr: the file; rename/link: destination; unlink: gone
    inode: int = 0  # of the file synced, set, or moved
    source: str = ""


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def _at(path: Any, dir_fd: int | None) -> str:
    path = os.fsdecode(path)
    if dir_fd is None or os.path.isabs(path):
        return os.path.abspath(path)
    return os.path.join(_fd_path(dir_fd), path)


class Recorder:
    """Wraps the os calls that decide durability; keeps them in call order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()
        real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace
        real_link, real_unlink, real_setxattr = os.link, os.unlink, os.setxattr

        def add(event: Event) -> None:
            with self._lock:
                self.events.append(event)

        def fsync(fd: int) -> None:
            add(Event("fsync", _fd_path(fd), os.fstat(fd).st_ino))
            real_fsync(fd)

        def moving(real: Callable[..., None], op: str) -> Callable[..., None]:
            def move(
                src: Any, dst: Any, src_dir_fd: Any = None, dst_dir_fd: Any = None, **kw: Any
            ) -> None:
                source = _at(src, src_dir_fd)
                inode = os.stat(source, follow_symlinks=False).st_ino
                real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, **kw)
                add(Event(op, _at(dst, dst_dir_fd), inode, source))

            return move

        def unlink(path: Any, *, dir_fd: Any = None) -> None:
            gone = _at(path, dir_fd)
            real_unlink(path, dir_fd=dir_fd)
            add(Event("unlink", gone))

        def setxattr(target: Any, *args: Any, **kw: Any) -> None:
            real_setxattr(target, *args, **kw)
            if isinstance(target, int):
                add(Event("setxattr", _fd_path(target), os.fstat(target).st_ino))
            else:
                add(Event("setxattr", os.path.abspath(target), os.stat(target).st_ino))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "rename", moving(real_rename, "rename"))
        monkeypatch.setattr(os, "replace", moving(real_replace, "rename"))
        monkeypatch.setattr(os, "link", moving(real_link, "link"))
        monkeypatch.setattr(os, "unlink", unlink)
        monkeypatch.setattr(os, "setxattr", setxattr)

    def start(self) -> None:
        with self._lock:
            self.events.clear()

    def fired(self) -> list[Event]:
        """The events so far, ending with the Deferred having fired."""
        with self._lock:
            self.events.append(Event("fired"))
            return list(self.events)


def index(events: list[Event], match: Callable[[Event], bool], what: str) -> int:
    found = [i for i, e in enumerate(events) if match(e)]
    assert found, f"no {what} in {events}"
    return found[0]


def renamed_to(path: str) -> Callable[[Event], bool]:
    return lambda e: e.op == "rename" and e.path == path


def assert_committed(events: list[Event], target: Path, fs: FilesystemStorage) -> None:
    """``target`` arrived by a rename (or link) of a file fsynced before it (after its
    xattr was set, with xattrs), its directory was fsynced after it, and its sidecar
    record was made durable before it: all before the Deferred fired."""
    fired = index(events, lambda e: e.op == "fired", "fired")
    moved = index(events, lambda e: e.op in ("rename", "link") and e.path == str(target), "rename")
    inode = events[moved].inode
    synced = index(events, lambda e: e.op == "fsync" and e.inode == inode, "data fsync")
    assert synced < moved, events
    if fs.metadata.name == "xattr":
        set_at = index(events, lambda e: e.op == "setxattr" and e.inode == inode, "setxattr")
        assert set_at < synced, "the xattr record is set before the fsync that makes it durable"
    else:
        assert_sidecar_durable(events, fs, target, before=moved)
    dir_synced = [
        i
        for i, e in enumerate(events)
        if e.op == "fsync" and e.path == str(target.parent) and moved < i < fired
    ]
    assert dir_synced, f"no fsync of {target.parent} after the rename: {events}"


def assert_sidecar_durable(
    events: list[Event], fs: FilesystemStorage, target: Path, before: int
) -> None:
    bucket_dir = Path(fs.root) / BUCKET
    key = str(target.relative_to(bucket_dir))
    meta = cast(SidecarMetadata, fs.metadata)
    record = Path(meta._path(BUCKET, key))
    placed = [i for i, e in enumerate(events) if e.op == "rename" and e.path == str(record)]
    assert placed and placed[-1] < before, f"sidecar record not placed before the data: {events}"
    last = placed[-1]
    inode = events[last].inode
    assert any(e.op == "fsync" and e.inode == inode for e in events[:last]), events
    assert any(e.op == "fsync" and e.path == str(record.parent) for e in events[last:before]), (
        events
    )


def the_reactor() -> IReactorThreads:
    from twisted.internet import reactor

    return cast(IReactorThreads, reactor)


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    pool = ThreadPool(minthreads=0, maxthreads=2, name="durability")
    pool.start()
    yield pool
    pool.stop()


@pytest.fixture(params=["xattr", "sidecar"])
def metadata(request: pytest.FixtureRequest) -> str:
    return cast(str, request.param)


def storage(tmp_path: Path, pool: ThreadPool, metadata: str, fsync: bool) -> FilesystemStorage:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return FilesystemStorage(str(root), the_reactor(), pool, metadata=metadata, fsync=fsync)


async def put(fs: FilesystemStorage, key: str, body: bytes) -> None:
    writer = await fs.open_writer(BUCKET, key, ObjectAttributes(), None, len(body))
    writer.write(body)
    await writer.finish()


async def exercise(fs: FilesystemStorage, recorder: Recorder) -> dict[str, list[Event]]:
    """Every operation that must be durable, each with the events it caused."""
    seen: dict[str, list[Event]] = {}
    recorder.start()
    await fs.create_bucket(BUCKET)
    seen["create_bucket"] = recorder.fired()
    recorder.start()
    await put(fs, "new/dirs/obj", BODY)
    seen["put"] = recorder.fired()
    recorder.start()
    upload = await fs.create_multipart_upload(BUCKET, "mp", ObjectAttributes())
    seen["create_upload"] = recorder.fired()
    etags = []
    for number in (1, 2):
        recorder.start()
        writer = await fs.open_part_writer(BUCKET, "mp", upload.upload_id, number, None, None)
        writer.write(BODY)
        etags.append((number, (await writer.finish()).etag))
        seen[f"part{number}"] = recorder.fired()
    recorder.start()
    await fs.complete_multipart_upload(BUCKET, "mp", upload.upload_id, etags, 0)
    seen["complete"] = recorder.fired()
    recorder.start()
    await fs.copy_object(BUCKET, "new/dirs/obj", BUCKET, "copy", None)
    seen["copy"] = recorder.fired()
    recorder.start()
    await fs.delete_object(BUCKET, "copy")
    seen["delete"] = recorder.fired()
    doomed = await fs.create_multipart_upload(BUCKET, "ab", ObjectAttributes())
    recorder.start()
    await fs.abort_multipart_upload(BUCKET, "ab", doomed.upload_id)
    seen["abort"] = recorder.fired()
    return seen


@pytest_twisted.ensureDeferred
async def test_fsync_orders_data_rename_directory(
    tmp_path: Path, pool: ThreadPool, metadata: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = storage(tmp_path, pool, metadata, fsync=True)
    recorder = Recorder(monkeypatch)
    seen = await exercise(fs, recorder)
    root = Path(fs.root)
    bucket = root / BUCKET

    # CreateBucket: the bucket's record and directory entries.
    events = seen["create_bucket"]
    records = root / INTERNAL_DIR / "buckets"
    placed = index(events, lambda e: e.op == "rename" and e.path == str(records / BUCKET), "rec")
    assert any(e.op == "fsync" and e.inode == events[placed].inode for e in events[:placed])
    assert any(e.op == "fsync" and e.path == str(records) for e in events[placed:])
    assert any(e.op == "fsync" and e.path == str(root) for e in events)

    # PutObject into directories it creates: each new directory's entry is durable too.
    events = seen["put"]
    assert_committed(events, bucket / "new" / "dirs" / "obj", fs)
    for parent in (bucket, bucket / "new"):
        assert any(e.op == "fsync" and e.path == str(parent) for e in events), parent

    # CreateMultipartUpload: its record and directory survive a crash.
    upload_dirs = root / INTERNAL_DIR / "uploads" / BUCKET
    events = seen["create_upload"]
    record = index(events, lambda e: e.op == "rename" and e.path.endswith("upload.json"), "rec")
    assert any(e.op == "fsync" and e.inode == events[record].inode for e in events[:record])
    upload_dir = Path(events[record].path).parent
    for directory in (upload_dir, upload_dirs):
        assert any(e.op == "fsync" and e.path == str(directory) for e in events[record:])

    # UploadPart: the part's record and data, then the upload's directory.
    for number in (1, 2):
        events = seen[f"part{number}"]
        fired = len(events) - 1
        part = upload_dir / f"{number:05d}"
        for name in (f"{part}.json", str(part)):
            moved = index(events, renamed_to(name), name)
            inode = events[moved].inode
            assert any(e.op == "fsync" and e.inode == inode for e in events[:moved]), name
            assert any(
                e.op == "fsync" and e.path == str(upload_dir) for e in events[moved:fired]
            ), name

    # CompleteMultipartUpload, CopyObject: like a PUT. A completed upload is gone
    # durably (else a crash could bring it back).
    events = seen["complete"]
    assert_committed(events, bucket / "mp", fs)
    moved = index(events, renamed_to(str(bucket / "mp")), "rename")
    assert any(e.op == "fsync" and e.path == str(upload_dirs) for e in events[moved:-1])
    assert_committed(seen["copy"], bucket / "copy", fs)

    # DeleteObject: the directory entry's removal is durable before the Deferred fires.
    events = seen["delete"]
    gone = index(events, lambda e: e.op == "unlink" and e.path == str(bucket / "copy"), "unlink")
    assert any(e.op == "fsync" and e.path == str(bucket) for e in events[gone:-1]), events

    # AbortMultipartUpload: the upload's removal is durable before the Deferred fires.
    events = seen["abort"]
    doomed = index(events, lambda e: e.op == "rename" and ".aborting-" in e.path, "rename")
    assert any(e.op == "fsync" and e.path == str(upload_dirs) for e in events[doomed:-1])

    # And the data is what was written.
    assert (bucket / "mp").read_bytes() == BODY + BODY
    assert (
        hashlib.md5((bucket / "new/dirs/obj").read_bytes()).digest() == hashlib.md5(BODY).digest()
    )


@pytest_twisted.ensureDeferred
async def test_durability_none_never_fsyncs(
    tmp_path: Path, pool: ThreadPool, metadata: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = storage(tmp_path, pool, metadata, fsync=False)
    recorder = Recorder(monkeypatch)
    seen = await exercise(fs, recorder)
    for name, events in seen.items():
        assert [e for e in events if e.op == "fsync"] == [], name
        # The same commits happened, just without the syncs.
        assert any(e.op in ("rename", "link", "unlink") for e in events), name
    assert (Path(fs.root) / BUCKET / "mp").read_bytes() == BODY + BODY
