"""The harness itself: boto3 straight against the session's Ceph RGW."""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

import pytest

from tests.scaleout.ceph import CephCluster

pytestmark = pytest.mark.scaleout

PART = 5 * 1024 * 1024


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


@pytest.fixture
def rgw_bucket(ceph: CephCluster) -> Any:
    s3 = ceph.client()
    name = f"harness-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for entry in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=entry["Key"])
    for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket=name)


def test_daemons_listen_on_loopback_only(ceph: CephCluster) -> None:
    assert ceph.endpoint.startswith("http://127.0.0.1:")
    conf = ceph.conf.read_text()
    assert f"mon host = [v2:127.0.0.1:{ceph.mon_port}]" in conf
    assert f"endpoint=127.0.0.1:{ceph.rgw_port}" in conf
    assert all(p.poll() is None for p in ceph.processes.values()), "a Ceph daemon died"
    assert set(ceph.processes) == {"mon.a", "osd.0", "client.rgw.scaleout"}


def test_bucket_put_get_list(ceph: CephCluster, rgw_bucket: str) -> None:
    s3 = ceph.client()
    assert rgw_bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    bodies = {f"dir/key-{i}": os.urandom(1000 + i) for i in range(5)}
    for key, body in bodies.items():
        put = s3.put_object(Bucket=rgw_bucket, Key=key, Body=body, Metadata={"n": key[-1]})
        assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    for key, body in bodies.items():
        got = s3.get_object(Bucket=rgw_bucket, Key=key)
        assert got["Body"].read() == body
        assert got["Metadata"] == {"n": key[-1]}
    listed = s3.list_objects_v2(Bucket=rgw_bucket, Prefix="dir/", MaxKeys=3)
    assert [o["Key"] for o in listed["Contents"]] == sorted(bodies)[:3]
    assert listed["IsTruncated"]
    rest = s3.list_objects_v2(
        Bucket=rgw_bucket, Prefix="dir/", ContinuationToken=listed["NextContinuationToken"]
    )
    assert [o["Key"] for o in rest["Contents"]] == sorted(bodies)[3:]
    assert {o["Size"] for o in rest["Contents"]} == {len(bodies[k]) for k in sorted(bodies)[3:]}


def test_multipart_three_parts(ceph: CephCluster, rgw_bucket: str) -> None:
    s3 = ceph.client()
    parts = [os.urandom(PART), os.urandom(PART), os.urandom(1234)]
    upload = s3.create_multipart_upload(Bucket=rgw_bucket, Key="big")["UploadId"]
    etags = [
        s3.upload_part(Bucket=rgw_bucket, Key="big", UploadId=upload, PartNumber=n, Body=body)[
            "ETag"
        ]
        for n, body in enumerate(parts, start=1)
    ]
    listed = s3.list_parts(Bucket=rgw_bucket, Key="big", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (n, etag, len(body)) for n, (etag, body) in enumerate(zip(etags, parts, strict=True), 1)
    ]
    s3.complete_multipart_upload(
        Bucket=rgw_bucket,
        Key="big",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    # (RGW 16.2 answers Complete with an empty ETag; HEAD has the real one.)
    head = s3.head_object(Bucket=rgw_bucket, Key="big")
    assert head["ETag"] == multipart_etag(parts)
    assert head["ContentLength"] == sum(map(len, parts))
    whole = s3.get_object(Bucket=rgw_bucket, Key="big")["Body"].read()
    assert hashlib.sha256(whole).digest() == hashlib.sha256(b"".join(parts)).digest()
    ranged = s3.get_object(Bucket=rgw_bucket, Key="big", Range=f"bytes={PART - 2}-{PART + 1}")
    assert ranged["Body"].read() == parts[0][-2:] + parts[1][:2]
