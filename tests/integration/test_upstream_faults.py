"""The ``s3:`` backend when its upstream misbehaves: a fault proxy (tests/fault_proxy.py)
between the gateway and moto cuts answers mid-body, stalls, never answers, or answers
503 SlowDown; the proxy counts what reached it.

What is promised: a GET whose upstream body breaks off after the headers went out ends
with the client's connection aborted (fewer bytes than the Content-Length, never a
short body that looks complete); a silent upstream costs a bounded time
(``--upstream-timeout`` x ``--upstream-attempts`` + backoff), then 503; idempotent
requests are retried with a growing backoff, a streamed PUT and a POST are not; the
daemon serves normally once the upstream is well again."""

from __future__ import annotations

import hashlib
import random
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    IncompleteReadError,
    ResponseStreamingError,
)

from tests.fault_proxy import FaultProxy
from tests.integration.daemon import Daemon
from tests.integration.test_cache import wait_for_blocks
from tests.integration.test_s3_backend import credentials_file
from tests.moto_server import MotoServer

MiB = 1024 * 1024
PREFIX = "flt-"
# The module's gateway: patient enough for a busy 2-core CI machine.
TIMEOUT, ATTEMPTS = 3.0, 3
# The impatient one, for the tests that wait for timeouts.
SHORT_TIMEOUT, SHORT_ATTEMPTS = 1.0, 2
BACKOFF = 0.1  # UpstreamClient's first backoff, doubling


@pytest.fixture(scope="module")
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    started = FaultProxy(moto.port).start()
    yield started
    started.stop()


def gateway_daemon(
    proxy: FaultProxy, workdir: Path, timeout: float, attempts: int, *extra: str
) -> Daemon:
    workdir.mkdir(parents=True, exist_ok=True)
    return Daemon(
        backend=f"s3:{proxy.endpoint}",
        workdir=workdir,
        extra_args=[
            "--upstream-credentials",
            str(credentials_file(workdir)),
            "--upstream-bucket-prefix",
            PREFIX,
            "--upstream-timeout",
            str(timeout),
            "--upstream-attempts",
            str(attempts),
            *extra,
        ],
    ).start()


