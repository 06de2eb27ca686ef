"""Multipart uploads end to end against the real daemon: the reference page's curl
transcript and boto 2 script (alluxio-s3-api.md), boto3's transfer manager, the aws CLI,
the multipart API and its errors, a restart, two daemons on one root, and expiry."""

from __future__ import annotations

import base64
import filecmp
import hashlib
import math
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto
import boto.connection
import boto.provider
import boto.pyami.config
import boto.s3.connection
import pytest
import requests
from boto.exception import S3ResponseError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from filechunkio import FileChunkIO
from lxml import etree

from tests.integration.conftest import boto3_client
from tests.integration.daemon import PREFIX, Daemon

MiB = 1024 * 1024
S3_MIN_PART = 5 * MiB
AWS = Path(sys.executable).with_name("aws")


# -- helpers -------------------------------------------------------------------------


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def quoted_md5(data: bytes) -> str:
    return f'"{md5_hex(data)}"'


def multipart_etag(parts: list[bytes]) -> str:
    """S3's ETag of an object assembled from ``parts``: MD5 of the part MD5s, then -N."""
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def unique(stem: str = "mp") -> str:
    return f"{stem}-{uuid.uuid4().hex[:16]}"


def local(tag: str) -> str:
    return f"{{*}}{tag}"


def text(root: etree._Element, path: str) -> str | None:
    node = root.find(path)
    return None if node is None else (node.text or "")


def texts(root: etree._Element, path: str) -> list[str]:
    return [node.text or "" for node in root.iterfind(path)]


def parse_xml(body: bytes) -> etree._Element:
    root: etree._Element = etree.fromstring(body.strip())
    return root


def error_code(body: bytes) -> str | None:
    root = parse_xml(body)
    assert etree.QName(root).localname == "Error", body[:300]
    return text(root, "Code")


def client_error(call: Callable[[], object]) -> ClientError:
    with pytest.raises(ClientError) as info:
        call()
    return info.value


def code_of(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def status_of(error: ClientError) -> int:
    return int(error.response["ResponseMetadata"]["HTTPStatusCode"])


def fake_upload_id() -> str:
    """An ID of the server's shape (48 hex digits) that it never issued."""
    return secrets.token_hex(24)


def complete_xml(parts: list[tuple[int, str]]) -> bytes:
    entries = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>" for n, etag in parts
    )
    return f"<CompleteMultipartUpload>{entries}</CompleteMultipartUpload>".encode()


def upload_ids(s3: Any, bucket: str, **params: Any) -> list[str]:
    listing = s3.list_multipart_uploads(Bucket=bucket, **params)
    return [u["UploadId"] for u in listing.get("Uploads", [])]


def abort_all(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def empty_and_delete(s3: Any, bucket: str) -> None:
    try:
        abort_all(s3, bucket)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=bucket)
    except ClientError:
        pass


@pytest.fixture
def mp_bucket(s3: Any, bucket: str) -> Iterator[str]:
    """The ``bucket`` fixture, with its unfinished uploads aborted afterwards."""
    yield bucket
    try:
        abort_all(s3, bucket)
    except ClientError:
        pass


# -- curl: the reference page's transcript ---------------------------------------------


@dataclass
class CurlResponse:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def xml(self) -> etree._Element:
        return parse_xml(self.body)


