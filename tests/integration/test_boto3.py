"""boto3 with default settings (uploads go aws-chunked with a CRC trailer) against the
filesystem daemon and a memory daemon: every implemented operation, as S3 answers it."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from lxml import etree

from tests.integration.conftest import boto3_client
from tests.integration.daemon import Daemon

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def memory_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One memory-backed daemon for this module, started like ``make_daemon("memory:")``
    does, but shared: a daemon per test would cost a second each."""
    workdir = tmp_path_factory.mktemp("memory-daemon")
    daemon = Daemon(backend="memory:", workdir=workdir).start()
    yield daemon
    daemon.stop()


@pytest.fixture(params=["file", "memory"])
def daemon(request: pytest.FixtureRequest) -> Daemon:
    name = "fs_daemon" if request.param == "file" else "memory_daemon"
    found: Daemon = request.getfixturevalue(name)
    return found


@pytest.fixture
def client(daemon: Daemon) -> Any:
    return boto3_client(daemon.endpoint)


def unique(stem: str = "boto3") -> str:
    return f"{stem}-{uuid.uuid4().hex[:16]}"


def empty_and_delete(client: Any, name: str) -> None:
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys})
        client.delete_bucket(Bucket=name)
    except ClientError:
        pass


@pytest.fixture
def bkt(client: Any) -> Iterator[str]:
    name = unique()
    client.create_bucket(Bucket=name)
    yield name
    empty_and_delete(client, name)


def error_of(call: Callable[[], object]) -> ClientError:
    with pytest.raises(ClientError) as info:
        call()
    return info.value


def code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def status(error: ClientError) -> int:
    return int(error.response["ResponseMetadata"]["HTTPStatusCode"])


