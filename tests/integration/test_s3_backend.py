"""The daemon with ``--backend s3:`` over a moto server, driven by boto3: objects,
listings, multipart uploads and copies pass through to the upstream; an unreachable
upstream is a 503 ServiceUnavailable; the upstream's keys never reach the log."""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from tests.integration.conftest import boto3_client
from tests.integration.daemon import Daemon, free_port, read_status
from tests.integration.test_streaming import RSS_LIMIT_KB, RssSampler
from tests.moto_server import ACCESS_KEY, SECRET_KEY, MotoServer

MiB = 1024 * 1024
PREFIX = "gw1-"


def credentials_file(directory: Path) -> Path:
    path = directory / "upstream.toml"
    path.write_text(f'access_key = "{ACCESS_KEY}"\nsecret_key = "{SECRET_KEY}"\n')
    return path


def start_gateway(make_daemon: Callable[..., Daemon], endpoint: str, tmp_path: Path) -> Daemon:
    return make_daemon(
        f"s3:{endpoint}",
        "--upstream-credentials",
        str(credentials_file(tmp_path)),
        "--upstream-bucket-prefix",
        PREFIX,
    )


@pytest.fixture
def gateway(moto: MotoServer, make_daemon: Callable[..., Daemon], tmp_path: Path) -> Daemon:
    return start_gateway(make_daemon, moto.endpoint, tmp_path)


def upstream_client(moto: MotoServer) -> Any:
    """boto3 straight to moto, to see what really landed upstream."""
    return boto3_client(moto.endpoint)


def stream_md5(body: Any) -> tuple[str, int]:
    md5, size = hashlib.md5(), 0
    for chunk in iter(lambda: body.read(256 * 1024), b""):
        md5.update(chunk)
        size += len(chunk)
    return md5.hexdigest(), size


