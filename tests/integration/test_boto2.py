"""The reference page's boto 2 examples ("Python S3 Client"), run as written against the
daemon's /api/v1/s3 prefix, and a few more boto 2 calls (listing, metadata, copy, URLs)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto
import boto.connection
import boto.provider
import boto.pyami.config
import boto.s3.connection
import boto.s3.key
import boto.s3.prefix
import pytest
import requests
from boto.exception import S3CreateError, S3ResponseError

from tests.integration.daemon import PREFIX, Daemon


@pytest.fixture
def conn(fs_daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The page's "Create a connection", with no user boto config in the way."""
    monkeypatch.setenv("BOTO_CONFIG", "/dev/null")
    monkeypatch.setenv("BOTO_PATH", "/dev/null")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # boto read its config at import: give every module that kept a reference an empty one.
    empty = boto.pyami.config.Config(path="/dev/null")
    for module in (boto, boto.connection, boto.provider):
        monkeypatch.setattr(module, "config", empty)
    return boto.connect_s3(
        aws_access_key_id="",
        aws_secret_access_key="",
        host="127.0.0.1",
        port=fs_daemon.port,
        path=PREFIX,
        is_secure=False,
        calling_format=boto.s3.connection.OrdinaryCallingFormat(),
    )


def unique(stem: str = "bucket-for-testing") -> str:
    return f"{stem}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def bucket2(conn: Any) -> Iterator[Any]:
    """A fresh bucket through boto 2, emptied and removed afterwards."""
    bucket = conn.create_bucket(unique())
    yield bucket
    try:
        for key in bucket.list():
            bucket.delete_key(key.name)
        conn.delete_bucket(bucket.name)
    except S3ResponseError:
        pass


def test_reference_example(conn: Any, fs_daemon: Daemon, tmp_path: Path) -> None:
    # Create a bucket
    bucketName = unique()  # noqa: N806 (the page's names)
    bucket = conn.create_bucket(bucketName)
    assert bucket.name == bucketName
    assert (fs_daemon.root / bucketName).is_dir()  # type: ignore[attr-defined]

    # PUT a small object
    smallObjectKey = "small.txt"  # noqa: N806
    smallObjectContent = "Hello World!"  # noqa: N806
    key = bucket.new_key(smallObjectKey)
    key.set_contents_from_string(smallObjectContent)

    # Get the small object (boto 2 on Python 3 answers bytes)
    assert smallObjectContent.encode() == key.get_contents_as_string()
    assert key.etag == f'"{hashlib.md5(smallObjectContent.encode()).hexdigest()}"'

    # Upload a large object: dd if=/dev/zero of=8mb.data bs=1048576 count=8
    largeObjectFile = tmp_path / "8mb.data"  # noqa: N806
    with open(largeObjectFile, "wb") as out:
        for _ in range(8):
            out.write(bytes(1048576))
    largeObjectKey = "large.txt"  # noqa: N806
    key = bucket.new_key(largeObjectKey)
    with open(largeObjectFile, "rb") as f:
        key.set_contents_from_file(f)
    with open(largeObjectFile, "rb") as f:
        largeObject = f.read()  # noqa: N806
    assert len(largeObject) == 8 * 1048576

    # Get the large object
    assert largeObject == key.get_contents_as_string()
    stored = fs_daemon.root / bucketName / largeObjectKey  # type: ignore[attr-defined]
    assert stored.stat().st_size == len(largeObject)

    # Delete the objects
    bucket.delete_key(smallObjectKey)
    bucket.delete_key(largeObjectKey)
    assert bucket.get_key(smallObjectKey) is None
    assert bucket.get_key(largeObjectKey) is None
    assert list(bucket.list()) == []

    # Delete the bucket
    conn.delete_bucket(bucketName)
    assert conn.lookup(bucketName) is None
    assert not (fs_daemon.root / bucketName).exists()  # type: ignore[attr-defined]


def test_get_all_buckets_and_errors(conn: Any, bucket2: Any) -> None:
    assert bucket2.name in [b.name for b in conn.get_all_buckets()]
    with pytest.raises(S3ResponseError) as info:
        conn.get_bucket(unique("no-such-bucket"))
    assert info.value.status == 404
    with pytest.raises(S3CreateError) as info:
        conn.create_bucket(bucket2.name)
    assert info.value.status == 409
    assert info.value.error_code == "BucketAlreadyOwnedByYou"
    bucket2.new_key("k").set_contents_from_string("v")
    with pytest.raises(S3ResponseError) as info:
        conn.delete_bucket(bucket2.name)
    assert info.value.status == 409
    assert info.value.error_code == "BucketNotEmpty"