@pytest.fixture(scope="module")
def gateway(proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = gateway_daemon(proxy, tmp_path_factory.mktemp("gw"), TIMEOUT, ATTEMPTS)
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def impatient(proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = gateway_daemon(proxy, tmp_path_factory.mktemp("gw"), SHORT_TIMEOUT, SHORT_ATTEMPTS)
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def bucket(gateway: Daemon) -> str:
    name = f"fault-{uuid.uuid4().hex[:10]}"
    sdk(gateway).create_bucket(Bucket=name)
    return name


@pytest.fixture
def faults(proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The proxy, its faults cleared after the test whatever happens."""
    with proxy.faults():
        yield proxy


def upstream_path(bucket: str, key: str) -> str:
    return f"/{PREFIX}{bucket}/{key}"


def sdk(gateway: Daemon) -> Any:
    """boto3 that tries once: the retries counted at the proxy are the gateway's own."""
    return boto3.client(
        "s3",
        endpoint_url=gateway.endpoint,
        aws_access_key_id="test-access-key",
        aws_secret_access_key="test-secret-key",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


def put(gateway: Daemon, bucket: str, key: str, data: bytes) -> None:
    sdk(gateway).put_object(Bucket=bucket, Key=key, Body=data)


def raw_get(daemon: Daemon, path: str, timeout: float = 60) -> tuple[int, int, int, float]:
    """(status, Content-Length, body bytes received, seconds) of one GET on a raw socket,
    read until the whole body came or the server ended the connection; status 0 when
    the connection was aborted before a whole answer head came."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n\r\n".encode())
        buffer = b""
        try:
            while b"\r\n\r\n" not in buffer:
                data = sock.recv(65536)
                if not data:
                    break
                buffer += data
        except ConnectionResetError:
            pass
        if b"\r\n\r\n" not in buffer:
            return 0, 0, 0, time.monotonic() - started
        head, _, body = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
        # A GET of an object always has its length: a short body is never "complete".
        assert "chunked" not in headers.get("transfer-encoding", "")
        status, length = int(lines[0].split()[1]), int(headers["content-length"])
        received = len(body)
        try:
            while received < length and (data := sock.recv(MiB)):
                received += len(data)
        except ConnectionResetError:
            pass
    return status, length, received, time.monotonic() - started


# -- cut and stalled bodies --------------------------------------------------------------


@pytest.mark.parametrize("after", [0, MiB + 17])
def test_upstream_cut_mid_get_aborts_the_client(
    gateway: Daemon, bucket: str, faults: FaultProxy, after: int
) -> None:
    data = random.Random(after).randbytes(4 * MiB)
    key = f"cut-{after}"
    put(gateway, bucket, key, data)
    faults.cut(upstream_path(bucket, key), after=after)

    status, length, received, _ = raw_get(gateway, f"/{bucket}/{key}")
    # The connection ends short of the Content-Length (or before the head, when the
    # abort comes first): never a short body that looks complete.
    assert status in (0, 200)
    if status:
        assert length == len(data) and received < length
    # What an SDK makes of it: an error, never a short object.
    s3 = sdk(gateway)
    with pytest.raises((IncompleteReadError, ResponseStreamingError, ConnectionClosedError)):
        s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    faults.clear()
    got = sdk(gateway).get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.md5(got).digest() == hashlib.md5(data).digest()


def test_stalled_upstream_body_is_cut_off_within_the_timeout(
    impatient: Daemon, gateway: Daemon, bucket: str, faults: FaultProxy
) -> None:
    data = random.Random(7).randbytes(3 * MiB)
    put(gateway, bucket, "stall", data)
    faults.stall(upstream_path(bucket, "stall"), after=MiB)

    status, length, received, elapsed = raw_get(impatient, f"/{bucket}/stall")
    assert (status, length) == (200, len(data))
    assert MiB <= received < len(data)
    # The idle timer of the upstream body, not the client's patience, ended it.
    assert SHORT_TIMEOUT <= elapsed < SHORT_TIMEOUT + 5

    faults.clear()
    assert raw_get(impatient, f"/{bucket}/stall")[2] == len(data)


# -- an upstream that does not answer ----------------------------------------------------


def test_silent_upstream_is_503_within_the_bound(
    impatient: Daemon, gateway: Daemon, bucket: str, faults: FaultProxy
) -> None:
    put(gateway, bucket, "quiet", b"still here")
    path = upstream_path(bucket, "quiet")
    faults.hang(path, method="GET")

    started = time.monotonic()
    answer = requests.get(f"{impatient.endpoint}/{bucket}/quiet", timeout=60)
    elapsed = time.monotonic() - started
    assert answer.status_code == 503
    assert answer.headers["Content-Type"] == "application/xml"
    assert "<Code>ServiceUnavailable</Code>" in answer.text
    # Every attempt waited its timeout, and there were no more attempts than allowed.
    bound = SHORT_ATTEMPTS * SHORT_TIMEOUT + BACKOFF * (2 ** (SHORT_ATTEMPTS - 1) - 1)
    assert bound * 0.9 <= elapsed < bound + 5
    assert len(faults.requests("GET", path)) == SHORT_ATTEMPTS

    faults.clear()
    answer = requests.get(f"{impatient.endpoint}/{bucket}/quiet", timeout=60)
    assert (answer.status_code, answer.content) == (200, b"still here")


def test_upload_never_answered_is_503_and_not_resent(
    impatient: Daemon, bucket: str, faults: FaultProxy
) -> None:
    """The upstream takes the whole body and never answers: the writer gives up after
    the timeout; a streamed body is never sent twice."""
    path = upstream_path(bucket, "unanswered")
    faults.hang(path, method="PUT")
    started = time.monotonic()
    answer = requests.put(
        f"{impatient.endpoint}/{bucket}/unanswered", data=b"x" * 300_000, timeout=60
    )
    elapsed = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    assert "<Code>ServiceUnavailable</Code>" in answer.text
    assert elapsed < SHORT_TIMEOUT + 5
    assert len(faults.requests("PUT", path)) == 1


# -- 503 SlowDown: retries ---------------------------------------------------------------


def client_call(gateway: Daemon, method: str, bucket: str, key: str) -> requests.Response:
    """A client request that makes the gateway send ``method`` upstream for ``key``: a
    CopyObject for HEAD (the gateway HEADs the source; a client's HEAD is served from
    an upstream GET, see test_client_head_reads_upstream_with_get)."""
    url = f"{gateway.endpoint}/{bucket}/{key}"
    if method == "HEAD":
        source = {"x-amz-copy-source": f"/{bucket}/{key}"}
        return requests.put(url + "-copy", headers=source, timeout=60)
    return requests.request(method, url, timeout=60)


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_idempotent_requests_are_retried_with_backoff(
    gateway: Daemon, bucket: str, faults: FaultProxy, method: str
) -> None:
    key = f"retried-{method.lower()}"
    put(gateway, bucket, key, b"payload")
    path = upstream_path(bucket, key)
    faults.answer(path, method=method, times=ATTEMPTS - 1)

    answer = client_call(gateway, method, bucket, key)
    assert answer.status_code == (204 if method == "DELETE" else 200), answer.text
    # The first ATTEMPTS - 1 were refused, the next one served (a copy HEADs its
    # source once more afterwards).
    seen = faults.requests(method, path)[:ATTEMPTS]
    assert len(seen) == ATTEMPTS
    gaps = [b.at - a.at for a, b in zip(seen, seen[1:], strict=False)]
    for attempt, gap in enumerate(gaps):
        assert gap >= 0.9 * BACKOFF * 2**attempt, gaps


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_retries_are_bounded_then_503(
    gateway: Daemon, bucket: str, faults: FaultProxy, method: str
) -> None:
    key = f"unavailable-{method.lower()}"
    put(gateway, bucket, key, b"payload")
    path = upstream_path(bucket, key)
    faults.answer(path, method=method)

    answer = client_call(gateway, method, bucket, key)
    assert answer.status_code == 503
    assert "<Code>ServiceUnavailable</Code>" in answer.text
    assert "<Message>Please reduce your request rate.</Message>" in answer.text
    assert len(faults.requests(method, path)) == ATTEMPTS

    faults.clear()
    assert requests.head(f"{gateway.endpoint}/{bucket}/{key}", timeout=60).status_code == 200


@pytest.mark.parametrize("early", [False, True])
def test_streamed_put_is_sent_once(
    gateway: Daemon, bucket: str, faults: FaultProxy, early: bool
) -> None:
    """Refused after its body, or at once (the upstream closes without reading it)."""
    key = f"put-once-{'early' if early else 'late'}"
    path = upstream_path(bucket, key)
    faults.answer(path, method="PUT", early=early)
    data = random.Random(9).randbytes(2 * MiB)
    with pytest.raises(ClientError) as failed:
        put(gateway, bucket, key, data)
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert failed.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert len(faults.requests("PUT", path)) == 1
    faults.clear()
    put(gateway, bucket, key, data)
    got = sdk(gateway).get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == data


def test_multipart_part_and_complete_are_sent_once(
    gateway: Daemon, bucket: str, faults: FaultProxy
) -> None:
    """UploadPart (a streamed PUT) and CompleteMultipartUpload (a POST) are not resent;
    after the upstream recovers the same upload completes."""
    s3: Any = sdk(gateway)
    path = upstream_path(bucket, "mp")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = random.Random(11).randbytes(MiB)

    faults.answer(path, method="PUT", times=1)
    with pytest.raises(ClientError) as failed:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=part)
    assert failed.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert len(faults.requests("PUT", path)) == 1
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=part)["ETag"]
    assert len(faults.requests("PUT", path)) == 2

    faults.answer(path, method="POST", times=1)
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    with pytest.raises(ClientError) as failed:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts
        )
    assert failed.value.response["Error"]["Code"] == "ServiceUnavailable"
    posts = [s for s in faults.requests("POST", path) if "uploadId=" in s.query]
    assert len(posts) == 1
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts)
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == part


def test_client_head_is_an_upstream_head(gateway: Daemon, bucket: str, faults: FaultProxy) -> None:
    """A client's HEAD is answered from an upstream HEAD (never a GET whose connection
    is thrown away half read); its faults are retried like any idempotent request."""
    put(gateway, bucket, "headed", b"payload")
    path = upstream_path(bucket, "headed")
    answer = requests.head(f"{gateway.endpoint}/{bucket}/headed", timeout=60)
    assert answer.status_code == 200
    assert answer.headers["Content-Length"] == str(len(b"payload"))
    assert faults.requests("GET", path) == []
    assert len(faults.requests("HEAD", path)) == 1
    faults.answer(path, method="HEAD")
    answer = requests.head(f"{gateway.endpoint}/{bucket}/headed", timeout=60)
    assert answer.status_code == 503
    assert len(faults.requests("HEAD", path)) == 1 + ATTEMPTS
    assert faults.requests("GET", path) == []


def test_corrupt_cache_block_is_refetched_from_the_upstream(
    proxy: FaultProxy, gateway: Daemon, bucket: str, tmp_path: Path
) -> None:
    """``--cache`` over ``s3:``: a block flipped on disk fails its checksum and is read
    from the upstream again (the proxy sees that GET); the client gets the right bytes."""
    cache = tmp_path / "cache"
    daemon = gateway_daemon(proxy, tmp_path / "gw", TIMEOUT, ATTEMPTS, "--cache", str(cache))
    try:
        data = random.Random(13).randbytes(2 * MiB + 3)
        put(gateway, bucket, "cached", data)
        path = upstream_path(bucket, "cached")
        assert sdk(daemon).get_object(Bucket=bucket, Key="cached")["Body"].read() == data
        blocks = wait_for_blocks(cache, len(data))
        assert sdk(daemon).get_object(Bucket=bucket, Key="cached")["Body"].read() == data
        fetched = len(proxy.requests("GET", path))  # the miss only: the hit read no body

        damaged = sorted(blocks)[1]
        raw = bytearray(Path(damaged).read_bytes())
        raw[len(raw) // 2] ^= 0x40
        Path(damaged).write_bytes(bytes(raw))
        assert sdk(daemon).get_object(Bucket=bucket, Key="cached")["Body"].read() == data
        assert len(proxy.requests("GET", path)) > fetched
    finally:
        daemon.stop()
