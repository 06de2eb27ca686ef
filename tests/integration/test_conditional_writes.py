"""Conditional writes through boto3 against a real daemon: If-None-Match: * on
PutObject and CompleteMultipartUpload, If-Match on PutObject and DeleteObject, and
racing creators of one key over real connections: exactly one wins."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.test_tagging import error_of


def test_put_if_none_match(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


def test_put_and_delete_if_match(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["ETag"]
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch='"0000"')
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    new_etag = s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch=etag)["ETag"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="missing", Body=b"x", IfMatch=etag)
    assert error_of(excinfo) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as excinfo:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    s3.delete_object(Bucket=bucket, Key="k", IfMatch=new_etag)
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="k")
    assert error_of(excinfo)[1] == 404


def test_complete_multipart_if_none_match(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="taken", Body=b"x")
    for key, expected in (("taken", "PreconditionFailed"), ("free", None)):
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
        part = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"p"
        )
        complete = {
            "Bucket": bucket,
            "Key": key,
            "UploadId": upload["UploadId"],
            "MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            "IfNoneMatch": "*",
        }
        if expected is None:
            s3.complete_multipart_upload(**complete)
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"p"
        else:
            with pytest.raises(ClientError) as excinfo:
                s3.complete_multipart_upload(**complete)
            assert error_of(excinfo) == (expected, 412)
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x"


def test_racing_creators_over_http_exactly_one_wins(s3: Any, bucket: str) -> None:
    bodies = [bytes([i]) * (256 * 1024 + i) for i in range(8)]

    def create(body: bytes) -> str:
        try:
            s3.put_object(Bucket=bucket, Key="contended", Body=body, IfNoneMatch="*")
            return "created"
        except ClientError as e:
            return e.response["Error"]["Code"]

    for _ in range(3):
        with ThreadPoolExecutor(len(bodies)) as pool:
            outcomes = list(pool.map(create, bodies))
        assert outcomes.count("created") == 1, outcomes
        assert outcomes.count("PreconditionFailed") == len(bodies) - 1, outcomes
        stored = s3.get_object(Bucket=bucket, Key="contended")["Body"].read()
        assert stored == bodies[outcomes.index("created")]
        s3.delete_object(Bucket=bucket, Key="contended")
