"""The access log and the admin endpoints of real daemons (``twistd -n s3proxy``):
the log file after a few requests, in text and in JSON; /-/metrics, /-/health and
/-/ready over HTTP, beside the API or on --admin-listen; and no secret anywhere."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon import Daemon, free_port
from tests.integration.test_auth import ALICE, BOB, REGION, credentials_toml

USERS = (ALICE, BOB)


def signed_client(daemon: Daemon, access_key: str, secret_key: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=daemon.endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def access_lines(daemon: Daemon, count: int, timeout: float = 5.0) -> list[str]:
    """The log's access lines, once there are at least ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in daemon.log_text().splitlines() if "s3proxy.access" in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def metric_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests_total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], operation: str, status: str
) -> float:
    key = ("s3proxy_requests_total", (("operation", operation), ("status", status)))
    return samples.get(key, 0.0)


@pytest.fixture
def auth_daemon(make_daemon: Callable[..., Daemon], tmp_path: Path) -> Callable[..., Daemon]:
    """A filesystem daemon with ALICE and BOB as users, plus ``extra`` options."""
    users = tmp_path / "users.toml"
    users.write_text(credentials_toml(USERS))

    def start(*extra: str) -> Daemon:
        return make_daemon(None, "--no-fsync", "--credentials", str(users), *extra)

    return start


def exercise(daemon: Daemon) -> dict[str, str]:
    """Signed requests (one refused, one missing key), a presigned GET and an
    unsigned one; the request id of each, by name."""
    alice = signed_client(daemon, ALICE.access_key, ALICE.secret_key)
    ids: dict[str, str] = {}

    def request_id(response: Any) -> str:
        return str(response["ResponseMetadata"]["RequestId"])

    ids["create"] = request_id(alice.create_bucket(Bucket="obs-log"))
    ids["put"] = request_id(alice.put_object(Bucket="obs-log", Key="a key", Body=b"x" * 1000))
    missing = alice.get_object
    try:
        missing(Bucket="obs-log", Key="missing")
        raise AssertionError("expected NoSuchKey")
    except alice.exceptions.NoSuchKey as e:
        ids["missing"] = e.response["ResponseMetadata"]["RequestId"]
    wrong = signed_client(daemon, ALICE.access_key, BOB.secret_key)
    try:
        wrong.list_objects_v2(Bucket="obs-log")
        raise AssertionError("expected SignatureDoesNotMatch")
    except wrong.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "SignatureDoesNotMatch"
        ids["refused"] = e.response["ResponseMetadata"]["RequestId"]
    url = alice.generate_presigned_url(
        "get_object", Params={"Bucket": "obs-log", "Key": "a key"}, ExpiresIn=300
    )
    query = parse_qs(urlsplit(url).query)
    signature = (query.get("X-Amz-Signature") or query["Signature"])[0]  # SigV4 or SigV2
    presigned = requests.get(url, timeout=10)
    assert presigned.status_code == 200 and presigned.content == b"x" * 1000
    ids["presigned"] = presigned.headers["x-amz-request-id"]
    ids["presigned signature"] = signature
    anonymous = requests.get(f"{daemon.endpoint}/obs-log", timeout=10)
    assert anonymous.status_code == 403
    ids["anonymous"] = anonymous.headers["x-amz-request-id"]
    return ids


def assert_no_secrets(text: str, ids: dict[str, str]) -> None:
    assert ids["presigned signature"] not in text
    for user in USERS:
        assert user.secret_key not in text
    for word in ("Signature=", "X-Amz-Signature", "X-Amz-Credential", "AWS4-HMAC-SHA256"):
        assert word not in text, word


def test_text_access_log(auth_daemon: Callable[..., Daemon]) -> None:
    daemon = auth_daemon()
    ids = exercise(daemon)
    signature = ids.pop("presigned signature")
    lines = access_lines(daemon, len(ids))
    assert len(lines) == len(ids)
    by_id = {line.rsplit("id=", 1)[1]: line for line in lines}
    assert set(by_id) == set(ids.values())

    fields = by_id[ids["put"]].split()
    # time [namespace#level] remote user method target operation status error in out ms id
    assert fields[1] == "[s3proxy.access#info]"
    assert fields[2:10] == [
        "127.0.0.1",
        ALICE.access_key,
        "PUT",
        "/obs-log/a%20key",
        "PutObject",
        "200",
        "-",
        "in=1000",
    ]
    assert fields[11].endswith("ms") and float(fields[11][:-2]) > 0
    assert " GetObject 404 NoSuchKey " in by_id[ids["missing"]]
    # Refused before its handler ran: named by the operation table (V1 and V2 share it).
    refused = by_id[ids["refused"]]
    assert " anonymous GET /obs-log ListObjects 403 SignatureDoesNotMatch " in refused
    assert (
        f" {ALICE.access_key} GET /obs-log/a%20key GetObject 200 - in=0 out=1000 "
        in (by_id[ids["presigned"]])
    )
    assert " anonymous GET /obs-log ListObjects 403 AccessDenied " in by_id[ids["anonymous"]]
    assert_no_secrets(daemon.log_text(), {"presigned signature": signature})


