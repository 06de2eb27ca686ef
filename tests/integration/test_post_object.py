"""Browser form uploads (PostObject) against real daemons: boto3's
``generate_presigned_post`` sent with requests and curl, policy violations, SigV2
forms, open mode, and a 50 MiB upload whose daemon RSS stays flat."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.integration.daemon import Daemon, read_status
from tests.integration.test_auth import (
    ALICE,
    BOB,
    client,
    scratch_bucket,
    signed_daemon,
)
from tests.integration.test_streaming import RssSampler

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    started = signed_daemon(tmp_path_factory.mktemp("post-daemon"))
    yield started
    started.stop()


@pytest.fixture
def alice(daemon: Daemon) -> Any:
    return client(daemon, ALICE)


@pytest.fixture
def bucket(alice: Any) -> Iterator[str]:
    yield from scratch_bucket(alice, "post")


def post(url: str, fields: dict[str, str], data: bytes, filename: str = "f.bin") -> Any:
    return requests.post(url, data=fields, files={"file": (filename, data)}, timeout=60)


def error(response: Any) -> tuple[int, str, str]:
    root = ET.fromstring(response.content)
    return response.status_code, root.findtext("Code") or "", root.findtext("Message") or ""


def test_presigned_post_stores_the_file(alice: Any, bucket: str) -> None:
    form = alice.generate_presigned_post(
        bucket,
        "uploads/${filename}",
        Fields={"Content-Type": "text/plain", "x-amz-meta-origin": "form"},
        Conditions=[
            ["starts-with", "$key", "uploads/"],
            {"Content-Type": "text/plain"},
            {"x-amz-meta-origin": "form"},
            ["content-length-range", 1, 1024],
        ],
        ExpiresIn=300,
    )
    sent = post(form["url"], form["fields"], b"hello form", "notes.txt")
    assert sent.status_code == 204, sent.text
    etag = hashlib.md5(b"hello form").hexdigest()
    assert sent.headers["ETag"] == f'"{etag}"'
    assert sent.headers["Location"].endswith(f"/{bucket}/uploads/notes.txt")
    got = alice.get_object(Bucket=bucket, Key="uploads/notes.txt")
    assert got["Body"].read() == b"hello form"
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"origin": "form"}


def test_success_action_status_and_redirect(alice: Any, bucket: str) -> None:
    created = alice.generate_presigned_post(
        bucket,
        "k201",
        Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}],
    )
    answer = post(created["url"], created["fields"], b"x")
    assert answer.status_code == 201, answer.text
    root = ET.fromstring(answer.content)
    assert root.tag == "PostResponse"
    assert root.findtext("Bucket") == bucket and root.findtext("Key") == "k201"
    assert root.findtext("ETag") == '"' + hashlib.md5(b"x").hexdigest() + '"'
    ok = alice.generate_presigned_post(
        bucket,
        "k200",
        Fields={"success_action_status": "200"},
        Conditions=[{"success_action_status": "200"}],
    )
    assert post(ok["url"], ok["fields"], b"y").status_code == 200
    target = "http://127.0.0.1:1/done?from=form"
    redirected = alice.generate_presigned_post(
        bucket,
        "k303",
        Fields={"success_action_redirect": target},
        Conditions=[{"success_action_redirect": target}],
    )
    moved = requests.post(
        redirected["url"],
        data=redirected["fields"],
        files={"file": ("f", b"z")},
        allow_redirects=False,
        timeout=30,
    )
    assert moved.status_code == 303
    location = urlsplit(moved.headers["Location"])
    assert location.netloc == "127.0.0.1:1" and location.path == "/done"
    query = parse_qs(location.query)
    assert query["from"] == ["form"] and query["bucket"] == [bucket] and query["key"] == ["k303"]
    assert query["etag"] == ['"' + hashlib.md5(b"z").hexdigest() + '"']


def _violations(bucket: str) -> dict[str, tuple[Callable[[Any], dict[str, Any]], str, str]]:
    def presigned(**kwargs: Any) -> Callable[[Any], dict[str, Any]]:
        return lambda s3: s3.generate_presigned_post(bucket, **kwargs)

    return {
        "key outside the prefix": (
            presigned(Key="elsewhere/k", Conditions=[["starts-with", "$key", "uploads/"]]),
            "AccessDenied",
            "Invalid according to Policy: Policy Condition failed: "
            '["starts-with", "$key", "uploads/"]',
        ),
        "too large": (
            presigned(Key="k", Conditions=[["content-length-range", 0, 3]]),
            "EntityTooLarge",
            "",
        ),
        "too small": (
            presigned(Key="k", Conditions=[["content-length-range", 100, 200]]),
            "EntityTooSmall",
            "",
        ),
        "expired": (
            presigned(Key="k", ExpiresIn=-10),
            "AccessDenied",
            "Invalid according to Policy: Policy expired.",
        ),
    }


@pytest.mark.parametrize("case", sorted(_violations("b")))
def test_policy_violations(alice: Any, bucket: str, case: str) -> None:
    make, code, message = _violations(bucket)[case]
    form = make(alice)
    refused = post(form["url"], form["fields"], b"0123456789")
    status, got_code, got_message = error(refused)
    assert (status >= 400, got_code) == (True, code), refused.text
    assert message in got_message
    keys = alice.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
    assert keys == 0


def test_tampered_forms_refused(alice: Any, bucket: str) -> None:
    form = alice.generate_presigned_post(bucket, "k")
    # A field the policy does not name.
    extra = post(form["url"], {**form["fields"], "x-amz-meta-sneaky": "1"}, b"d")
    assert error(extra)[:2] == (403, "AccessDenied")
    assert "Extra input fields: x-amz-meta-sneaky" in error(extra)[2]
    # Another key than the signed one.
    moved = post(form["url"], {**form["fields"], "key": "other"}, b"d")
    assert error(moved)[:2] == (403, "AccessDenied")
    # A policy changed after signing.
    document = json.loads(base64.b64decode(form["fields"]["policy"]))
    document["conditions"].append(["starts-with", "$x-amz-meta-any", ""])
    forged = base64.b64encode(json.dumps(document).encode()).decode()
    bad = post(form["url"], {**form["fields"], "policy": forged}, b"d")
    assert error(bad)[:2] == (403, "SignatureDoesNotMatch")
    # No key at all, no file at all, not a form.
    fields = {k: v for k, v in form["fields"].items() if k != "key"}
    assert error(post(form["url"], fields, b"d"))[:2] == (400, "InvalidArgument")
    no_file = requests.post(form["url"], files={k: (None, v) for k, v in form["fields"].items()})
    assert error(no_file)[:2] == (400, "IncorrectNumberOfFilesInPostRequest")
    not_form = requests.post(form["url"], data=b"raw", headers={"Content-Type": "text/plain"})
    assert error(not_form)[:2] == (412, "PreconditionFailed")
    assert alice.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_anonymous_form_needs_a_writable_bucket(daemon: Daemon, alice: Any, bucket: str) -> None:
    url = f"{daemon.endpoint}/{bucket}"
    denied = post(url, {"key": "anon"}, b"a")
    assert error(denied)[:2] == (403, "AccessDenied")
    alice.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    assert post(url, {"key": "anon"}, b"a").status_code == 204
    assert alice.get_object(Bucket=bucket, Key="anon")["Body"].read() == b"a"


def test_other_users_form_needs_write_permission(daemon: Daemon, bucket: str) -> None:
    form = client(daemon, BOB).generate_presigned_post(bucket, "bobs")
    assert error(post(form["url"], form["fields"], b"b"))[:2] == (403, "AccessDenied")


def test_sigv2_form(daemon: Daemon, alice: Any, bucket: str) -> None:
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
    policy = base64.b64encode(
        json.dumps(
            {
                "expiration": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "conditions": [
                    {"bucket": bucket},
                    ["starts-with", "$key", "v2/"],
                    {"acl": "public-read"},
                ],
            }
        ).encode()
    ).decode()
    signature = base64.b64encode(
        hmac.new(ALICE.secret_key.encode(), policy.encode(), hashlib.sha1).digest()
    ).decode()
    fields = {
        "key": "v2/${filename}",
        "AWSAccessKeyId": ALICE.access_key,
        "acl": "public-read",
        "policy": policy,
        "signature": signature,
    }
    sent = post(f"{daemon.endpoint}/{bucket}", fields, b"v2 data", "doc.txt")
    assert sent.status_code == 204, sent.text
    assert alice.get_object(Bucket=bucket, Key="v2/doc.txt")["Body"].read() == b"v2 data"
    grants = alice.get_object_acl(Bucket=bucket, Key="v2/doc.txt")["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in grants)
    wrong = post(f"{daemon.endpoint}/{bucket}", {**fields, "signature": "AAAA"}, b"v2", "d")
    assert error(wrong)[:2] == (403, "SignatureDoesNotMatch")


def test_curl_form_upload(alice: Any, bucket: str, tmp_path: Path) -> None:
    form = alice.generate_presigned_post(bucket, "curl/${filename}")
    upload = tmp_path / "from-curl.bin"
    upload.write_bytes(b"curl \x00\xff bytes" * 1000)
    command = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"]
    for name, value in form["fields"].items():
        command += ["-F", f"{name}={value}"]
    command += ["-F", f"file=@{upload}", form["url"]]
    out = subprocess.run(command, capture_output=True, check=True, timeout=60)
    assert out.stdout == b"204"
    got = alice.get_object(Bucket=bucket, Key="curl/from-curl.bin")
    assert got["Body"].read() == upload.read_bytes()
    # The file part's own Content-Type (curl: application/octet-stream) is not the
    # object's: S3 takes only the Content-Type field, else its default.
    assert got["ContentType"] == "binary/octet-stream"


def test_open_mode_accepts_unsigned_forms(make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(None, "--no-fsync")
    s3 = client(daemon, ALICE)
    s3.create_bucket(Bucket="open-post")
    sent = post(f"{daemon.endpoint}/open-post", {"key": "free"}, b"open")
    assert sent.status_code == 204, sent.text
    assert s3.get_object(Bucket="open-post", Key="free")["Body"].read() == b"open"


def test_large_upload_streams(daemon: Daemon, alice: Any, bucket: str) -> None:
    size = 50 * MiB
    form = alice.generate_presigned_post(
        bucket, "big", Conditions=[["content-length-range", size, size]]
    )
    digest = hashlib.md5()
    chunk = bytes(range(256)) * 4096  # 1 MiB

    def body() -> Iterator[bytes]:
        boundary = b"----s3proxy-test-boundary"
        for name, value in form["fields"].items():
            yield (
                b"--"
                + boundary
                + b'\r\nContent-Disposition: form-data; name="'
                + name.encode()
                + b'"\r\n\r\n'
                + value.encode()
                + b"\r\n"
            )
        yield (
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; '
            b'filename="big"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        for _ in range(size // len(chunk)):
            digest.update(chunk)
            yield chunk
        yield b"\r\n--" + boundary + b"--\r\n"

    before_kb = read_status(daemon.pid)["VmRSS"]
    sampler = RssSampler(daemon.pid)
    sampler.start()
    try:
        sent = requests.post(
            form["url"],
            data=body(),
            headers={"Content-Type": "multipart/form-data; boundary=----s3proxy-test-boundary"},
            timeout=300,
        )
    finally:
        peak_kb = sampler.stop()
    assert sent.status_code == 204, sent.text
    assert sent.headers["ETag"] == f'"{digest.hexdigest()}"'
    assert sampler.samples > 0
    # The file streams: the daemon grows by a few buffers, not by the 50 MiB.
    assert (peak_kb - before_kb) / 1024 < 24, (before_kb, peak_kb)
    head = alice.head_object(Bucket=bucket, Key="big")
    assert head["ContentLength"] == size