def curl(*args: str, cwd: Path | None = None) -> CurlResponse:
    result = subprocess.run(
        ["curl", "-i", "-sS", *args], cwd=cwd, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    rest = result.stdout
    while True:  # skip interim 1xx responses (curl -T sends Expect: 100-continue)
        head, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, result.stdout[:500]
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        if status >= 200:
            break
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return CurlResponse(status, headers, rest, result.stdout)


def test_reference_curl_transcript(fs_daemon: Daemon, tmp_path: Path) -> None:
    """Initiate, upload part, list parts, complete, abort: as the page runs them."""
    name = unique("testbucket")
    base = f"{fs_daemon.url}/{name}"
    assert curl("-X", "PUT", base).status == 200

    # Initiate a multipart upload
    initiated = curl("-X", "POST", f"{base}/testobject?uploads")
    assert initiated.status == 200, initiated.raw
    assert initiated.header("content-type") == "application/xml"
    assert initiated.header("content-length") == str(len(initiated.body))
    result = initiated.xml()
    assert etree.QName(result).localname == "InitiateMultipartUploadResult"
    assert text(result, local("Bucket")) == name
    assert text(result, local("Key")) == "testobject"
    upload_id = text(result, local("UploadId"))
    assert upload_id

    # Upload part: the page sends a PUT with no body, so the part is empty.
    part = curl("-X", "PUT", f"{base}/testobject?partNumber=1&uploadId={upload_id}")
    assert part.status == 200, part.raw
    assert part.header("etag") == quoted_md5(b"")

    # List parts
    listed = curl("-X", "GET", f"{base}/testobject?uploadId={upload_id}")
    assert listed.status == 200, listed.raw
    parts = listed.xml()
    assert etree.QName(parts).localname == "ListPartsResult"
    assert text(parts, local("Bucket")) == name
    assert text(parts, local("Key")) == "testobject"
    assert text(parts, local("UploadId")) == upload_id
    assert text(parts, local("StorageClass")) == "STANDARD"
    assert text(parts, local("IsTruncated")) == "false"
    assert texts(parts, f"{local('Part')}/{local('PartNumber')}") == ["1"]
    assert texts(parts, f"{local('Part')}/{local('ETag')}") == [quoted_md5(b"")]
    assert texts(parts, f"{local('Part')}/{local('Size')}") == ["0"]
    assert text(parts, f"{local('Part')}/{local('LastModified')}")

    # Complete a multipart upload, with the page's body (and the real ETag).
    body = (
        "<CompleteMultipartUpload>\n"
        "  <Part>\n"
        "    <PartNumber>1</PartNumber>\n"
        f"    <ETag>{quoted_md5(b'')}</ETag>\n"
        "  </Part>\n"
        "</CompleteMultipartUpload>"
    )
    completed = curl("-X", "POST", f"{base}/testobject?uploadId={upload_id}", "--data-binary", body)
    assert completed.status == 200, completed.raw
    done = completed.xml()
    assert etree.QName(done).localname == "CompleteMultipartUploadResult"
    assert text(done, local("Location")) == f"/{name}/testobject"
    assert text(done, local("Bucket")) == name
    assert text(done, local("Key")) == "testobject"
    assert text(done, local("ETag")) == multipart_etag([b""])
    got = curl(f"{base}/testobject")
    assert got.status == 200
    assert got.body == b""
    assert got.header("etag") == multipart_etag([b""])

    # The same with real data: parts sent with -T, the first one S3's minimum size.
    first = os.urandom(S3_MIN_PART)
    last = os.urandom(26847)
    (tmp_path / "part1").write_bytes(first)
    (tmp_path / "part2").write_bytes(last)
    upload_id = text(curl("-X", "POST", f"{base}/bigobject?uploads").xml(), local("UploadId"))
    etags = []
    for number in (1, 2):
        sent = curl(
            "-T",
            f"part{number}",
            f"{base}/bigobject?partNumber={number}&uploadId={upload_id}",
            cwd=tmp_path,
        )
        assert sent.status == 200, sent.raw
        etags.append(sent.header("etag") or "")
    assert etags == [quoted_md5(first), quoted_md5(last)]
    parts = curl(f"{base}/bigobject?uploadId={upload_id}").xml()
    assert texts(parts, f"{local('Part')}/{local('PartNumber')}") == ["1", "2"]
    assert texts(parts, f"{local('Part')}/{local('ETag')}") == etags
    assert texts(parts, f"{local('Part')}/{local('Size')}") == [str(len(first)), str(len(last))]
    completed = curl(
        "-X",
        "POST",
        f"{base}/bigobject?uploadId={upload_id}",
        "--data-binary",
        complete_xml(list(zip((1, 2), etags, strict=True))).decode(),
    )
    assert completed.status == 200, completed.raw
    assert text(completed.xml(), local("ETag")) == multipart_etag([first, last])
    got = curl(f"{base}/bigobject")
    assert got.body == first + last
    assert got.header("content-length") == str(len(first) + len(last))
    assert got.header("etag") == multipart_etag([first, last])

    # Abort a multipart upload
    upload_id = text(curl("-X", "POST", f"{base}/abandoned?uploads").xml(), local("UploadId"))
    sent = curl("-T", "part2", f"{base}/abandoned?partNumber=1&uploadId={upload_id}", cwd=tmp_path)
    assert sent.status == 200, sent.raw
    aborted = curl("-X", "DELETE", f"{base}/abandoned?uploadId={upload_id}")
    assert aborted.status == 204, aborted.raw
    assert aborted.body == b""
    again = curl("-X", "DELETE", f"{base}/abandoned?uploadId={upload_id}")
    assert again.status == 404, again.raw
    assert again.header("content-type") == "application/xml"
    assert error_code(again.body) == "NoSuchUpload"
    assert text(again.xml(), "UploadId") == upload_id
    assert curl(f"{base}/abandoned?uploadId={upload_id}").status == 404
    assert curl(f"{base}/abandoned").status == 404  # nothing was stored
    uploads = fs_daemon.root / ".s3proxy" / "uploads" / name  # type: ignore[attr-defined]
    assert not [p for p in uploads.iterdir() if p.name.startswith(upload_id or "?")]

    for key in ("testobject", "bigobject"):
        assert curl("-X", "DELETE", f"{base}/{key}").status == 204
    assert curl("-X", "DELETE", base).status == 204


# -- boto 2: the reference page's script -----------------------------------------------


@pytest.fixture
def boto2_connect(monkeypatch: pytest.MonkeyPatch) -> Callable[[Daemon], Any]:
    """The page's "Create a connection" for a given daemon, with no boto config around."""
    monkeypatch.setenv("BOTO_CONFIG", "/dev/null")
    monkeypatch.setenv("BOTO_PATH", "/dev/null")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # boto read its config at import: give every module that kept a reference an empty one.
    empty = boto.pyami.config.Config(path="/dev/null")
    for module in (boto, boto.connection, boto.provider):
        monkeypatch.setattr(module, "config", empty)

    def connect(daemon: Daemon) -> Any:
        return boto.connect_s3(
            aws_access_key_id="",
            aws_secret_access_key="",
            host="127.0.0.1",
            port=daemon.port,
            path=PREFIX,
            is_secure=False,
            calling_format=boto.s3.connection.OrdinaryCallingFormat(),
        )

    return connect


@pytest.fixture
def large_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The page's ``8mb.data`` in the working directory. The page fills it from
    /dev/zero; random bytes are used so that parts assembled out of order would show."""
    monkeypatch.chdir(tmp_path)
    data = os.urandom(8 * MiB)
    (tmp_path / "8mb.data").write_bytes(data)
    return data


def test_reference_boto2_multipart(
    make_daemon: Callable[..., Daemon], boto2_connect: Callable[[Daemon], Any], large_file: bytes
) -> None:
    # The page uploads 1 MiB parts, which S3 (and this daemon by default) refuses with
    # EntityTooSmall when completing: every part but the last must be at least 5 MiB
    # (test_reference_boto2_multipart_default_part_size checks that). To run the page's
    # script as written, this daemon accepts parts of any size.
    daemon = make_daemon(None, "--min-part-size", "0")
    conn = boto2_connect(daemon)
    bucketName = unique("bucket-for-testing")  # noqa: N806 (the page's names)
    bucket = conn.create_bucket(bucketName)
    largeObjectKey = "large.txt"  # noqa: N806
    largeObjectFile = "8mb.data"  # noqa: N806
    with open(largeObjectFile, "rb") as f:
        largeObject = f.read()  # noqa: N806
    key = bucket.new_key(largeObjectKey)

    # Initiate a multipart upload
    mp = bucket.initiate_multipart_upload(largeObjectKey)

    # Upload parts
    # Use a chunk size of 1MB (feel free to change this)
    sourceSize = os.stat(largeObjectFile).st_size  # noqa: N806
    chunkSize = 1048576  # noqa: N806
    chunkCount = int(math.ceil(sourceSize / float(chunkSize)))  # noqa: N806

    for i in range(chunkCount):
        offset = chunkSize * i
        bytes = min(chunkSize, sourceSize - offset)
        with FileChunkIO(largeObjectFile, "r", offset=offset, bytes=bytes) as fp:
            mp.upload_part_from_file(fp, part_num=i + 1)

    listed = list(mp)
    assert [p.part_number for p in listed] == list(range(1, 9))
    assert [p.size for p in listed] == [MiB] * 8
    assert [p.etag for p in listed] == [quoted_md5(c) for c in chunks(large_file, MiB)]

    # Complete the multipart upload
    result = mp.complete_upload()
    assert result.key_name == largeObjectKey
    assert result.etag == multipart_etag(chunks(large_file, MiB))

    # Get the large object
    assert largeObject == key.get_contents_as_string()
    assert largeObject == large_file

    # Abort the multipart upload (of another upload: this one is complete)
    mp2 = bucket.initiate_multipart_upload("abandoned.txt")
    with FileChunkIO(largeObjectFile, "r", offset=0, bytes=chunkSize) as fp:
        mp2.upload_part_from_file(fp, part_num=1)
    assert [u.id for u in bucket.get_all_multipart_uploads()] == [mp2.id]
    mp2.cancel_upload()
    assert bucket.get_all_multipart_uploads() == []
    # (boto 2's get_all_parts returns None on an error, so ask directly.)
    gone = requests.get(f"{daemon.url}/{bucketName}/abandoned.txt?uploadId={mp2.id}", timeout=30)
    assert gone.status_code == 404
    assert error_code(gone.content) == "NoSuchUpload"
    with pytest.raises(S3ResponseError) as info:
        mp.cancel_upload()  # the completed upload is gone too
    assert info.value.error_code == "NoSuchUpload"
    assert bucket.get_key("abandoned.txt") is None

    # Delete the objects and the bucket
    bucket.delete_key(largeObjectKey)
    conn.delete_bucket(bucketName)


def test_reference_boto2_multipart_default_part_size(
    fs_daemon: Daemon, boto2_connect: Callable[[Daemon], Any], large_file: bytes
) -> None:
    """The page's script against the default daemon: S3 rejects 1 MiB parts."""
    conn = boto2_connect(fs_daemon)
    bucket = conn.create_bucket(unique("bucket-for-testing"))
    largeObjectKey = "large.txt"  # noqa: N806
    largeObjectFile = "8mb.data"  # noqa: N806
    mp = bucket.initiate_multipart_upload(largeObjectKey)
    sourceSize = os.stat(largeObjectFile).st_size  # noqa: N806
    chunkSize = 1048576  # noqa: N806
    chunkCount = int(math.ceil(sourceSize / float(chunkSize)))  # noqa: N806
    for i in range(chunkCount):
        offset = chunkSize * i
        bytes = min(chunkSize, sourceSize - offset)
        with FileChunkIO(largeObjectFile, "r", offset=offset, bytes=bytes) as fp:
            mp.upload_part_from_file(fp, part_num=i + 1)

    with pytest.raises(S3ResponseError) as info:
        mp.complete_upload()
    assert info.value.status == 400
    assert info.value.error_code == "EntityTooSmall"
    error = parse_xml(info.value.body.encode())  # boto 2 keeps the body as str
    assert text(error, "ProposedSize") == str(MiB)
    assert text(error, "MinSizeAllowed") == str(S3_MIN_PART)
    assert text(error, "PartNumber") == "1"
    assert text(error, "ETag") == quoted_md5(large_file[:MiB])
    # As on S3, the upload survives a refused completion, and nothing was stored.
    assert len(list(mp)) == 8
    assert bucket.get_key(largeObjectKey) is None
    mp.cancel_upload()
    assert bucket.get_all_multipart_uploads() == []
    conn.delete_bucket(bucket.name)


# -- boto3 transfers and the aws CLI ---------------------------------------------------


def test_boto3_transfer_64_mib(s3: Any, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(64 * MiB)
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    config = TransferConfig(
        multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4
    )
    s3.upload_file(str(source), bucket, "big/object.bin", Config=config)
    target = tmp_path / "down.bin"
    s3.download_file(bucket, "big/object.bin", str(target), Config=config)
    assert target.stat().st_size == len(data)
    assert target.read_bytes() == data

    head = s3.head_object(Bucket=bucket, Key="big/object.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-8"')
    assert head["ETag"] == multipart_etag(chunks(data, 8 * MiB))

    part = s3.get_object(Bucket=bucket, Key="big/object.bin", PartNumber=2)
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["PartsCount"] == 8
    assert part["ContentLength"] == 8 * MiB
    assert part["ContentRange"] == f"bytes {8 * MiB}-{16 * MiB - 1}/{len(data)}"
    assert part["Body"].read() == data[8 * MiB : 16 * MiB]
    head_part = s3.head_object(Bucket=bucket, Key="big/object.bin", PartNumber=8)
    assert head_part["ContentLength"] == 8 * MiB
    assert head_part["PartsCount"] == 8

    error = client_error(lambda: s3.head_object(Bucket=bucket, Key="big/object.bin", PartNumber=9))
    assert status_of(error) == 416  # HEAD: no body, so botocore reports the status as code
    error = client_error(lambda: s3.get_object(Bucket=bucket, Key="big/object.bin", PartNumber=9))
    assert status_of(error) == 416
    assert code_of(error) == "InvalidPartNumber"


def test_aws_cli_cp_100_mib(fs_daemon: Daemon, s3: Any, bucket: str, tmp_path: Path) -> None:
    assert AWS.exists(), f"the aws CLI is not installed next to {sys.executable}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_PAGER="",
        HOME=str(tmp_path),
    )
    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(100 * MiB))
    target = tmp_path / "down.bin"

    def aws(*args: str) -> None:
        result = subprocess.run(
            [str(AWS), "--endpoint-url", fs_daemon.endpoint, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"aws {' '.join(args)}: {result.stderr}"

    aws("s3", "cp", str(source), f"s3://{bucket}/cli/object.bin")
    head = s3.head_object(Bucket=bucket, Key="cli/object.bin")
    assert head["ContentLength"] == 100 * MiB
    # The CLI's default part size is 8 MiB: 13 parts.
    assert head["ETag"] == multipart_etag(chunks(source.read_bytes(), 8 * MiB))
    aws("s3", "cp", f"s3://{bucket}/cli/object.bin", str(target))
    assert filecmp.cmp(source, target, shallow=False)
    assert upload_ids(s3, bucket) == []


# -- the multipart API through boto3 ---------------------------------------------------


def test_create_with_content_type_and_metadata(s3: Any, mp_bucket: str) -> None:
    created = s3.create_multipart_upload(
        Bucket=mp_bucket,
        Key="doc.txt",
        ContentType="text/plain; charset=utf-8",
        CacheControl="max-age=60",
        Metadata={"colour": "blue", "origin": "multipart"},
    )
    assert created["Bucket"] == mp_bucket
    assert created["Key"] == "doc.txt"
    upload_id = created["UploadId"]
    parts = [os.urandom(S3_MIN_PART), b"the end\n"]
    etags = [
        s3.upload_part(
            Bucket=mp_bucket, Key="doc.txt", UploadId=upload_id, PartNumber=n, Body=body
        )["ETag"]
        for n, body in enumerate(parts, 1)
    ]
    assert etags == [quoted_md5(p) for p in parts]
    done = s3.complete_multipart_upload(
        Bucket=mp_bucket,
        Key="doc.txt",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    assert done["ETag"] == multipart_etag(parts)
    assert done["Key"] == "doc.txt"
    head = s3.head_object(Bucket=mp_bucket, Key="doc.txt")
    assert head["ContentType"] == "text/plain; charset=utf-8"
    assert head["CacheControl"] == "max-age=60"
    assert head["Metadata"] == {"colour": "blue", "origin": "multipart"}
    assert head["ContentLength"] == sum(map(len, parts))
    assert head["ETag"] == multipart_etag(parts)
    assert s3.get_object(Bucket=mp_bucket, Key="doc.txt")["Body"].read() == b"".join(parts)
    assert upload_ids(s3, mp_bucket) == []


def test_upload_part_copy_with_ranges(s3: Any, mp_bucket: str) -> None:
    source = os.urandom(10 * MiB + 12345)
    s3.put_object(Bucket=mp_bucket, Key="source.bin", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=mp_bucket, Key="copy.bin")["UploadId"]
    pieces = [(0, S3_MIN_PART - 1), (S3_MIN_PART, len(source) - 1)]
    etags = []
    for number, (first, last) in enumerate(pieces, 1):
        copied = s3.upload_part_copy(
            Bucket=mp_bucket,
            Key="copy.bin",
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": mp_bucket, "Key": "source.bin"},
            CopySourceRange=f"bytes={first}-{last}",
        )
        assert copied["CopyPartResult"]["ETag"] == quoted_md5(source[first : last + 1])
        assert copied["CopyPartResult"]["LastModified"]
        etags.append(copied["CopyPartResult"]["ETag"])
    # A third part: the whole source, no range; then replaced by a short tail.
    whole = s3.upload_part_copy(
        Bucket=mp_bucket,
        Key="copy.bin",
        UploadId=upload_id,
        PartNumber=3,
        CopySource=f"{mp_bucket}/source.bin",
    )
    assert whole["CopyPartResult"]["ETag"] == quoted_md5(source)
    tail = s3.upload_part_copy(
        Bucket=mp_bucket,
        Key="copy.bin",
        UploadId=upload_id,
        PartNumber=3,
        CopySource=f"{mp_bucket}/source.bin",
        CopySourceRange="bytes=10-19",
    )
    assert tail["CopyPartResult"]["ETag"] == quoted_md5(source[10:20])
    etags.append(tail["CopyPartResult"]["ETag"])
    listed = s3.list_parts(Bucket=mp_bucket, Key="copy.bin", UploadId=upload_id)["Parts"]
    assert [p["Size"] for p in listed] == [S3_MIN_PART, len(source) - S3_MIN_PART, 10]
    s3.complete_multipart_upload(
        Bucket=mp_bucket,
        Key="copy.bin",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    body = s3.get_object(Bucket=mp_bucket, Key="copy.bin")["Body"].read()
    assert body == source + source[10:20]

    # A range beyond the source, and a source that does not exist.
    upload_id = s3.create_multipart_upload(Bucket=mp_bucket, Key="copy2.bin")["UploadId"]
    error = client_error(
        lambda: s3.upload_part_copy(
            Bucket=mp_bucket,
            Key="copy2.bin",
            UploadId=upload_id,
            PartNumber=1,
            CopySource=f"{mp_bucket}/source.bin",
            CopySourceRange=f"bytes={len(source)}-{len(source) + 10}",
        )
    )
    assert status_of(error) in (400, 416)
    assert code_of(error) in ("InvalidArgument", "InvalidRange")
    error = client_error(
        lambda: s3.upload_part_copy(
            Bucket=mp_bucket,
            Key="copy2.bin",
            UploadId=upload_id,
            PartNumber=1,
            CopySource=f"{mp_bucket}/missing.bin",
        )
    )
    assert code_of(error) == "NoSuchKey"
    assert s3.list_parts(Bucket=mp_bucket, Key="copy2.bin", UploadId=upload_id).get("Parts") in (
        None,
        [],
    )


def test_list_parts_paging(s3: Any, mp_bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=mp_bucket, Key="paged")["UploadId"]
    bodies = {n: f"part {n}".encode() * n for n in (1, 2, 3, 5, 8)}
    for n, body in bodies.items():
        s3.upload_part(Bucket=mp_bucket, Key="paged", UploadId=upload_id, PartNumber=n, Body=body)

    seen: list[int] = []
    marker = 0
    pages = 0
    while True:
        page = s3.list_parts(
            Bucket=mp_bucket, Key="paged", UploadId=upload_id, MaxParts=2, PartNumberMarker=marker
        )
        pages += 1
        numbers = [p["PartNumber"] for p in page["Parts"]]
        assert page["MaxParts"] == 2
        assert page["PartNumberMarker"] == marker
        for p in page["Parts"]:
            assert p["ETag"] == quoted_md5(bodies[p["PartNumber"]])
            assert p["Size"] == len(bodies[p["PartNumber"]])
        seen += numbers
        if not page["IsTruncated"]:
            assert len(numbers) <= 2
            break
        assert len(numbers) == 2
        assert page["NextPartNumberMarker"] == numbers[-1]
        marker = page["NextPartNumberMarker"]
    assert seen == [1, 2, 3, 5, 8]
    assert pages == 3
    after = s3.list_parts(Bucket=mp_bucket, Key="paged", UploadId=upload_id, PartNumberMarker=8)
    assert after.get("Parts", []) == []
    assert after["IsTruncated"] is False
    paginated = [
        p["PartNumber"]
        for page in s3.get_paginator("list_parts").paginate(
            Bucket=mp_bucket, Key="paged", UploadId=upload_id, PaginationConfig={"PageSize": 3}
        )
        for p in page.get("Parts", [])
    ]
    assert paginated == [1, 2, 3, 5, 8]


def test_list_multipart_uploads(s3: Any, mp_bucket: str) -> None:
    created: list[tuple[str, str]] = []
    for key in ("a/1", "b", "c/x/y", "a/2", "b"):
        created.append((key, s3.create_multipart_upload(Bucket=mp_bucket, Key=key)["UploadId"]))
    # S3's order: by key, then by initiation time for uploads of one key.
    expected = sorted(created, key=lambda kv: (kv[0], created.index(kv)))

    everything = s3.list_multipart_uploads(Bucket=mp_bucket)
    assert [(u["Key"], u["UploadId"]) for u in everything["Uploads"]] == expected
    assert everything["IsTruncated"] is False
    assert all(u["Initiated"] for u in everything["Uploads"])

    prefixed = s3.list_multipart_uploads(Bucket=mp_bucket, Prefix="a/")
    assert [u["Key"] for u in prefixed["Uploads"]] == ["a/1", "a/2"]
    assert prefixed["Prefix"] == "a/"

    grouped = s3.list_multipart_uploads(Bucket=mp_bucket, Delimiter="/")
    assert [u["Key"] for u in grouped["Uploads"]] == ["b", "b"]
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["a/", "c/"]
    nested = s3.list_multipart_uploads(Bucket=mp_bucket, Prefix="c/", Delimiter="/")
    assert nested.get("Uploads", []) == []
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["c/x/"]

    # Paging with KeyMarker and UploadIdMarker: the two uploads of "b" split pages.
    paged: list[tuple[str, str]] = []
    params: dict[str, Any] = {}
    while True:
        page = s3.list_multipart_uploads(Bucket=mp_bucket, MaxUploads=2, **params)
        uploads = [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        paged += uploads
        if not page["IsTruncated"]:
            break
        assert (page["NextKeyMarker"], page["NextUploadIdMarker"]) == uploads[-1]
        params = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    assert paged == expected
    # A key marker alone skips every upload of that key.
    after_b = s3.list_multipart_uploads(Bucket=mp_bucket, KeyMarker="b")
    assert [u["Key"] for u in after_b["Uploads"]] == ["c/x/y"]
    # Markers in the middle of the two "b" uploads.
    first_b = expected[2]
    assert first_b[0] == "b"
    middle = s3.list_multipart_uploads(Bucket=mp_bucket, KeyMarker="b", UploadIdMarker=first_b[1])
    assert [(u["Key"], u["UploadId"]) for u in middle["Uploads"]] == expected[3:]

    # With a delimiter, one entry a page: prefixes count towards MaxUploads.
    entries: list[str] = []
    params = {}
    for _ in range(10):
        page = s3.list_multipart_uploads(Bucket=mp_bucket, Delimiter="/", MaxUploads=1, **params)
        entries += [u["Key"] for u in page.get("Uploads", [])]
        entries += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        params = {"KeyMarker": page["NextKeyMarker"]}
        if page.get("NextUploadIdMarker"):
            params["UploadIdMarker"] = page["NextUploadIdMarker"]
    assert entries == ["a/", "b", "b", "c/"]

    for key, upload_id in created:
        s3.abort_multipart_upload(Bucket=mp_bucket, Key=key, UploadId=upload_id)
    assert upload_ids(s3, mp_bucket) == []


# -- errors ----------------------------------------------------------------------------


def start_upload(s3: Any, bucket: str, key: str, parts: list[bytes]) -> tuple[str, list[str]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = [
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=b)["ETag"]
        for n, b in enumerate(parts, 1)
    ]
    return upload_id, etags


def complete_call(
    s3: Any, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
) -> Callable[[], Any]:
    return lambda: s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
    )


def test_complete_errors(s3: Any, mp_bucket: str) -> None:
    parts = [os.urandom(S3_MIN_PART), os.urandom(S3_MIN_PART), b"tail"]
    upload_id, etags = start_upload(s3, mp_bucket, "obj", parts)
    named = list(zip((1, 2, 3), etags, strict=True))

    # InvalidPart: a wrong ETag, and a part never uploaded.
    wrong = [(1, etags[0]), (2, quoted_md5(b"something else")), (3, etags[2])]
    error = client_error(complete_call(s3, mp_bucket, "obj", upload_id, wrong))
    assert (status_of(error), code_of(error)) == (400, "InvalidPart")
    missing = [*named, (4, etags[2])]
    error = client_error(complete_call(s3, mp_bucket, "obj", upload_id, missing))
    assert (status_of(error), code_of(error)) == (400, "InvalidPart")

    # InvalidPartOrder: descending, and a part named twice.
    error = client_error(complete_call(s3, mp_bucket, "obj", upload_id, named[::-1]))
    assert (status_of(error), code_of(error)) == (400, "InvalidPartOrder")
    twice = [named[0], named[0], named[2]]
    error = client_error(complete_call(s3, mp_bucket, "obj", upload_id, twice))
    assert (status_of(error), code_of(error)) == (400, "InvalidPartOrder")

    # EntityTooSmall: the 4-byte part is not last.
    small_first_upload, small_etags = start_upload(
        s3, mp_bucket, "small", [b"tiny", os.urandom(S3_MIN_PART)]
    )
    error = client_error(
        complete_call(
            s3, mp_bucket, "small", small_first_upload, list(zip((1, 2), small_etags, strict=True))
        )
    )
    assert (status_of(error), code_of(error)) == (400, "EntityTooSmall")
    # A small part last is fine, and a single small part alone is fine too.
    assert s3.list_parts(Bucket=mp_bucket, Key="small", UploadId=small_first_upload)["Parts"]
    single = s3.complete_multipart_upload(
        Bucket=mp_bucket,
        Key="small",
        UploadId=small_first_upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": small_etags[0]}]},
    )
    assert single["ETag"] == multipart_etag([b"tiny"])
    assert s3.get_object(Bucket=mp_bucket, Key="small")["Body"].read() == b"tiny"

    # None of the refused completions stored anything or lost the upload.
    error = client_error(lambda: s3.head_object(Bucket=mp_bucket, Key="obj"))
    assert status_of(error) == 404
    listed = s3.list_parts(Bucket=mp_bucket, Key="obj", UploadId=upload_id)["Parts"]
    assert [p["ETag"] for p in listed] == etags

    # The right list completes; then the upload is gone: completing twice is NoSuchUpload.
    done = complete_call(s3, mp_bucket, "obj", upload_id, named)()
    assert done["ETag"] == multipart_etag(parts)
    assert s3.get_object(Bucket=mp_bucket, Key="obj")["Body"].read() == b"".join(parts)
    error = client_error(complete_call(s3, mp_bucket, "obj", upload_id, named))
    assert (status_of(error), code_of(error)) == (404, "NoSuchUpload")
    # The object stays as completed.
    assert s3.head_object(Bucket=mp_bucket, Key="obj")["ETag"] == multipart_etag(parts)

    # NoSuchUpload: the completed id, an id never issued, and a garbage id.
    for bad in (upload_id, fake_upload_id(), "2"):
        for call in (
            lambda u=bad: s3.upload_part(
                Bucket=mp_bucket, Key="obj", UploadId=u, PartNumber=1, Body=b"x"
            ),
            lambda u=bad: s3.list_parts(Bucket=mp_bucket, Key="obj", UploadId=u),
            complete_call(s3, mp_bucket, "obj", bad, named),
            lambda u=bad: s3.abort_multipart_upload(Bucket=mp_bucket, Key="obj", UploadId=u),
        ):
            error = client_error(call)
            assert (status_of(error), code_of(error)) == (404, "NoSuchUpload"), bad
    # An upload's id used with another key.
    other, _ = start_upload(s3, mp_bucket, "other", [])
    error = client_error(lambda: s3.list_parts(Bucket=mp_bucket, Key="obj", UploadId=other))
    assert code_of(error) == "NoSuchUpload"
    # Completing with no parts at all.
    error = client_error(complete_call(s3, mp_bucket, "other", other, []))
    assert status_of(error) == 400
    assert code_of(error) in ("MalformedXML", "InvalidRequest", "InvalidPart")


@pytest.mark.parametrize(
    "body",
    [
        b"this is not xml",
        b"",
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>",
        b"<Something><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Something>",
        b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part>"
        b"</CompleteMultipartUpload>",
    ],
    ids=["garbage", "empty", "truncated", "wrong-root", "no-number", "word-number"],
)
def test_complete_malformed_xml(fs_daemon: Daemon, s3: Any, mp_bucket: str, body: bytes) -> None:
    upload_id, _ = start_upload(s3, mp_bucket, "obj", [b"data"])
    response = requests.post(
        f"{fs_daemon.endpoint}/{mp_bucket}/obj?uploadId={upload_id}", data=body, timeout=30
    )
    assert response.status_code == 400, response.content
    assert response.headers["Content-Type"] == "application/xml"
    assert error_code(response.content) == "MalformedXML"
    assert len(s3.list_parts(Bucket=mp_bucket, Key="obj", UploadId=upload_id)["Parts"]) == 1


def test_complete_with_10001_parts(fs_daemon: Daemon, s3: Any, mp_bucket: str) -> None:
    upload_id, etags = start_upload(s3, mp_bucket, "obj", [b"data"])
    body = complete_xml([(n, etags[0]) for n in range(1, 10002)])
    response = requests.post(
        f"{fs_daemon.endpoint}/{mp_bucket}/obj?uploadId={upload_id}", data=body, timeout=60
    )
    assert response.status_code == 400, response.content[:500]
    assert error_code(response.content) in ("MalformedXML", "InvalidArgument")
    # Part numbers outside 1..10000 in the list.
    for number in (0, 10001, -1):
        response = requests.post(
            f"{fs_daemon.endpoint}/{mp_bucket}/obj?uploadId={upload_id}",
            data=complete_xml([(number, etags[0])]),
            timeout=30,
        )
        assert response.status_code == 400, response.content
        assert error_code(response.content) in ("MalformedXML", "InvalidArgument", "InvalidPart")


@pytest.mark.parametrize("number", ["-1", "abc", "10001", "0", "", "1.5", "+1"])
def test_upload_part_bad_part_number(
    fs_daemon: Daemon, s3: Any, mp_bucket: str, number: str
) -> None:
    upload_id, _ = start_upload(s3, mp_bucket, "obj", [])
    response = requests.put(
        f"{fs_daemon.endpoint}/{mp_bucket}/obj?partNumber={number}&uploadId={upload_id}",
        data=b"some data",
        timeout=30,
    )
    assert response.status_code == 400, response.content
    assert error_code(response.content) == "InvalidArgument"
    assert s3.list_parts(Bucket=mp_bucket, Key="obj", UploadId=upload_id).get("Parts", []) == []
    # 10000 is the largest part number there is.
    response = requests.put(
        f"{fs_daemon.endpoint}/{mp_bucket}/obj?partNumber=10000&uploadId={upload_id}",
        data=b"some data",
        timeout=30,
    )
    assert response.status_code == 200, response.content
    assert response.headers["ETag"] == quoted_md5(b"some data")


def test_upload_part_content_md5_mismatch(s3: Any, mp_bucket: str) -> None:
    first = b"first version of part one"
    upload_id, etags = start_upload(s3, mp_bucket, "obj", [first])
    wrong = base64.b64encode(hashlib.md5(b"not what is sent").digest()).decode()
    for number in (1, 2):  # a replacement of part 1, and a new part 2

        def send(n: int = number) -> object:
            return s3.upload_part(
                Bucket=mp_bucket,
                Key="obj",
                UploadId=upload_id,
                PartNumber=n,
                Body=b"second version",
                ContentMD5=wrong,
            )

        error = client_error(send)
        assert (status_of(error), code_of(error)) == (400, "BadDigest")
    listed = s3.list_parts(Bucket=mp_bucket, Key="obj", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (1, quoted_md5(first), len(first))
    ]
    # With the right digest the part is stored.
    right = base64.b64encode(hashlib.md5(b"second version").digest()).decode()
    sent = s3.upload_part(
        Bucket=mp_bucket,
        Key="obj",
        UploadId=upload_id,
        PartNumber=2,
        Body=b"second version",
        ContentMD5=right,
    )
    assert sent["ETag"] == quoted_md5(b"second version")
    done = complete_call(s3, mp_bucket, "obj", upload_id, [(1, etags[0])])()
    assert done["ETag"] == multipart_etag([first])


# -- processes: restart, two daemons, expiry -------------------------------------------


def test_upload_survives_restart(make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    root = tmp_path / "shared-data"
    first = make_daemon(f"file:{root}")
    s3 = boto3_client(first.endpoint)
    name = unique()
    s3.create_bucket(Bucket=name)
    parts = [os.urandom(S3_MIN_PART), os.urandom(1234567)]
    upload_id = s3.create_multipart_upload(Bucket=name, Key="k", ContentType="text/x-mp")[
        "UploadId"
    ]
    etag1 = s3.upload_part(Bucket=name, Key="k", UploadId=upload_id, PartNumber=1, Body=parts[0])[
        "ETag"
    ]
    first.stop()
    assert first.process is not None and first.process.returncode is not None

    second = make_daemon(f"file:{root}")
    assert second.pid != first.pid
    s3 = boto3_client(second.endpoint)
    assert upload_ids(s3, name) == [upload_id]
    listed = s3.list_parts(Bucket=name, Key="k", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (1, quoted_md5(parts[0]), len(parts[0]))
    ]
    etag2 = s3.upload_part(Bucket=name, Key="k", UploadId=upload_id, PartNumber=2, Body=parts[1])[
        "ETag"
    ]
    done = complete_call(s3, name, "k", upload_id, [(1, etag1), (2, etag2)])()
    assert done["ETag"] == multipart_etag(parts)
    got = s3.get_object(Bucket=name, Key="k")
    assert got["Body"].read() == b"".join(parts)
    assert got["ContentType"] == "text/x-mp"
    assert upload_ids(s3, name) == []
    empty_and_delete(s3, name)


def test_two_daemons_share_uploads(make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    root = tmp_path / "shared-data"
    one = make_daemon(f"file:{root}")
    two = make_daemon(f"file:{root}")
    clients = [boto3_client(one.endpoint), boto3_client(two.endpoint)]
    name = unique()
    clients[0].create_bucket(Bucket=name)
    upload_id = clients[1].create_multipart_upload(Bucket=name, Key="shared")["UploadId"]
    parts = [os.urandom(S3_MIN_PART) for _ in range(3)] + [os.urandom(777)]
    etags = []
    for n, body in enumerate(parts, 1):
        client = clients[n % 2]  # alternate: 1 on two, 2 on one, ...
        sent = client.upload_part(
            Bucket=name, Key="shared", UploadId=upload_id, PartNumber=n, Body=body
        )
        etags.append(sent["ETag"])
    for client in clients:
        listed = client.list_parts(Bucket=name, Key="shared", UploadId=upload_id)["Parts"]
        assert [p["ETag"] for p in listed] == [quoted_md5(p) for p in parts]
        assert upload_ids(client, name) == [upload_id]
    done = complete_call(clients[0], name, "shared", upload_id, list(enumerate(etags, 1)))()
    assert done["ETag"] == multipart_etag(parts)
    got = clients[1].get_object(Bucket=name, Key="shared")
    assert got["ETag"] == multipart_etag(parts)
    assert got["Body"].read() == b"".join(parts)
    # The other daemon sees the upload gone as well.
    error = client_error(complete_call(clients[1], name, "shared", upload_id, [(1, etags[0])]))
    assert code_of(error) == "NoSuchUpload"
    assert upload_ids(clients[1], name) == []
    empty_and_delete(clients[1], name)


def test_racing_completions_one_wins(make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    """Four completions of one upload at once, on two daemons sharing a root: exactly one
    succeeds, the others answer NoSuchUpload, and the object is whole."""
    root = tmp_path / "shared-data"
    clients = [boto3_client(make_daemon(f"file:{root}").endpoint) for _ in range(2)]
    name = unique()
    clients[0].create_bucket(Bucket=name)
    parts = [os.urandom(S3_MIN_PART) for _ in range(3)]
    upload_id, etags = start_upload(clients[0], name, "raced", parts)
    outcomes: list[str] = []

    def complete(client: Any) -> None:
        try:
            done = complete_call(client, name, "raced", upload_id, list(enumerate(etags, 1)))()
            outcomes.append(done["ETag"])
        except ClientError as e:
            outcomes.append(code_of(e))

    threads = [threading.Thread(target=complete, args=(c,)) for c in clients * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == sorted([multipart_etag(parts)] + ["NoSuchUpload"] * 3)
    body = clients[1].get_object(Bucket=name, Key="raced")["Body"].read()
    assert body == b"".join(parts)
    empty_and_delete(clients[0], name)


def test_abandoned_uploads_expire(make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(None, "--multipart-expiry", "2s")
    s3 = boto3_client(daemon.endpoint)
    name = unique()
    s3.create_bucket(Bucket=name)
    born = time.monotonic()  # no later than the upload's initiation
    old = s3.create_multipart_upload(Bucket=name, Key="old")["UploadId"]
    s3.upload_part(Bucket=name, Key="old", UploadId=old, PartNumber=1, Body=b"abandoned")
    uploads_dir = daemon.workdir / "data" / ".s3proxy" / "uploads" / name
    assert (uploads_dir / old).is_dir()
    # The daemon looks once a second: the old upload goes at most ~3 s after it started,
    # the fresh one (1.5 s younger) no sooner than 3.5 s, so there is a second between.
    time.sleep(1.5)
    fresh = s3.create_multipart_upload(Bucket=name, Key="fresh")["UploadId"]
    assert sorted(upload_ids(s3, name)) == sorted([old, fresh])

    deadline = time.monotonic() + 10
    while old in (listed := upload_ids(s3, name)):
        assert time.monotonic() < deadline, "the abandoned upload was not removed"
        time.sleep(0.05)
    assert time.monotonic() - born >= 2.0  # not before its time
    assert listed == [fresh]
    error = client_error(lambda: s3.list_parts(Bucket=name, Key="old", UploadId=old))
    assert code_of(error) == "NoSuchUpload"
    assert [p.name for p in uploads_dir.iterdir()] == [fresh]  # the part's file is gone too

    while upload_ids(s3, name):
        assert time.monotonic() < deadline, "the fresh upload did not expire in its turn"
        time.sleep(0.05)
    error = client_error(lambda: s3.list_parts(Bucket=name, Key="fresh", UploadId=fresh))
    assert code_of(error) == "NoSuchUpload"
    assert list(uploads_dir.iterdir()) == []
    s3.delete_bucket(Bucket=name)
