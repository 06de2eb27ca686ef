"""Listings reuse what they read of each file's metadata record while the file's
stamp (inode, ctime; the sidecar's inode) is unchanged, and never trust a recent one."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool

from s3proxy.acl import AccessControl
from s3proxy.model import ObjectAttributes
from s3proxy.storage import fslistcache
from s3proxy.storage.filesystem import DirectoryCache, FilesystemStorage
from s3proxy.storage.fslistcache import ListingFieldCache
from s3proxy.storage.fsmeta import MetaRecord

KEYS = [f"k{i:03d}" for i in range(30)]
TICK = 0.05  # longer than the coarse clock tick of file times


def make_storage(root: Path, metadata: str) -> FilesystemStorage:
    fs = FilesystemStorage(str(root), reactor, ThreadPool(1, 1), metadata=metadata, fsync=False)
    fs._create_bucket("bkt", None)
    for key in KEYS:
        path = root / "bkt" / key
        path.write_bytes(key.encode())
        st = path.stat()
        attributes = ObjectAttributes(acl=AccessControl("id-" + key, "name-" + key))
        record = MetaRecord("etag-" + key, st.st_size, st.st_mtime_ns, attributes)
        fs.metadata.save("bkt", key, str(path), record)
    return fs


@pytest.fixture(params=["xattr", "sidecar"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FilesystemStorage]:
    yield make_storage(tmp_path / "root", request.param)


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every stamp old enough to trust, as it is seconds after a write."""
    later = time.time_ns() + 3600 * 10**9
    monkeypatch.setattr(fslistcache.time, "time_ns", lambda: later)


@pytest.fixture
def record_reads(monkeypatch: pytest.MonkeyPatch, storage: FilesystemStorage) -> list[str]:
    """The keys whose metadata record a listing reads."""
    seen: list[str] = []
    real: Callable[..., bytes | None] = storage.metadata.load_raw

    def counting(bucket: str, key: str, path: str, fd: int | None = None) -> bytes | None:
        seen.append(key)
        return real(bucket, key, path, fd)

    monkeypatch.setattr(storage.metadata, "load_raw", counting)
    return seen


def listing(fs: FilesystemStorage) -> dict[str, tuple[int, str, str]]:
    page = fs._list_objects("bkt", "", "", "", 1000)
    return {
        o.key: (o.size, o.etag, o.attributes.acl.owner_id if o.attributes.acl else "")
        for o in page.objects
    }


def test_second_listing_reads_no_record(
    storage: FilesystemStorage, trusted: None, record_reads: list[str]
) -> None:
    first = listing(storage)
    assert record_reads == KEYS
    record_reads.clear()
    assert listing(storage) == first
    assert record_reads == []
    assert first["k007"] == (4, "etag-k007", "id-k007")


def test_recent_files_are_read_every_time(
    storage: FilesystemStorage, record_reads: list[str]
) -> None:
    listing(storage)
    listing(storage)
    assert record_reads == KEYS + KEYS


def test_acl_change_is_seen(storage: FilesystemStorage, trusted: None) -> None:
    listing(storage)
    time.sleep(TICK)
    storage._put_object_acl("bkt", "k003", AccessControl("new-owner", "New"))
    assert listing(storage)["k003"] == (4, "etag-k003", "new-owner")


def test_foreign_rewrite_in_place_is_seen(storage: FilesystemStorage, trusted: None) -> None:
    before = listing(storage)
    time.sleep(TICK)
    path = Path(storage.root) / "bkt" / "k004"
    with open(path, "r+b") as f:
        f.write(b"longer now")
    size, etag, _owner = listing(storage)["k004"]
    assert size == len(b"longer now")
    assert etag != before["k004"][1]


def test_replaced_file_is_seen(storage: FilesystemStorage, trusted: None) -> None:
    listing(storage)
    path = Path(storage.root) / "bkt" / "k005"
    replacement = path.with_name("k005.new")
    replacement.write_bytes(b"k005")  # same size, new inode, no record
    os.replace(replacement, path)
    _size, etag, _owner = listing(storage)["k005"]
    assert etag != "etag-k005"


def test_cache_is_bounded_and_keeps_the_recently_used() -> None:
    cache = ListingFieldCache(size=2)
    old = time.time_ns() - 10 * 10**9
    cache.put("/a", (1,), old, ("ea", "", ""))
    cache.put("/b", (2,), old, ("eb", "", ""))
    assert cache.get("/a", (1,)) == ("ea", "", "")  # /a is now the most recent
    cache.put("/c", (3,), old, ("ec", "", ""))
    assert len(cache) == 2
    assert cache.get("/b", (2,)) is None
    assert cache.get("/a", (1,)) == ("ea", "", "")
    assert cache.get("/a", (9,)) is None  # another stamp: not this version
    cache.put("/d", (4,), time.time_ns(), ("ed", "", ""))  # racy: not kept
    assert cache.get("/d", (4,)) is None


def test_directory_listing_is_reused_while_its_old_mtime_stands(tmp_path: Path) -> None:
    cache = DirectoryCache()
    d = tmp_path / "d"
    d.mkdir()
    (d / "a").write_bytes(b"")
    old = time.time_ns() - 10 * 10**9
    os.utime(d, ns=(old, old))
    assert cache.entries(str(d)) == (["a"], [False])
    (d / "b").write_bytes(b"")
    os.utime(d, ns=(old, old))  # the same mtime: the cached listing stands
    assert cache.entries(str(d)) == (["a"], [False])


def test_recent_directory_is_read_every_time(tmp_path: Path) -> None:
    cache = DirectoryCache()
    d = tmp_path / "d"
    d.mkdir()
    (d / "a").write_bytes(b"")
    st = d.stat()
    assert cache.entries(str(d)) == (["a"], [False])
    # A second change within one tick of the file system's clock: the same mtime.
    (d / "b").write_bytes(b"")
    os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.entries(str(d)) == (["a", "b"], [False, False])


def test_entries_share_their_owners_strings() -> None:
    """Many files, few owners: a full cache keeps one copy of each owner's strings."""
    cache = fslistcache.ListingFieldCache()
    settled = time.time_ns() - 10 * fslistcache.RACY_NS
    owner = "".join(["0123456789abcdef"] * 4)
    for name in ("a", "b"):
        copy = "".join(["0123456789abcdef"] * 4)  # equal, not the same object
        cache.put(name, (1, 2), settled, (name * 32, copy, "".join(["own", "er"])))
    first, second = cache.get("a", (1, 2)), cache.get("b", (1, 2))
    assert first is not None and second is not None
    assert first[1] == second[1] == owner
    assert first[1] is second[1] and first[2] is second[2]
