"""Conditional writes through boto3 against a real daemon: If-None-Match: * on
PutObject and CompleteMultipartUpload, If-Match on PutObject and DeleteObject.
(Checked before the commit; atomicity against racing writers is not built yet.)"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


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