def test_json_access_log(auth_daemon: Callable[..., Daemon]) -> None:
    daemon = auth_daemon("--log-format", "json")
    ids = exercise(daemon)
    signature = ids.pop("presigned signature")
    access_lines(daemon, len(ids))
    records = [json.loads(line) for line in daemon.log_text().splitlines()]
    assert any(r["namespace"] == "s3proxy.tap" for r in records)  # the startup lines too
    access = {r["request_id"]: r for r in records if r["namespace"] == "s3proxy.access"}
    assert set(access) == set(ids.values())
    put = access[ids["put"]]
    assert put == {
        "time": put["time"],
        "level": "info",
        "namespace": "s3proxy.access",
        "request_id": ids["put"],
        "remote": "127.0.0.1",
        "user": ALICE.access_key,
        "method": "PUT",
        "operation": "PutObject",
        "bucket": "obs-log",
        "key": "a key",
        "status": 200,
        "error_code": None,
        "bytes_in": 1000,
        "bytes_out": 0,
        "duration_ms": put["duration_ms"],
        "completed": True,
    }
    assert isinstance(put["duration_ms"], float) and put["duration_ms"] > 0
    missing = access[ids["missing"]]
    assert (missing["status"], missing["error_code"]) == (404, "NoSuchKey")
    assert access[ids["refused"]]["user"] == "anonymous"
    assert access[ids["presigned"]]["bytes_out"] == 1000
    assert_no_secrets(daemon.log_text(), {"presigned signature": signature})


def test_metrics_health_and_ready_beside_the_api(auth_daemon: Callable[..., Daemon]) -> None:
    daemon = auth_daemon()
    before = metric_samples(f"{daemon.endpoint}/-/metrics")
    ids = exercise(daemon)
    after = metric_samples(f"{daemon.url}/-/metrics")  # under the prefix, unsigned
    assert requests_total(before, "PutObject", "200") == 0
    assert requests_total(after, "PutObject", "200") == 1
    assert requests_total(after, "GetObject", "404") == 1
    assert requests_total(after, "GetObject", "200") == 1
    received = ("s3proxy_received_bytes_total", (("operation", "PutObject"),))
    assert after[received] == 1000
    assert after[("s3proxy_requests_in_flight", ())] == 0
    text = requests.get(f"{daemon.endpoint}/-/metrics", timeout=10).text
    assert_no_secrets(text, ids)
    assert ALICE.access_key not in text and "obs-log" not in text

    for path in ("/-/health", "/api/v1/s3/-/health"):
        health = requests.get(daemon.endpoint + path, timeout=10)
        assert (health.status_code, health.text) == (200, "ok\n")
    ready = requests.get(f"{daemon.url}/-/ready", timeout=10)
    assert (ready.status_code, ready.text) == (200, "ready\n")


def test_admin_listen_serves_the_admin_paths_alone(auth_daemon: Callable[..., Daemon]) -> None:
    admin_port = free_port()
    daemon = auth_daemon("--admin-listen", f"tcp:{admin_port}:interface=127.0.0.1")
    admin = f"http://127.0.0.1:{admin_port}"
    assert requests.get(f"{admin}/-/health", timeout=10).text == "ok\n"
    assert requests.get(f"{admin}/api/v1/s3/-/ready", timeout=10).status_code == 200
    assert requests.get(f"{admin}/obs-log", timeout=10).status_code == 404
    on_api = requests.get(f"{daemon.endpoint}/-/health", timeout=10)
    # An S3 request for bucket "-", which no bucket can be called.
    assert on_api.status_code == 404 and "<Code>NoSuchBucket</Code>" in on_api.text
    exercise(daemon)
    samples = metric_samples(f"{admin}/-/metrics")
    assert requests_total(samples, "PutObject", "200") == 1


def test_ready_fails_when_the_data_directory_goes(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = make_daemon(None, "--no-fsync")
    assert requests.get(f"{daemon.endpoint}/-/ready", timeout=10).status_code == 200
    data = tmp_path / "daemon0" / "data"
    assert data.is_dir()
    moved = tmp_path / "moved"
    data.rename(moved)
    try:
        ready = requests.get(f"{daemon.endpoint}/-/ready", timeout=10)
        assert (ready.status_code, ready.text) == (503, "not ready\n")
        assert requests.get(f"{daemon.endpoint}/-/health", timeout=10).status_code == 200
    finally:
        moved.rename(data)
    assert requests.get(f"{daemon.endpoint}/-/ready", timeout=10).status_code == 200


@pytest.fixture
def open_daemon(make_daemon: Callable[..., Daemon]) -> Iterator[Daemon]:
    yield make_daemon("memory:", "--log-format", "json")


def test_open_mode_logs_anonymous_and_one_line_per_request(open_daemon: Daemon) -> None:
    client = signed_client(open_daemon, "any-key", "any-secret")
    client.create_bucket(Bucket="open-log")
    for i in range(5):
        client.put_object(Bucket="open-log", Key=f"k{i}", Body=b"%d" % i)
    lines = access_lines(open_daemon, 6)
    records = [json.loads(line) for line in lines]
    assert len(records) == 6
    assert {r["user"] for r in records} == {"anonymous"}
    assert [r["operation"] for r in records] == ["CreateBucket"] + ["PutObject"] * 5
    assert "any-secret" not in open_daemon.log_text()
