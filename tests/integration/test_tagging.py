"""Tagging, GetObjectAttributes and the unconfigured bucket sub-resources, driven by
boto3 against a real daemon (the session's filesystem daemon)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def tag_set(tags: dict[str, str]) -> dict[str, Any]:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def test_object_tagging_round_trip(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert "TagCount" not in s3.head_object(Bucket=bucket, Key="k")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"a": "1", "b": "two"}))
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "two"},
    ]
    assert (
        s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"][
            "x-amz-tagging-count"
        ]
        == "2"
    )
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["TagCount"] == 2 and got["Body"].read() == b"data"
    deleted = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []


def test_tagging_header_on_put_copy_and_multipart(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="color=blue&size=l%20xl")
    assert s3.get_object_tagging(Bucket=bucket, Key="src")["TagSet"] == [
        {"Key": "color", "Value": "blue"},
        {"Key": "size", "Value": "l xl"},
    ]
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "src"})
    assert len(s3.get_object_tagging(Bucket=bucket, Key="copied")["TagSet"]) == 2
    s3.copy_object(
        Bucket=bucket,
        Key="replaced",
        CopySource={"Bucket": bucket, "Key": "src"},
        TaggingDirective="REPLACE",
        Tagging="only=one",
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="replaced")["TagSet"] == [
        {"Key": "only", "Value": "one"}
    ]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="via=mpu")
    part = s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"p"
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="mp")["TagSet"] == [
        {"Key": "via", "Value": "mpu"}
    ]


@pytest.mark.parametrize(
    ("tags", "code"),
    [
        ({f"k{i}": "v" for i in range(11)}, "BadRequest"),
        ({"k" * 129: "v"}, "InvalidTag"),
        ({"k": "v" * 257}, "InvalidTag"),
        ({"aws:reserved": "v"}, "InvalidTag"),
    ],
)
def test_object_tag_limits(s3: Any, bucket: str, tags: dict[str, str], code: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set(tags))
    assert error_of(excinfo) == (code, 400)
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []


def test_duplicate_tag_keys_and_malformed_tagging(s3: Any, bucket: str, fs_daemon: Any) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"")
    body = (
        b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag>"
        b"<Tag><Key>a</Key><Value>2</Value></Tag></TagSet></Tagging>"
    )
    url = f"{fs_daemon.endpoint}/{bucket}/k?tagging"
    answer = requests.put(url, data=body, timeout=10)
    assert answer.status_code == 400 and b"<Code>InvalidTag</Code>" in answer.content
    answer = requests.put(url, data=b"<Tagging><Tag/></Tagging>", timeout=10)
    assert answer.status_code == 400 and b"<Code>MalformedXML</Code>" in answer.content
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="t", Body=b"", Tagging="a=1&a=2")
    assert error_of(excinfo) == ("InvalidTag", 400)
    with pytest.raises(ClientError) as excinfo:
        s3.get_object_tagging(Bucket=bucket, Key="missing")
    assert error_of(excinfo) == ("NoSuchKey", 404)


def test_bucket_tagging(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_of(excinfo) == ("NoSuchTagSet", 404)
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set({"team": "storage", "env": "test"}))
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [
        {"Key": "team", "Value": "storage"},
        {"Key": "env", "Value": "test"},
    ]
    s3.put_bucket_acl(Bucket=bucket, ACL="private")  # the ACL change keeps the tags
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 2
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_of(excinfo) == ("NoSuchTagSet", 404)
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_tagging(Bucket=bucket + "-missing")
    assert error_of(excinfo) == ("NoSuchBucket", 404)


def test_get_object_attributes(s3: Any, bucket: str) -> None:
    data = b"attributes" * 100
    s3.put_object(Bucket=bucket, Key="plain", Body=data, ChecksumAlgorithm="SHA256")
    got = s3.get_object_attributes(
        Bucket=bucket,
        Key="plain",
        ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"],
    )
    assert got["ETag"] == hashlib.md5(data).hexdigest()
    assert got["ObjectSize"] == len(data)
    assert got["StorageClass"] == "STANDARD"
    assert "ChecksumSHA256" in got["Checksum"]
    assert "ObjectParts" not in got
    assert got["LastModified"] is not None

    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    parts = []
    for number, size in ((1, 5 * 1024 * 1024), (2, 5 * 1024 * 1024), (3, 7)):
        part = s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=b"m" * size,
        )
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    page = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=2
    )["ObjectParts"]
    assert page["TotalPartsCount"] == 3 and page["IsTruncated"] is True
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2]
    assert page["NextPartNumberMarker"] == 2
    rest = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], PartNumberMarker=2
    )["ObjectParts"]
    assert [(p["PartNumber"], p["Size"]) for p in rest["Parts"]] == [(3, 7)]
    assert rest["IsTruncated"] is False


def test_get_object_attributes_errors(s3: Any, bucket: str, fs_daemon: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])
    assert error_of(excinfo)[1] == 404
    s3.put_object(Bucket=bucket, Key="k", Body=b"")
    answer = requests.get(
        f"{fs_daemon.endpoint}/{bucket}/k?attributes",
        headers={"x-amz-object-attributes": "ETag,Colour"},
        timeout=10,
    )
    assert answer.status_code == 400 and b"<Code>InvalidArgument</Code>" in answer.content


@pytest.mark.parametrize(
    ("call", "code"),
    [
        ("get_bucket_policy", "NoSuchBucketPolicy"),
        ("get_bucket_lifecycle_configuration", "NoSuchLifecycleConfiguration"),
        ("get_bucket_encryption", "ServerSideEncryptionConfigurationNotFoundError"),
        ("get_bucket_website", "NoSuchWebsiteConfiguration"),
        ("get_bucket_replication", "ReplicationConfigurationNotFoundError"),
        ("get_public_access_block", "NoSuchPublicAccessBlockConfiguration"),
        ("get_bucket_ownership_controls", "OwnershipControlsNotFoundError"),
        ("get_object_lock_configuration", "ObjectLockConfigurationNotFoundError"),
    ],
)
def test_unconfigured_bucket_settings(s3: Any, bucket: str, call: str, code: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        getattr(s3, call)(Bucket=bucket)
    assert error_of(excinfo) == (code, 404)


def test_empty_bucket_settings(s3: Any, bucket: str) -> None:
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=bucket)
    notification = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert notification["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "TopicConfigurations" not in notification
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"
    accelerate = s3.get_bucket_accelerate_configuration(Bucket=bucket)
    assert accelerate["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Status" not in accelerate
    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"]
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)


def test_setting_unsupported_configuration_is_not_implemented(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.put_bucket_policy(Bucket=bucket, Policy="{}")
    assert error_of(excinfo) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as excinfo:
        s3.delete_bucket_lifecycle(Bucket=bucket)
    assert error_of(excinfo) == ("NotImplemented", 501)