def test_objects_listing_multipart_copy_delete(gateway: Daemon, moto: MotoServer) -> None:
    s3 = boto3_client(gateway.endpoint)
    upstream = upstream_client(moto)
    bucket = f"it-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # Upstream, the bucket carries the deployment's prefix.
    assert PREFIX + bucket in [b["Name"] for b in upstream.list_buckets()["Buckets"]]

    # 20 MiB through the gateway, both ways, streamed.
    data = random.Random(1).randbytes(20 * MiB)
    put = s3.put_object(
        Bucket=bucket,
        Key="big/blob.bin",
        Body=data,
        ContentType="application/x-test",
        Metadata={"colour": "bleu"},
    )
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="big/blob.bin")
    assert (got["ContentType"], got["Metadata"]) == ("application/x-test", {"colour": "bleu"})
    assert stream_md5(got["Body"]) == (hashlib.md5(data).hexdigest(), len(data))
    ranged = s3.get_object(Bucket=bucket, Key="big/blob.bin", Range="bytes=100-199")
    assert ranged["Body"].read() == data[100:200]
    head = upstream.head_object(Bucket=PREFIX + bucket, Key="big/blob.bin")
    assert head["ContentLength"] == len(data)

    # Listing.
    for key in ("a/1", "a/2", "b"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["b"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a/", "big/"]
    page = s3.list_objects_v2(Bucket=bucket, MaxKeys=2)
    assert [o["Key"] for o in page["Contents"]] == ["a/1", "a/2"]
    assert page["IsTruncated"]
    rest = s3.list_objects_v2(Bucket=bucket, ContinuationToken=page["NextContinuationToken"])
    assert [o["Key"] for o in rest["Contents"]] == ["b", "big/blob.bin"]

    # Multipart, through the upstream's own multipart upload.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="text/x-parts")
    in_progress = upstream.list_multipart_uploads(Bucket=PREFIX + bucket)
    assert [u["Key"] for u in in_progress["Uploads"]] == ["mp"]
    first, second = data[: 5 * MiB], data[5 * MiB : 6 * MiB]
    etags = [
        s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=n, Body=body
        )["ETag"]
        for n, body in ((1, first), (2, second))
    ]
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload["UploadId"])["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MiB), (2, MiB)]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags, strict=True)]
        },
    )
    digests = hashlib.md5(hashlib.md5(first).digest() + hashlib.md5(second).digest())
    assert done["ETag"] == f'"{digests.hexdigest()}-2"'
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["ContentType"] == "text/x-parts"
    assert stream_md5(got["Body"]) == (hashlib.md5(first + second).hexdigest(), 6 * MiB)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    # Copy (server-side, upstream), keeping or replacing the metadata.
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "big/blob.bin"})
    copied = s3.head_object(Bucket=bucket, Key="copy")
    assert (copied["ContentLength"], copied["Metadata"]) == (len(data), {"colour": "bleu"})
    s3.copy_object(
        Bucket=bucket,
        Key="copy",
        CopySource={"Bucket": bucket, "Key": "copy"},
        MetadataDirective="REPLACE",
        Metadata={"colour": "rouge"},
    )
    assert s3.head_object(Bucket=bucket, Key="copy")["Metadata"] == {"colour": "rouge"}

    # Delete.
    for key in ("a/1", "a/2", "b", "big/blob.bin", "mp", "copy"):
        s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="b")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert upstream.list_objects_v2(Bucket=PREFIX + bucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=bucket)
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_streamed_upload_of_unknown_length(gateway: Daemon) -> None:
    """A chunked upload (no Content-Length) is streamed upstream as it arrives."""
    s3 = boto3_client(gateway.endpoint)
    bucket = f"it-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    data = random.Random(2).randbytes(3 * MiB + 5)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 100_000):
            yield data[start : start + 100_000]

    answer = requests.put(f"{gateway.endpoint}/{bucket}/streamed", data=pieces(), timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert s3.get_object(Bucket=bucket, Key="streamed")["Body"].read() == data
    s3.delete_object(Bucket=bucket, Key="streamed")
    s3.delete_bucket(Bucket=bucket)


def test_unreachable_upstream_is_service_unavailable(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    daemon = start_gateway(make_daemon, nobody, tmp_path)
    answer = requests.get(f"{daemon.endpoint}/some-bucket/key", timeout=30)
    assert answer.status_code == 503
    assert answer.headers["Content-Type"] == "application/xml"
    assert "<Code>ServiceUnavailable</Code>" in answer.text
    assert "Traceback" not in answer.text
    with pytest.raises(ClientError) as failed:
        boto3_client(daemon.endpoint).list_buckets()
    assert failed.value.response["Error"]["Code"] == "ServiceUnavailable"


def test_upstream_keys_never_logged(gateway: Daemon) -> None:
    s3 = boto3_client(gateway.endpoint)
    bucket = f"it-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="missing")
    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)
    gateway.stop()
    log = gateway.log_text()
    assert "s3proxy serving s3:" in log  # the log was written, and is the daemon's
    assert SECRET_KEY not in log
    assert ACCESS_KEY not in log


def test_read_cache_in_front_of_the_upstream(
    moto: MotoServer, make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """``--cache`` over ``s3:``: a second read is served again, and a write through
    the gateway is seen at once."""
    daemon = make_daemon(
        f"s3:{moto.endpoint}",
        "--upstream-credentials",
        str(credentials_file(tmp_path)),
        "--upstream-bucket-prefix",
        "cached-",
        "--cache",
        str(tmp_path / "cache"),
        "--cache-size",
        "64M",
    )
    s3 = boto3_client(daemon.endpoint)
    bucket = f"it-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    first = random.Random(3).randbytes(3 * MiB)
    s3.put_object(Bucket=bucket, Key="k", Body=first)
    for _ in range(2):
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == first
    second = random.Random(4).randbytes(MiB)
    s3.put_object(Bucket=bucket, Key="k", Body=second)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == second
    assert any((tmp_path / "cache").rglob("*"))


def test_one_gib_through_the_gateway_keeps_rss_small(gateway: Daemon) -> None:
    """A 1 GiB object streams client -> gateway -> upstream and back without the
    gateway holding it: its RSS stays under 100 MB both ways."""
    gib = 1024 * MiB
    requests.put(f"{gateway.endpoint}/big", timeout=30).raise_for_status()
    block = os.urandom(MiB)
    sampler = RssSampler(gateway.pid)
    sampler.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=300)
        conn.putrequest("PUT", "/big/one-gib", skip_accept_encoding=True)
        conn.putheader("Content-Length", str(gib))
        conn.endheaders()
        sent = hashlib.md5()
        for _ in range(gib // MiB):
            conn.send(block)
            sent.update(block)
        response = conn.getresponse()
        assert response.status == 200, response.read()
        response.read()
        assert response.getheader("ETag") == f'"{sent.hexdigest()}"'

        conn.request("GET", "/big/one-gib")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") == str(gib)
        received, size = hashlib.md5(), 0
        while piece := response.read(MiB):
            received.update(piece)
            size += len(piece)
        conn.close()
    finally:
        peak_kb = sampler.stop()
    assert size == gib and received.hexdigest() == sent.hexdigest()
    assert sampler.samples > 10
    assert peak_kb < RSS_LIMIT_KB, f"gateway RSS peaked at {peak_kb / 1000:.1f} MB"
    assert read_status(gateway.pid)["VmHWM"] < RSS_LIMIT_KB
    requests.delete(f"{gateway.endpoint}/big/one-gib", timeout=30).raise_for_status()
