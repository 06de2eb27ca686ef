"""Bucket CORS against a real daemon with credentials: the configuration calls through
boto3, the preflight and the actual cross-origin requests exactly as a browser sends
them (see test_browser_cors.py for a real browser)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from tests.integration.daemon import Daemon
from tests.integration.test_auth import (
    ALICE,
    USERS,
    client,
    scratch_bucket,
    signed_daemon,
)

PAGE_ORIGIN = "http://127.0.0.1:8123"
RULES = {
    "CORSRules": [
        {
            "ID": "uploads",
            "AllowedMethods": ["PUT", "POST", "GET"],
            "AllowedOrigins": ["http://127.0.0.1:*"],
            "AllowedHeaders": ["content-type", "x-amz-*"],
            "ExposeHeaders": ["ETag", "x-amz-request-id"],
            "MaxAgeSeconds": 600,
        },
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]},
    ]
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    started = signed_daemon(tmp_path_factory.mktemp("cors-daemon"))
    yield started
    started.stop()


@pytest.fixture
def alice(daemon: Daemon) -> Any:
    return client(daemon, ALICE)


@pytest.fixture
def bucket(alice: Any) -> Iterator[str]:
    yield from scratch_bucket(alice, "cors")


def error_code(e: ClientError) -> tuple[int, str]:
    return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]


def test_configuration_round_trip(alice: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as missing:
        alice.get_bucket_cors(Bucket=bucket)
    assert error_code(missing.value) == (404, "NoSuchCORSConfiguration")
    alice.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    got = alice.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got == RULES["CORSRules"]
    alice.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError) as deleted:
        alice.get_bucket_cors(Bucket=bucket)
    assert error_code(deleted.value) == (404, "NoSuchCORSConfiguration")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"AllowedMethods": ["PATCH"], "AllowedOrigins": ["*"]}, "Unsupported method is PATCH"),
        (
            {"AllowedMethods": ["GET"], "AllowedOrigins": ["http://*.a.*"]},
            "can not have more than one wildcard",
        ),
    ],
)
def test_invalid_rules_refused(alice: Any, bucket: str, rule: Any, message: str) -> None:
    with pytest.raises(ClientError) as refused:
        alice.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
    assert error_code(refused.value) == (400, "InvalidRequest")
    assert message in refused.value.response["Error"]["Message"]


def test_only_the_owner_configures_cors(daemon: Daemon, bucket: str) -> None:
    bob = client(daemon, USERS[1])
    with pytest.raises(ClientError) as denied:
        bob.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    assert error_code(denied.value) == (403, "AccessDenied")


def preflight(daemon: Daemon, path: str, origin: str | None, method: str, headers: str = "") -> Any:
    sent = {"Access-Control-Request-Method": method}
    if origin is not None:
        sent["Origin"] = origin
    if headers:
        sent["Access-Control-Request-Headers"] = headers
    return requests.options(f"{daemon.endpoint}{path}", headers=sent, timeout=10)


def test_preflight_answered_from_the_rules(daemon: Daemon, alice: Any, bucket: str) -> None:
    alice.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    allowed = preflight(
        daemon, f"/{bucket}/photo.jpg", PAGE_ORIGIN, "PUT", "Content-Type, X-Amz-Meta-Tag"
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
    assert allowed.headers["Access-Control-Allow-Methods"] == "PUT, POST, GET"
    assert allowed.headers["Access-Control-Allow-Headers"] == "content-type, x-amz-meta-tag"
    assert allowed.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert allowed.headers["Access-Control-Max-Age"] == "600"
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in allowed.headers["Vary"]
    # The wildcard rule answers any origin with "*", and no credentials.
    anyone = preflight(daemon, f"/{bucket}/photo.jpg", "https://elsewhere.test", "GET")
    assert anyone.status_code == 200
    assert anyone.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in anyone.headers
    # A preflight of a sub-resource request is a preflight too.
    uploads = preflight(daemon, f"/{bucket}/big?uploads", PAGE_ORIGIN, "POST")
    assert uploads.status_code == 200


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        ("https://elsewhere.test", "PUT", ""),  # origin not allowed for PUT
        (PAGE_ORIGIN, "DELETE", ""),  # method not allowed
        (PAGE_ORIGIN, "PUT", "authorization"),  # header not allowed
    ],
)
def test_preflight_refused(
    daemon: Daemon, alice: Any, bucket: str, origin: str, method: str, headers: str
) -> None:
    alice.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    refused = preflight(daemon, f"/{bucket}/k", origin, method, headers)
    assert refused.status_code == 403
    assert "<Code>AccessForbidden</Code>" in refused.text
    assert "CORSResponse: This CORS request is not allowed" in refused.text
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_preflight_without_configuration_or_origin(daemon: Daemon, bucket: str) -> None:
    disabled = preflight(daemon, f"/{bucket}/k", PAGE_ORIGIN, "PUT")
    assert disabled.status_code == 403
    assert "CORS is not enabled for this bucket" in disabled.text
    no_origin = preflight(daemon, f"/{bucket}/k", None, "PUT")
    assert no_origin.status_code == 400
    assert "<Code>BadRequest</Code>" in no_origin.text


def test_actual_requests_carry_cors_headers(daemon: Daemon, alice: Any, bucket: str) -> None:
    alice.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    # A page uploads with a presigned URL, as a browser does after the preflight.
    url = alice.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "up.txt", "ContentType": "text/plain"}
    )
    put = requests.put(
        url,
        data=b"from the page",
        headers={"Origin": PAGE_ORIGIN, "Content-Type": "text/plain"},
        timeout=10,
    )
    assert put.status_code == 200, put.text
    assert put.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
    assert put.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert alice.get_object(Bucket=bucket, Key="up.txt")["Body"].read() == b"from the page"
    # Errors carry them too, so the page can read the <Error> document.
    url = alice.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "missing"})
    missing = requests.get(url, headers={"Origin": PAGE_ORIGIN}, timeout=10)
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
    # Without an Origin, or from an origin no rule allows, nothing is added.
    plain = requests.put(url.replace("missing", "x"), data=b"", timeout=10)
    assert "Access-Control-Allow-Origin" not in plain.headers
    other = requests.get(url, headers={"Origin": "https://elsewhere.test"}, timeout=10)
    assert other.headers["Access-Control-Allow-Origin"] == "*"  # the GET-from-anywhere rule


def test_complete_multipart_upload_carries_cors_headers(alice: Any, bucket: str) -> None:
    """CompleteMultipartUpload answers through its own (keep-alive capable) path."""
    alice.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    upload = alice.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = alice.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"p")
    url = alice.generate_presigned_url(
        "complete_multipart_upload", Params={"Bucket": bucket, "Key": "mp", "UploadId": upload}
    )
    body = (
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        f"<ETag>{part['ETag']}</ETag></Part></CompleteMultipartUpload>"
    )
    done = requests.post(url, data=body, headers={"Origin": PAGE_ORIGIN}, timeout=30)
    assert done.status_code == 200, done.text
    assert "<CompleteMultipartUploadResult" in done.text
    assert done.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
    assert done.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