def test_list_with_prefix_and_delimiter(bucket2: Any) -> None:
    names = ["docs/a.txt", "docs/b.txt", "docs/sub/c.txt", "img/x.png", "readme", "z top"]
    for name in names:
        bucket2.new_key(name).set_contents_from_string(name)

    assert [k.name for k in bucket2.list()] == sorted(names)
    assert [k.name for k in bucket2.list(prefix="docs/")] == sorted(
        n for n in names if n.startswith("docs/")
    )
    top = list(bucket2.list(delimiter="/"))
    # Keys are boto.s3.key.Key, common prefixes boto.s3.prefix.Prefix.
    assert sorted(k.name for k in top if isinstance(k, boto.s3.key.Key)) == ["readme", "z top"]
    assert sorted(p.name for p in top if isinstance(p, boto.s3.prefix.Prefix)) == [
        "docs/",
        "img/",
    ]
    under_docs = list(bucket2.list(prefix="docs/", delimiter="/"))
    assert sorted(k.name for k in under_docs if isinstance(k, boto.s3.key.Key)) == [
        "docs/a.txt",
        "docs/b.txt",
    ]
    assert [p.name for p in under_docs if isinstance(p, boto.s3.prefix.Prefix)] == ["docs/sub/"]
    sizes = {k.name: k.size for k in bucket2.list()}
    assert sizes == {n: len(n.encode()) for n in names}


def test_list_pages_through_many_keys(bucket2: Any) -> None:
    # boto 2 follows markers itself; max_keys makes it page.
    names = sorted(f"key-{i:03d}" for i in range(25))
    for name in names:
        bucket2.new_key(name).set_contents_from_string(name)
    page = bucket2.get_all_keys(max_keys=10)
    assert [k.name for k in page] == names[:10]
    assert page.is_truncated
    assert [k.name for k in bucket2.list()] == names


def test_metadata_round_trip(bucket2: Any) -> None:
    key = bucket2.new_key("with-meta")
    key.set_metadata("color", "blue")
    key.set_metadata("owner-name", "alice")
    key.set_contents_from_string("payload", headers={"Content-Type": "text/plain"})
    fetched = bucket2.get_key("with-meta")
    assert fetched.content_type == "text/plain"
    # S3 stores and returns metadata names in lower case.
    assert fetched.get_metadata("color") == "blue"
    assert fetched.get_metadata("owner-name") == "alice"
    assert fetched.metadata == {"color": "blue", "owner-name": "alice"}


def test_copy_key(bucket2: Any, conn: Any) -> None:
    source = bucket2.new_key("source & copy+1.txt")
    source.set_contents_from_string("copied bytes", headers={"Content-Type": "text/plain"})
    other = conn.create_bucket(unique())
    try:
        copied = other.copy_key("dest/copy.txt", bucket2.name, source.name)
        assert copied.name == "dest/copy.txt"
        fetched = other.get_key("dest/copy.txt")
        assert fetched.get_contents_as_string() == b"copied bytes"
        assert fetched.content_type == "text/plain"
        assert fetched.etag == f'"{hashlib.md5(b"copied bytes").hexdigest()}"'
        same_bucket = bucket2.copy_key("again", bucket2.name, source.name)
        assert same_bucket.name == "again"
        assert bucket2.get_key("again").get_contents_as_string() == b"copied bytes"
    finally:
        for key in other.list():
            other.delete_key(key.name)
        conn.delete_bucket(other.name)


def test_copy_key_keeps_metadata(bucket2: Any) -> None:
    source = bucket2.new_key("meta-source")
    source.set_metadata("color", "green")
    source.set_contents_from_string("x")
    bucket2.copy_key("meta-copy", bucket2.name, "meta-source")
    assert bucket2.get_key("meta-copy").get_metadata("color") == "green"


def test_generate_url_fetched_with_requests(bucket2: Any) -> None:
    data = os.urandom(4096)
    key = bucket2.new_key("dir/shared file.bin")
    key.set_contents_from_string(data)
    url = key.generate_url(300)
    assert PREFIX in url
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    head = requests.head(key.generate_url(300, method="HEAD"), timeout=10)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))


def test_missing_key_and_delete_of_missing_key(bucket2: Any) -> None:
    assert bucket2.get_key("never-written") is None
    # DeleteObject of a missing key succeeds, as on S3.
    bucket2.delete_key("never-written")
    with pytest.raises(S3ResponseError) as info:
        bucket2.new_key("never-written").get_contents_as_string()
    assert info.value.status == 404
    assert info.value.error_code == "NoSuchKey"