def quoted_md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def utf8_order(keys: list[str] | set[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode("utf-8"))


# Buckets


def test_bucket_lifecycle(client: Any) -> None:
    name = unique()
    created = client.create_bucket(Bucket=name)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert created["Location"] == f"/{name}"
    head = client.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert name in [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert client.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    deleted = client.delete_bucket(Bucket=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert status(error_of(lambda: client.head_bucket(Bucket=name))) == 404
    assert name not in [b["Name"] for b in client.list_buckets()["Buckets"]]


def test_list_buckets_shows_creation_dates_and_owner(client: Any) -> None:
    names = sorted(unique("lb") for _ in range(3))
    before = datetime.now(UTC) - timedelta(seconds=5)
    for name in names:
        client.create_bucket(Bucket=name)
    try:
        listed = client.list_buckets()
        ours = [b for b in listed["Buckets"] if b["Name"] in names]
        assert [b["Name"] for b in ours] == names
        for b in ours:
            assert before <= b["CreationDate"] <= datetime.now(UTC) + timedelta(seconds=5)
        assert listed["Owner"]["ID"]
        all_names = [b["Name"] for b in listed["Buckets"]]
        assert all_names == sorted(all_names)
    finally:
        for name in names:
            client.delete_bucket(Bucket=name)


def test_create_bucket_with_location_constraint(client: Any) -> None:
    name = unique()
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    client.head_bucket(Bucket=name)
    client.delete_bucket(Bucket=name)


def test_bucket_already_owned_by_you(client: Any, bkt: str) -> None:
    error = error_of(lambda: client.create_bucket(Bucket=bkt))
    assert code(error) == "BucketAlreadyOwnedByYou"
    assert status(error) == 409


def test_bucket_not_empty(client: Any, bkt: str) -> None:
    client.put_object(Bucket=bkt, Key="k", Body=b"v")
    error = error_of(lambda: client.delete_bucket(Bucket=bkt))
    assert code(error) == "BucketNotEmpty"
    assert status(error) == 409
    client.head_bucket(Bucket=bkt)
    assert client.get_object(Bucket=bkt, Key="k")["Body"].read() == b"v"


def test_no_such_bucket(client: Any) -> None:
    name = unique("missing")
    for call in (
        lambda: client.list_objects(Bucket=name),
        lambda: client.list_objects_v2(Bucket=name),
        lambda: client.get_object(Bucket=name, Key="k"),
        lambda: client.put_object(Bucket=name, Key="k", Body=b"v"),
        lambda: client.delete_bucket(Bucket=name),
        lambda: client.get_bucket_location(Bucket=name),
    ):
        error = error_of(call)
        assert code(error) == "NoSuchBucket"
        assert status(error) == 404
        assert error.response["Error"]["BucketName"] == name
    assert status(error_of(lambda: client.head_bucket(Bucket=name))) == 404


def test_invalid_bucket_name(client: Any) -> None:
    error = error_of(lambda: client.create_bucket(Bucket="Bad_Name"))
    assert code(error) == "InvalidBucketName"
    assert status(error) == 400
    assert "Bad_Name" not in [b["Name"] for b in client.list_buckets()["Buckets"]]


# Objects


def test_put_get_head_delete_object(client: Any, bkt: str) -> None:
    data = os.urandom(100_000)
    put = client.put_object(Bucket=bkt, Key="dir/object.bin", Body=data)
    assert put["ETag"] == quoted_md5(data)
    got = client.get_object(Bucket=bkt, Key="dir/object.bin")
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert got["ETag"] == quoted_md5(data)
    assert got["ContentType"] == "binary/octet-stream"
    assert got["AcceptRanges"] == "bytes"
    head = client.head_object(Bucket=bkt, Key="dir/object.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == quoted_md5(data)
    assert head["LastModified"] == got["LastModified"]
    assert abs(head["LastModified"] - datetime.now(UTC)) < timedelta(minutes=1)
    deleted = client.delete_object(Bucket=bkt, Key="dir/object.bin")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    error = error_of(lambda: client.get_object(Bucket=bkt, Key="dir/object.bin"))
    assert code(error) == "NoSuchKey"
    assert status(error) == 404
    assert status(error_of(lambda: client.head_object(Bucket=bkt, Key="dir/object.bin"))) == 404
    # Deleting a missing key succeeds.
    again = client.delete_object(Bucket=bkt, Key="dir/object.bin")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_overwrite_and_empty_object(client: Any, bkt: str) -> None:
    client.put_object(Bucket=bkt, Key="k", Body=b"first version")
    client.put_object(Bucket=bkt, Key="k", Body=b"second")
    assert client.get_object(Bucket=bkt, Key="k")["Body"].read() == b"second"
    put = client.put_object(Bucket=bkt, Key="empty", Body=b"")
    assert put["ETag"] == quoted_md5(b"")
    got = client.get_object(Bucket=bkt, Key="empty")
    assert got["ContentLength"] == 0
    assert got["Body"].read() == b""


def test_standard_headers_round_trip(client: Any, bkt: str) -> None:
    expires = datetime(2031, 5, 17, 10, 30, 0, tzinfo=UTC)
    sent = {
        "ContentType": "text/csv; charset=utf-8",
        "ContentEncoding": "gzip",
        "ContentDisposition": 'attachment; filename="report.csv"',
        "CacheControl": "max-age=3600, private",
        "ContentLanguage": "de-CH",
    }
    client.put_object(Bucket=bkt, Key="headers", Body=b"a,b\n1,2\n", Expires=expires, **sent)
    for response in (
        client.head_object(Bucket=bkt, Key="headers"),
        client.get_object(Bucket=bkt, Key="headers"),
    ):
        for name, value in sent.items():
            assert response[name] == value, name
        assert response["Expires"] == expires


def test_user_metadata_round_trip(client: Any, bkt: str) -> None:
    metadata = {"color": "blue", "owner-name": "alice", "empty": ""}
    client.put_object(Bucket=bkt, Key="meta", Body=b"x", Metadata=metadata)
    assert client.head_object(Bucket=bkt, Key="meta")["Metadata"] == metadata
    assert client.get_object(Bucket=bkt, Key="meta")["Metadata"] == metadata


def test_user_metadata_names_are_lower_cased(client: Any, bkt: str) -> None:
    # S3 keeps x-amz-meta-* names in lower case, whatever case the client sent.
    client.put_object(Bucket=bkt, Key="meta", Body=b"x", Metadata={"Mixed-Case": "v"})
    assert client.head_object(Bucket=bkt, Key="meta")["Metadata"] == {"mixed-case": "v"}


def test_content_md5_correct(client: Any, bkt: str) -> None:
    data = b"checked payload"
    digest = base64.b64encode(hashlib.md5(data).digest()).decode()
    put = client.put_object(Bucket=bkt, Key="md5", Body=data, ContentMD5=digest)
    assert put["ETag"] == quoted_md5(data)
    assert client.get_object(Bucket=bkt, Key="md5")["Body"].read() == data


def test_content_md5_wrong_stores_nothing(client: Any, bkt: str) -> None:
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    error = error_of(
        lambda: client.put_object(Bucket=bkt, Key="new", Body=b"payload", ContentMD5=wrong)
    )
    assert code(error) == "BadDigest"
    assert status(error) == 400
    assert status(error_of(lambda: client.head_object(Bucket=bkt, Key="new"))) == 404
    assert "Contents" not in client.list_objects_v2(Bucket=bkt)


def test_content_md5_wrong_keeps_previous_content(client: Any, bkt: str) -> None:
    client.put_object(Bucket=bkt, Key="old", Body=b"previous content")
    wrong = base64.b64encode(hashlib.md5(b"not the body").digest()).decode()
    error = error_of(
        lambda: client.put_object(Bucket=bkt, Key="old", Body=b"replacement", ContentMD5=wrong)
    )
    assert code(error) == "BadDigest"
    got = client.get_object(Bucket=bkt, Key="old")
    assert got["Body"].read() == b"previous content"
    assert got["ETag"] == quoted_md5(b"previous content")


def test_invalid_content_md5(client: Any, bkt: str) -> None:
    error = error_of(
        lambda: client.put_object(Bucket=bkt, Key="k", Body=b"x", ContentMD5="not-base64!")
    )
    assert code(error) == "InvalidDigest"
    assert status(error) == 400


def test_ranges(client: Any, bkt: str) -> None:
    data = os.urandom(1000)
    size = len(data)
    client.put_object(Bucket=bkt, Key="r", Body=data)
    cases = {
        "bytes=0-9": (0, 9),
        "bytes=10-": (10, size - 1),
        "bytes=-5": (size - 5, size - 1),
        "bytes=990-5000": (990, size - 1),
        "bytes=-5000": (0, size - 1),
    }
    for header, (first, last) in cases.items():
        got = client.get_object(Bucket=bkt, Key="r", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert got["Body"].read() == data[first : last + 1], header
        assert got["ContentLength"] == last - first + 1, header
        assert got["ContentRange"] == f"bytes {first}-{last}/{size}", header
    head = client.head_object(Bucket=bkt, Key="r", Range="bytes=0-9")
    assert head["ContentLength"] == 10
    assert head["ContentRange"] == f"bytes 0-9/{size}"


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-1010", "bytes=5000-"])
def test_unsatisfiable_range(client: Any, bkt: str, header: str) -> None:
    client.put_object(Bucket=bkt, Key="r", Body=os.urandom(1000))
    error = error_of(lambda: client.get_object(Bucket=bkt, Key="r", Range=header))
    assert code(error) == "InvalidRange"
    assert status(error) == 416
    assert error.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == "bytes */1000"


def test_conditional_get(client: Any, bkt: str) -> None:
    data = b"conditional"
    client.put_object(Bucket=bkt, Key="c", Body=data)
    head = client.head_object(Bucket=bkt, Key="c")
    etag, modified = head["ETag"], head["LastModified"]
    assert etag == quoted_md5(data)
    earlier, later = modified - timedelta(hours=1), modified + timedelta(hours=1)

    def get(**conditions: Any) -> Any:
        return client.get_object(Bucket=bkt, Key="c", **conditions)

    assert get(IfMatch=etag)["Body"].read() == data
    assert get(IfNoneMatch='"0123456789abcdef0123456789abcdef"')["Body"].read() == data
    assert get(IfModifiedSince=earlier)["Body"].read() == data
    assert get(IfUnmodifiedSince=later)["Body"].read() == data

    failed = error_of(lambda: get(IfMatch='"0123456789abcdef0123456789abcdef"'))
    assert status(failed) == 412
    assert code(failed) == "PreconditionFailed"
    failed = error_of(lambda: get(IfUnmodifiedSince=earlier))
    assert status(failed) == 412
    assert code(failed) == "PreconditionFailed"
    assert status(error_of(lambda: get(IfNoneMatch=etag))) == 304
    assert status(error_of(lambda: get(IfModifiedSince=later))) == 304
    # If-Match wins over a failing If-Unmodified-Since; If-None-Match over If-Modified-Since.
    assert get(IfMatch=etag, IfUnmodifiedSince=earlier)["Body"].read() == data
    assert status(error_of(lambda: get(IfNoneMatch=etag, IfModifiedSince=earlier))) == 304
    assert status(error_of(lambda: client.head_object(Bucket=bkt, Key="c", IfMatch='"x"'))) == 412
    assert (
        status(error_of(lambda: client.head_object(Bucket=bkt, Key="c", IfNoneMatch=etag))) == 304
    )


def test_response_header_overrides(client: Any, bkt: str) -> None:
    client.put_object(Bucket=bkt, Key="o", Body=b"data", ContentType="text/plain")
    expires = datetime(2032, 1, 2, 3, 4, 5, tzinfo=UTC)
    overrides = {
        "ResponseContentType": "application/json",
        "ResponseContentDisposition": 'inline; filename="o.json"',
        "ResponseCacheControl": "no-store",
        "ResponseContentLanguage": "fr",
        "ResponseContentEncoding": "identity",
    }
    got = client.get_object(Bucket=bkt, Key="o", ResponseExpires=expires, **overrides)
    assert got["Body"].read() == b"data"
    for param, value in overrides.items():
        assert got[param[len("Response") :]] == value, param
    assert got["Expires"] == expires
    # Overrides do not change what is stored.
    assert client.head_object(Bucket=bkt, Key="o")["ContentType"] == "text/plain"


# Listing

SPECIAL_KEYS = [
    "plain",
    "with space",
    "plus+sign",
    "percent%20literal",
    "amp&ersand",
    "less<than>",
    "quote'\"",
    "unicodé/ключ/鍵",
    "emoji-\U0001f600",
    "dir/sub/deep.txt",
    "dir/top.txt",
    "dir2/x",
    "a-b",
    "a.b",
    "a/b",
    "a0",
    "ab",
    "tilde~star*",
    "question?hash#",
]


def ordering_keys(daemon: Daemon) -> list[str]:
    keys = list(SPECIAL_KEYS)
    if daemon.backend == "memory:":
        # The filesystem backend cannot hold a file "a" beside the directory of "a/b".
        keys.append("a")
    return keys


def put_keys(client: Any, bucket: str, keys: list[str]) -> None:
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())


def test_list_objects_v2_paginator_collects_all(client: Any, bkt: str, daemon: Daemon) -> None:
    keys = ordering_keys(daemon)
    put_keys(client, bkt, keys)
    listed: list[str] = []
    pages = 0
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bkt, PaginationConfig={"PageSize": 4}
    ):
        pages += 1
        assert page["KeyCount"] == len(page.get("Contents", []))
        assert page["KeyCount"] <= 4
        listed += [o["Key"] for o in page.get("Contents", [])]
    assert listed == utf8_order(keys)
    assert pages == -(-len(keys) // 4)
    sizes = {o["Key"]: o["Size"] for o in client.list_objects_v2(Bucket=bkt).get("Contents", [])}
    assert sizes == {k: len(k.encode()) for k in keys}


def test_list_objects_v1_paginator_collects_all(client: Any, bkt: str, daemon: Daemon) -> None:
    keys = ordering_keys(daemon)
    put_keys(client, bkt, keys)
    listed: list[str] = []
    for page in client.get_paginator("list_objects").paginate(
        Bucket=bkt, PaginationConfig={"PageSize": 3}
    ):
        listed += [o["Key"] for o in page.get("Contents", [])]
    assert listed == utf8_order(keys)
    first = client.list_objects(Bucket=bkt, MaxKeys=3)
    assert first["IsTruncated"] is True
    assert [o["Key"] for o in first["Contents"]] == utf8_order(keys)[:3]
    rest = client.list_objects(Bucket=bkt, Marker=utf8_order(keys)[2])
    assert [o["Key"] for o in rest["Contents"]] == utf8_order(keys)[3:]
    assert rest["IsTruncated"] is False


def test_list_prefix_and_delimiter(client: Any, bkt: str) -> None:
    keys = [
        "photos/2024/a.jpg",
        "photos/2024/b.jpg",
        "photos/2025/c.jpg",
        "photos/top.jpg",
        "photos-old",
        "readme.txt",
        "videos/v.mp4",
    ]
    put_keys(client, bkt, keys)
    for method in (client.list_objects, client.list_objects_v2):
        top = method(Bucket=bkt, Delimiter="/")
        assert [o["Key"] for o in top["Contents"]] == ["photos-old", "readme.txt"]
        assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["photos/", "videos/"]
        assert top["Delimiter"] == "/"
        photos = method(Bucket=bkt, Prefix="photos/", Delimiter="/")
        assert [o["Key"] for o in photos["Contents"]] == ["photos/top.jpg"]
        assert [p["Prefix"] for p in photos["CommonPrefixes"]] == ["photos/2024/", "photos/2025/"]
        assert photos["Prefix"] == "photos/"
        prefixed = method(Bucket=bkt, Prefix="photos")
        assert [o["Key"] for o in prefixed["Contents"]] == sorted(
            k for k in keys if k.startswith("photos")
        )
        assert "CommonPrefixes" not in prefixed
        nothing = method(Bucket=bkt, Prefix="nope/")
        assert "Contents" not in nothing
    v2 = client.list_objects_v2(Bucket=bkt, Delimiter="/")
    assert v2["KeyCount"] == 4  # two keys and two common prefixes


def test_list_delimiter_paging_counts_prefixes(client: Any, bkt: str) -> None:
    keys = [f"p{i}/x" for i in range(5)] + ["q1", "q2"]
    put_keys(client, bkt, keys)
    contents: list[str] = []
    prefixes: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bkt, Delimiter="/", PaginationConfig={"PageSize": 2}
    ):
        contents += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert prefixes == [f"p{i}/" for i in range(5)]
    assert contents == ["q1", "q2"]


def test_list_start_after(client: Any, bkt: str) -> None:
    keys = [f"k{i:02d}" for i in range(10)]
    put_keys(client, bkt, keys)
    listed = client.list_objects_v2(Bucket=bkt, StartAfter="k04")
    assert [o["Key"] for o in listed["Contents"]] == keys[5:]
    assert listed["StartAfter"] == "k04"
    between = client.list_objects_v2(Bucket=bkt, StartAfter="k04x")
    assert [o["Key"] for o in between["Contents"]] == keys[5:]
    paged: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bkt, StartAfter="k02", PaginationConfig={"PageSize": 3}
    ):
        paged += [o["Key"] for o in page.get("Contents", [])]
    assert paged == keys[3:]


def test_list_max_keys_zero(client: Any, bkt: str) -> None:
    put_keys(client, bkt, ["a1", "a2"])
    listed = client.list_objects_v2(Bucket=bkt, MaxKeys=0)
    assert listed["KeyCount"] == 0
    assert "Contents" not in listed


def test_list_encoding_type_url(client: Any, bkt: str) -> None:
    keys = ["with space", "plus+sign", "amp&ersand", "less<than>", "unicodé/鍵", "per%cent"]
    put_keys(client, bkt, keys)
    # Explicit EncodingType: boto3 hands back the keys still encoded.
    listed = client.list_objects_v2(Bucket=bkt, EncodingType="url")
    assert listed["EncodingType"] == "url"
    encoded = [o["Key"] for o in listed["Contents"]]
    # botocore's own decoding is unquote_plus, so a "+" in a key must arrive as %2B.
    assert [unquote_plus(k) for k in encoded] == utf8_order(keys)
    for key in encoded:
        assert not set(key) & set(" &<>"), key
        assert key.isascii(), key
    v1 = client.list_objects(Bucket=bkt, EncodingType="url", Delimiter="/")
    assert v1["EncodingType"] == "url"
    assert [unquote_plus(p["Prefix"]) for p in v1["CommonPrefixes"]] == ["unicodé/"]
    # Left to boto3 (it asks for url encoding itself and decodes): the keys as written.
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bkt)["Contents"]] == utf8_order(keys)


