"""Keys to paths in the filesystem backend (both metadata modes), with generated keys.

Any key S3 accepts (valid UTF-8 up to 1024 bytes, XML-safe: '/', '.', '..', '//',
unicode, tabs and newlines included) is either stored and then listed, read and
deleted as itself, or refused with InvalidArgument exactly when it has a path segment
the file system cannot hold ('', '.', '..', over 255 bytes). Nothing is ever created
outside the root, and a key S3 would not accept is refused with an S3Error, never an
OSError or ValueError, at every entry point.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from s3proxy.errors import (
    ExistingObjectIsDirectory,
    InvalidArgument,
    NoSuchKey,
    ObjectParentIsFile,
    S3Error,
)
from s3proxy.model import ObjectAttributes
from s3proxy.names import MAX_KEY_BYTES, check_key, is_xml_safe
from s3proxy.storage.filesystem import INTERNAL_DIR
from tests.fuzz.conftest import scaled
from tests.fuzz.fsbackend import BUCKET, Backend, get, listing, metadata_modes, put

CONFLICTS = (InvalidArgument, ObjectParentIsFile, ExistingObjectIsDirectory)


def storable(key: str) -> bool:
    """The backend's documented rule: no '', '.', '..' segment, none over 255 bytes
    (a trailing '/' makes a directory marker, and is not an empty segment)."""
    segments = (key[:-1] if key.endswith("/") else key).split("/")
    return all(s not in ("", ".", "..") and len(s.encode()) <= 255 for s in segments)


segments = st.one_of(
    st.sampled_from(
        [
            "",
            ".",
            "..",
            "...",
            "a",
            "A",
            "\u00fc",
            "\u65e5\u672c",
            " ",
            "\t",
            "\n",
            "\r",
            "%2F",
            "a.b",
            "-",
            "~",
            "\u00a0",
            "\U0001f600",
            ".hidden",
        ]
    ),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.integers(250, 260).map(lambda n: "x" * n),
    st.integers(125, 130).map(lambda n: "\u00e9" * n),  # two bytes each
)
raw_keys = st.lists(segments, min_size=1, max_size=6).map("/".join)


def is_s3_key(key: str) -> bool:
    return 0 < len(key.encode("utf-8")) <= MAX_KEY_BYTES and is_xml_safe(key)


valid_keys = raw_keys.filter(is_s3_key)


@settings(max_examples=scaled(60))
@given(metadata=metadata_modes, key=valid_keys, data=st.binary(max_size=64))
@example(metadata="sidecar", key="a/../b", data=b"x")
@example(metadata="sidecar", key="../../outside", data=b"x")
@example(metadata="sidecar", key="a//b", data=b"x")
@example(metadata="sidecar", key="dir/", data=b"")
@example(metadata="sidecar", key="x" * 255 + "/" + "y" * 255 + "/" + "z" * 255, data=b"x")
def test_any_key_round_trips_or_is_refused(metadata: str, key: str, data: bytes) -> None:
    backend = Backend(metadata)
    try:
        backend.loop.run(one_key(backend, key, data))
    finally:
        backend.close()


async def one_key(backend: Backend, key: str, data: bytes) -> None:
    storage = backend.storage
    await storage.create_bucket(BUCKET)
    if key.endswith("/"):
        data = b""  # a directory marker holds no bytes
    try:
        await put(storage, key, data)
    except InvalidArgument:
        assert not storable(key), key
        assert backend.bucket_files() == set()
        assert await listing(storage, 1000) == []
        assert backend.escaped() == []
        return
    assert storable(key), key
    assert await listing(storage, 1000) == [key]
    assert await get(storage, key) == data
    info = await storage.head_object(BUCKET, key)
    assert (info.key, info.size) == (key, len(data))
    # The object is the plain file (or, for a marker, directory) the key names.
    assert (backend.root / BUCKET / key).exists()
    assert backend.escaped() == []
    await storage.delete_object(BUCKET, key)
    assert await listing(storage, 1000) == []
    assert backend.bucket_files() == set()  # implicit parent directories go too


@settings(max_examples=scaled(40))
@given(
    metadata=metadata_modes,
    keys=st.lists(
        st.lists(
            st.sampled_from(["a", "b", "a.b", "\u00fc", " ", "a!", "a0", ""]),
            min_size=1,
            max_size=3,
        )
        .map("/".join)
        .filter(is_s3_key),
        max_size=10,
    ),
    page_size=st.integers(1, 4),
)
def test_many_keys_list_in_s3_order(metadata: str, keys: list[str], page_size: int) -> None:
    """Keys that share directories: each is stored or refused with a conflict error,
    and the listing, in pages, is exactly the stored keys in S3 (code point) order."""
    backend = Backend(metadata)
    try:
        backend.loop.run(many_keys(backend, keys, page_size))
    finally:
        backend.close()


async def many_keys(backend: Backend, keys: list[str], page_size: int) -> None:
    storage = backend.storage
    await storage.create_bucket(BUCKET)
    stored: dict[str, bytes] = {}
    for n, key in enumerate(keys):
        data = b"" if key.endswith("/") else str(n).encode()
        try:
            await put(storage, key, data)
        except CONFLICTS:
            continue
        stored[key] = data
    assert await listing(storage, page_size) == sorted(stored)
    for key, data in stored.items():
        assert await get(storage, key) == data
    assert backend.escaped() == []


bad_keys = st.one_of(
    raw_keys.filter(lambda k: not is_s3_key(k)),
    st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=5).filter(
        lambda k: not is_s3_key(k)
    ),
    st.just("x" * 1025),
    st.just("a\x00b"),
    st.just("\ud800"),
    st.just(""),
)


@settings(max_examples=scaled(40))
@given(metadata=metadata_modes, key=bad_keys)
@example(metadata="xattr", key="a\x00b")
@example(metadata="sidecar", key="dir/\x00")
@example(metadata="xattr", key="/".join(["y" * 250] * 20))
def test_keys_s3_refuses_never_raise_os_errors(metadata: str, key: str) -> None:
    """check_key (what the web layer calls) refuses them with an S3Error, and the
    backend itself, called directly, fails every operation with an S3Error too."""
    with pytest.raises(S3Error) as refused:
        check_key(key)
    assert refused.value.status == 400
    backend = Backend(metadata)
    try:
        backend.loop.run(bad_key(backend, key))
    finally:
        backend.close()


async def bad_key(backend: Backend, key: str) -> None:
    storage = backend.storage
    await storage.create_bucket(BUCKET)
    await put(storage, "present", b"p")
    attempts = [
        lambda: put(storage, key, b"x"),
        lambda: get(storage, key),
        lambda: storage.head_object(BUCKET, key),
        lambda: storage.delete_object(BUCKET, key),
        lambda: storage.copy_object(BUCKET, "present", BUCKET, key, None),
        lambda: storage.create_multipart_upload(BUCKET, key, ObjectAttributes()),
    ]
    for attempt in attempts:
        try:
            await attempt()
        except S3Error as e:
            assert e.status in (400, 404), repr(e)
        except NoSuchKey:
            pass
    # Keys over 1024 bytes are refused by check_key in the web layer; the backend
    # itself may store one whose segments it can hold.
    assert await listing(storage, 1000) in (["present"], sorted(["present", key]))
    assert backend.escaped() == []
    assert os.listdir(backend.root / INTERNAL_DIR / "tmp") == []