def test_list_without_encoding_escapes_xml(client: Any, bkt: str, daemon: Daemon) -> None:
    keys = ["amp&ersand", "less<than>", "quote'\"", "unicodé"]
    put_keys(client, bkt, keys)
    response = requests.get(f"{daemon.endpoint}/{bkt}?list-type=2", timeout=10)
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    listed = [node.text for node in root.iterfind("{*}Contents/{*}Key")]
    assert listed == utf8_order(keys)


def test_list_fetch_owner(client: Any, bkt: str) -> None:
    put_keys(client, bkt, ["o1"])
    without = client.list_objects_v2(Bucket=bkt)
    assert "Owner" not in without["Contents"][0]
    with_owner = client.list_objects_v2(Bucket=bkt, FetchOwner=True)
    owner = with_owner["Contents"][0]["Owner"]
    assert owner["ID"]
    assert owner["ID"] == client.list_buckets()["Owner"]["ID"]
    assert client.list_objects(Bucket=bkt)["Contents"][0]["Owner"]["ID"] == owner["ID"]


def test_list_entries_match_head(client: Any, bkt: str) -> None:
    data = os.urandom(777)
    client.put_object(Bucket=bkt, Key="entry", Body=data)
    entry = client.list_objects_v2(Bucket=bkt)["Contents"][0]
    head = client.head_object(Bucket=bkt, Key="entry")
    assert entry["ETag"] == head["ETag"] == quoted_md5(data)
    assert entry["Size"] == len(data)
    # Listings carry milliseconds, HTTP dates whole seconds.
    assert timedelta(0) <= entry["LastModified"] - head["LastModified"] <= timedelta(seconds=1)
    assert entry["StorageClass"] == "STANDARD"


# DeleteObjects


def test_delete_objects_verbose(client: Any, bkt: str) -> None:
    keys = ["d1", "dir/d2", "with space &"]
    put_keys(client, bkt, keys)
    result = client.delete_objects(
        Bucket=bkt,
        Delete={"Objects": [{"Key": k} for k in [*keys, "never-existed"]], "Quiet": False},
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted([*keys, "never-existed"])
    assert "Errors" not in result
    assert "Contents" not in client.list_objects_v2(Bucket=bkt)


def test_delete_objects_quiet(client: Any, bkt: str) -> None:
    keys = ["q1", "q2", "q3"]
    put_keys(client, bkt, keys)
    result = client.delete_objects(
        Bucket=bkt, Delete={"Objects": [{"Key": k} for k in keys[:2]], "Quiet": True}
    )
    assert "Deleted" not in result
    assert "Errors" not in result
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bkt)["Contents"]] == ["q3"]


# CopyObject


def test_copy_object_copies_metadata(client: Any, bkt: str) -> None:
    data = os.urandom(5000)
    client.put_object(
        Bucket=bkt, Key="src", Body=data, ContentType="image/png", CacheControl="no-cache"
    )
    copied = client.copy_object(Bucket=bkt, Key="dst", CopySource={"Bucket": bkt, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == quoted_md5(data)
    got = client.get_object(Bucket=bkt, Key="dst")
    assert got["Body"].read() == data
    assert got["ContentType"] == "image/png"
    assert got["CacheControl"] == "no-cache"


def test_copy_object_copies_user_metadata(client: Any, bkt: str) -> None:
    client.put_object(Bucket=bkt, Key="src", Body=b"x", Metadata={"color": "red"})
    client.copy_object(Bucket=bkt, Key="dst", CopySource={"Bucket": bkt, "Key": "src"})
    assert client.head_object(Bucket=bkt, Key="dst")["Metadata"] == {"color": "red"}


def test_copy_object_replaces_metadata(client: Any, bkt: str) -> None:
    client.put_object(
        Bucket=bkt, Key="src", Body=b"payload", ContentType="image/png", CacheControl="no-cache"
    )
    client.copy_object(
        Bucket=bkt,
        Key="dst",
        CopySource={"Bucket": bkt, "Key": "src"},
        MetadataDirective="REPLACE",
        ContentType="text/plain",
    )
    head = client.head_object(Bucket=bkt, Key="dst")
    assert head["ContentType"] == "text/plain"
    assert "CacheControl" not in head
    assert client.get_object(Bucket=bkt, Key="dst")["Body"].read() == b"payload"
    # The source is untouched.
    assert client.head_object(Bucket=bkt, Key="src")["ContentType"] == "image/png"


def test_copy_object_replaces_user_metadata(client: Any, bkt: str) -> None:
    client.put_object(Bucket=bkt, Key="src", Body=b"x", Metadata={"color": "red"})
    client.copy_object(
        Bucket=bkt,
        Key="dst",
        CopySource={"Bucket": bkt, "Key": "src"},
        MetadataDirective="REPLACE",
        Metadata={"shape": "round"},
    )
    assert client.head_object(Bucket=bkt, Key="dst")["Metadata"] == {"shape": "round"}


def test_copy_object_to_itself(client: Any, bkt: str) -> None:
    client.put_object(Bucket=bkt, Key="self", Body=b"same", ContentType="text/plain")
    error = error_of(
        lambda: client.copy_object(
            Bucket=bkt, Key="self", CopySource={"Bucket": bkt, "Key": "self"}
        )
    )
    assert code(error) == "InvalidRequest"
    assert status(error) == 400
    client.copy_object(
        Bucket=bkt,
        Key="self",
        CopySource={"Bucket": bkt, "Key": "self"},
        MetadataDirective="REPLACE",
        ContentType="text/html",
    )
    got = client.get_object(Bucket=bkt, Key="self")
    assert got["ContentType"] == "text/html"
    assert got["Body"].read() == b"same"


def test_copy_object_conditions(client: Any, bkt: str) -> None:
    client.put_object(Bucket=bkt, Key="src", Body=b"abc")
    etag = client.head_object(Bucket=bkt, Key="src")["ETag"]
    source = {"Bucket": bkt, "Key": "src"}
    failed = error_of(
        lambda: client.copy_object(
            Bucket=bkt, Key="dst", CopySource=source, CopySourceIfMatch='"0000"'
        )
    )
    assert status(failed) == 412
    assert code(failed) == "PreconditionFailed"
    failed = error_of(
        lambda: client.copy_object(
            Bucket=bkt, Key="dst", CopySource=source, CopySourceIfNoneMatch=etag
        )
    )
    assert status(failed) == 412
    assert status(error_of(lambda: client.head_object(Bucket=bkt, Key="dst"))) == 404
    client.copy_object(Bucket=bkt, Key="dst", CopySource=source, CopySourceIfMatch=etag)
    assert client.get_object(Bucket=bkt, Key="dst")["Body"].read() == b"abc"


def test_copy_object_special_characters_across_buckets(client: Any, bkt: str) -> None:
    other = unique()
    client.create_bucket(Bucket=other)
    try:
        source_key = "dir with space/a+b&c%d?e=f#g/ключ.txt"
        client.put_object(Bucket=bkt, Key=source_key, Body=b"special")
        client.copy_object(
            Bucket=other, Key="copy of ключ+1", CopySource={"Bucket": bkt, "Key": source_key}
        )
        assert client.get_object(Bucket=other, Key="copy of ключ+1")["Body"].read() == b"special"
        # The string form of CopySource: botocore URL-encodes it.
        client.copy_object(Bucket=other, Key="second", CopySource=f"{bkt}/{source_key}")
        assert client.get_object(Bucket=other, Key="second")["Body"].read() == b"special"
    finally:
        empty_and_delete(client, other)


def test_copy_object_missing_source(client: Any, bkt: str) -> None:
    error = error_of(
        lambda: client.copy_object(Bucket=bkt, Key="dst", CopySource={"Bucket": bkt, "Key": "no"})
    )
    assert code(error) == "NoSuchKey"
    assert status(error) == 404


# Transfers and keys


def test_upload_and_download_file(client: Any, bkt: str, tmp_path: Path) -> None:
    data = os.urandom(5 * MiB)
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    config = TransferConfig(multipart_threshold=8 * MiB)
    client.upload_file(str(source), bkt, "files/up.bin", Config=config)
    head = client.head_object(Bucket=bkt, Key="files/up.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == quoted_md5(data)
    target = tmp_path / "down.bin"
    client.download_file(bkt, "files/up.bin", str(target), Config=config)
    assert target.read_bytes() == data


def long_key(size: int) -> str:
    """A key of ``size`` UTF-8 bytes whose path segments fit any file system."""
    segments = []
    remaining = size
    while remaining > 0:
        take = min(200, remaining)
        segments.append("k" * take)
        remaining -= take + 1
    key = "/".join(segments)
    key = key[:size] if len(key) > size else key
    assert len(key.encode()) == size and not key.endswith("/")
    return key


def test_key_length_limit(client: Any, bkt: str) -> None:
    ok = long_key(1024)
    client.put_object(Bucket=bkt, Key=ok, Body=b"long")
    assert client.get_object(Bucket=bkt, Key=ok)["Body"].read() == b"long"
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bkt)["Contents"]] == [ok]
    too_long = long_key(1025)
    error = error_of(lambda: client.put_object(Bucket=bkt, Key=too_long, Body=b"x"))
    assert code(error) == "KeyTooLongError"
    assert status(error) == 400


def test_multibyte_key_length_counts_bytes(client: Any, bkt: str) -> None:
    # 342 three-byte characters: 1026 bytes, although only 342 characters.
    error = error_of(lambda: client.put_object(Bucket=bkt, Key="\u20ac" * 342, Body=b"x"))
    assert code(error) == "KeyTooLongError"


def test_key_with_trailing_slash_is_a_different_key(client: Any, bkt: str) -> None:
    client.put_object(Bucket=bkt, Key="a/", Body=b"")
    head = client.head_object(Bucket=bkt, Key="a/")
    assert head["ContentLength"] == 0
    assert status(error_of(lambda: client.head_object(Bucket=bkt, Key="a"))) == 404
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bkt)["Contents"]] == ["a/"]
    listed = client.list_objects_v2(Bucket=bkt, Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a/"]
    client.delete_object(Bucket=bkt, Key="a/")
    assert "Contents" not in client.list_objects_v2(Bucket=bkt)


def test_keys_with_special_characters_round_trip(client: Any, bkt: str) -> None:
    for key in SPECIAL_KEYS:
        data = f"body of {key}".encode()
        client.put_object(Bucket=bkt, Key=key, Body=data)
        assert client.get_object(Bucket=bkt, Key=key)["Body"].read() == data, key
        assert client.head_object(Bucket=bkt, Key=key)["ContentLength"] == len(data), key
    for key in SPECIAL_KEYS:
        client.delete_object(Bucket=bkt, Key=key)
    assert "Contents" not in client.list_objects_v2(Bucket=bkt)


def test_default_upload_sends_a_checksum_header(client: Any, bkt: str) -> None:
    """Over plain HTTP boto3's default upload carries its CRC32 in a header (botocore
    only uses aws-chunked trailers over TLS)."""
    seen: dict[str, str] = {}

    def capture(request: Any, **_: Any) -> None:
        seen.update({k.lower(): as_text(v) for k, v in request.headers.items()})

    client.meta.events.register("before-send.s3.PutObject", capture)
    data = os.urandom(70_000)
    client.put_object(Bucket=bkt, Key="crc", Body=data)
    assert "x-amz-checksum-crc32" in seen
    assert client.get_object(Bucket=bkt, Key="crc")["Body"].read() == data


def as_text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


@pytest.fixture
def chunked_client(daemon: Daemon) -> Any:
    """A client that sends uploads as boto3 does over HTTPS: ``Transfer-Encoding:
    chunked``, ``Content-Encoding: aws-chunked`` and a CRC32 trailer. Records the
    headers of each PutObject in ``.sent``."""
    client = boto3_client(daemon.endpoint)
    sent: list[dict[str, str]] = []

    def use_trailer(params: Any, **_: Any) -> None:
        algorithm = params["context"].get("checksum", {}).get("request_algorithm")
        if algorithm:
            algorithm["in"] = "trailer"

    def capture(request: Any, **_: Any) -> None:
        sent.append({k.lower(): as_text(v) for k, v in request.headers.items()})

    client.meta.events.register("before-call.s3.PutObject", use_trailer)
    client.meta.events.register("before-send.s3.PutObject", capture)
    client.sent = sent
    return client


def test_aws_chunked_upload(chunked_client: Any, bkt: str) -> None:
    data = os.urandom(300_000)
    put = chunked_client.put_object(Bucket=bkt, Key="chunked", Body=data)
    headers = chunked_client.sent[-1]
    assert "aws-chunked" in headers["content-encoding"]
    assert headers["transfer-encoding"] == "chunked"
    assert headers["x-amz-trailer"] == "x-amz-checksum-crc32"
    assert put["ETag"] == quoted_md5(data)
    got = chunked_client.get_object(Bucket=bkt, Key="chunked")
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert "ContentEncoding" not in got


def test_aws_chunked_keeps_other_content_encodings(chunked_client: Any, bkt: str) -> None:
    chunked_client.put_object(Bucket=bkt, Key="gz", Body=b"\x1f\x8b...", ContentEncoding="gzip")
    assert chunked_client.sent[-1]["content-encoding"] == "gzip,aws-chunked"
    assert chunked_client.head_object(Bucket=bkt, Key="gz")["ContentEncoding"] == "gzip"


def test_aws_chunked_empty_body(chunked_client: Any, bkt: str) -> None:
    put = chunked_client.put_object(Bucket=bkt, Key="empty", Body=b"")
    assert put["ETag"] == quoted_md5(b"")
    assert chunked_client.get_object(Bucket=bkt, Key="empty")["Body"].read() == b""


def test_aws_chunked_content_md5(chunked_client: Any, bkt: str) -> None:
    data = os.urandom(100_000)
    right = base64.b64encode(hashlib.md5(data).digest()).decode()
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    chunked_client.put_object(Bucket=bkt, Key="m", Body=data, ContentMD5=right)
    assert "aws-chunked" in chunked_client.sent[-1]["content-encoding"]
    error = error_of(
        lambda: chunked_client.put_object(Bucket=bkt, Key="m", Body=b"new", ContentMD5=wrong)
    )
    assert code(error) == "BadDigest"
    assert chunked_client.get_object(Bucket=bkt, Key="m")["Body"].read() == data


def test_aws_chunked_upload_fileobj(chunked_client: Any, bkt: str, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    source = tmp_path / "src.bin"
    source.write_bytes(data)
    chunked_client.upload_file(
        str(source), bkt, "up", Config=TransferConfig(multipart_threshold=8 * MiB)
    )
    assert "aws-chunked" in chunked_client.sent[-1]["content-encoding"]
    assert chunked_client.get_object(Bucket=bkt, Key="up")["Body"].read() == data
