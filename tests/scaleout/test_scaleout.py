"""The scale-out scenario: three daemons behind haproxy, written once and run over every
daemon factory (three daemons on one filesystem root; three daemons over Ceph RGW).

Any daemon can serve any request: a multipart upload moves between daemons part by part,
SDK transfers spread over all of them, and a daemon killed mid-run costs only the
requests it was serving.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.scaleout.farm import Farm
from tests.scaleout.load import RoundTrips

pytestmark = pytest.mark.scaleout

MIB = 1024 * 1024
AWS = Path(sys.executable).with_name("aws")


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        for _ in range(size // MIB):
            f.write(os.urandom(MIB))
        f.write(os.urandom(size % MIB))
    return path


def empty_bucket(s3: Any, name: str) -> None:
    for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=name)


@pytest.fixture
def bucket(farm: Farm) -> Iterator[str]:
    s3 = farm.client()
    name = f"scaleout-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    empty_bucket(s3, name)


def requests_served(farm: Farm) -> dict[str, int]:
    """Per haproxy server: how many requests it has been sent (``stot``)."""
    return {name: int(row["stot"]) for name, row in farm.proxy.server_stats().items()}


def test_haproxy_round_robins_over_every_daemon(farm: Farm) -> None:
    # x-amz-id-2 names the serving process: learn each daemon's, then watch haproxy's.
    own = [requests.get(d.endpoint + "/", timeout=10).headers["x-amz-id-2"] for d in farm.daemons]
    assert len(set(own)) == 3
    with requests.Session() as session:  # one keep-alive connection, balanced per request
        seen = [
            session.get(farm.endpoint + "/", timeout=10).headers["x-amz-id-2"] for _ in range(9)
        ]
    assert Counter(seen) == dict.fromkeys(own, 3)
    assert farm.proxy.statuses() == {"s1": "UP", "s2": "UP", "s3": "UP"}


def test_multipart_upload_moves_between_daemons(farm: Farm, bucket: str) -> None:
    one, two, three = (farm.direct(i) for i in range(3))
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB + 17), os.urandom(100_000)]
    upload = one.create_multipart_upload(Bucket=bucket, Key="moved", ContentType="x/moved")
    upload_id = upload["UploadId"]
    senders = [two, three, two]
    etags = [
        sender.upload_part(Bucket=bucket, Key="moved", UploadId=upload_id, PartNumber=n, Body=body)[
            "ETag"
        ]
        for n, (sender, body) in enumerate(zip(senders, parts, strict=True), start=1)
    ]
    assert etags == [f'"{hashlib.md5(p).hexdigest()}"' for p in parts]
    # Every daemon sees the upload and all its parts, whichever daemon received them.
    listed = one.list_parts(Bucket=bucket, Key="moved", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (n, e, len(b)) for n, (e, b) in enumerate(zip(etags, parts, strict=True), start=1)
    ]
    uploads = three.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("moved", upload_id)]
    done = three.complete_multipart_upload(
        Bucket=bucket,
        Key="moved",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    assert done["ETag"] == multipart_etag(parts)
    whole = hashlib.sha256(b"".join(parts)).hexdigest()
    for client in (one, two, three, farm.client()):
        got = client.get_object(Bucket=bucket, Key="moved")
        assert got["ETag"] == multipart_etag(parts)
        assert got["ContentType"] == "x/moved"
        assert hashlib.sha256(got["Body"].read()).hexdigest() == whole
    assert two.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_boto3_transfer_through_haproxy(farm: Farm, bucket: str, tmp_path: Path) -> None:
    source = random_file(tmp_path / "source", 20 * MIB + 5)
    before = requests_served(farm)
    s3 = farm.client()
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_file(str(source), bucket, "spread/object", Config=config)
    after = requests_served(farm)
    # Create + 5 parts + complete, round-robin: every daemon took a share.
    assert all(after[name] - before[name] >= 2 for name in before), (before, after)
    heads = [farm.direct(i).head_object(Bucket=bucket, Key="spread/object") for i in range(3)]
    assert {h["ETag"] for h in heads} == {heads[0]["ETag"]}
    assert heads[0]["ETag"].endswith('-5"')
    assert {h["ContentLength"] for h in heads} == {20 * MIB + 5}
    s3.download_file(bucket, "spread/object", str(tmp_path / "back"), Config=config)
    assert sha256_file(tmp_path / "back") == sha256_file(source)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="spread/")["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("spread/object", 20 * MIB + 5)]
    s3.delete_object(Bucket=bucket, Key="spread/object")
    for i in range(3):
        assert farm.direct(i).list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.fixture
def aws_env(tmp_path: Path) -> dict[str, str]:
    assert AWS.exists(), f"the aws CLI is not installed next to {sys.executable}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="scaleout",
        AWS_SECRET_ACCESS_KEY="scaleout",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_PAGER="",
        HOME=str(tmp_path),
    )
    return env


def test_aws_cli_through_haproxy(farm: Farm, aws_env: dict[str, str], tmp_path: Path) -> None:
    def aws(*args: str) -> str:
        result = subprocess.run(
            [str(AWS), "--endpoint-url", farm.endpoint, *args],
            env=aws_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"aws {' '.join(args)}: {result.stderr}"
        return result.stdout

    name = f"scaleout-cli-{uuid.uuid4().hex[:8]}"
    source = random_file(tmp_path / "upload.bin", 20 * MIB)  # 3 parts of the CLI's 8 MiB
    aws("s3", "mb", f"s3://{name}")
    aws("s3", "cp", str(source), f"s3://{name}/cli/upload.bin")
    aws("s3", "cp", "-", f"s3://{name}/cli/small.txt", "--content-type", "text/plain")
    listing = aws("s3", "ls", f"s3://{name}/cli/")
    assert "upload.bin" in listing and str(20 * MIB) in listing
    aws("s3", "cp", f"s3://{name}/cli/upload.bin", str(tmp_path / "back.bin"))
    assert sha256_file(tmp_path / "back.bin") == sha256_file(source)
    etag = farm.direct(2).head_object(Bucket=name, Key="cli/upload.bin")["ETag"]
    assert etag.endswith('-3"')
    assert f'"ETag": "\\"{etag.strip(chr(34))}\\""' in aws(
        "s3api", "head-object", "--bucket", name, "--key", "cli/upload.bin"
    )
    aws("s3", "rm", "--recursive", f"s3://{name}/")
    aws("s3", "rb", f"s3://{name}")
    assert name not in aws("s3", "ls")


class SlowUpload:
    """A PUT through haproxy whose body is half sent: a request a daemon is in the middle of."""

    def __init__(self, farm: Farm, bucket: str, key: str, size: int) -> None:
        self.path = f"/{bucket}/{key}"
        self.key = key
        self.body = os.urandom(size)
        self.connection = http.client.HTTPConnection("127.0.0.1", farm.proxy.port, timeout=30)
        self.connection.putrequest("PUT", self.path)
        self.connection.putheader("Content-Length", str(size))
        self.connection.endheaders()
        self.connection.send(self.body[: size // 2])

    def finish(self) -> int | str:
        """The response status, or the error that ended the exchange."""
        try:
            self.connection.send(self.body[len(self.body) // 2 :])
            response = self.connection.getresponse()
            response.read()
            return response.status
        except OSError as e:
            return repr(e)
        finally:
            self.connection.close()


def open_slow_uploads(farm: Farm, bucket: str) -> dict[str, SlowUpload]:
    """One half-sent upload on each daemon: haproxy server name -> its upload."""
    uploads: dict[str, SlowUpload] = {}
    for i in range(len(farm.daemons)):
        before = requests_served(farm)
        upload = SlowUpload(farm, bucket, f"slow/{i}", 4 * MIB)
        deadline = time.monotonic() + 10
        while (after := requests_served(farm)) == before:
            assert time.monotonic() < deadline, "haproxy did not forward the upload"
            time.sleep(0.01)
        (server,) = [name for name in after if after[name] != before[name]]
        uploads[server] = upload
    assert sorted(uploads) == ["s1", "s2", "s3"], "round-robin put one upload on each daemon"
    return uploads


def test_sigkilled_daemon_costs_only_its_in_flight_requests(fresh_farm: Farm) -> None:
    farm = fresh_farm
    s3 = farm.client()
    name = f"scaleout-kill-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    slow = open_slow_uploads(farm, name)
    with RoundTrips(farm, name) as load:
        load.wait(40, clean=True)
        victim = farm.daemons[1]
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.process is not None
        victim.process.wait(timeout=10)
        dead_at = time.monotonic()  # reaped: its sockets are closed
        farm.proxy.wait_for_status({"s1": "UP", "s2": "DOWN", "s3": "UP"}, timeout=20)
        down_at = time.monotonic()
        served_at_down = requests_served(farm)
        finished = {server: upload.finish() for server, upload in slow.items()}
        load.wait(40, after=down_at)
    served_after = requests_served(farm)

    # The upload the dead daemon was receiving is lost, and leaves no partial object; the
    # ones its neighbours were receiving complete.
    assert finished["s1"] == 200 and finished["s3"] == 200, finished
    assert finished["s2"] != 200, finished
    for server, upload in slow.items():
        if server == "s2":
            with pytest.raises(ClientError) as missing:
                s3.head_object(Bucket=name, Key=upload.key)
            assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        else:
            assert s3.get_object(Bucket=name, Key=upload.key)["Body"].read() == upload.body
    failures = load.failures()
    # (seconds after the death, key, error) of each failed round trip, for the messages
    report = [(round(o.started - dead_at, 3), o.key, o.error) for o in failures]
    # Each worker had at most one round trip in flight when the daemon died; every round
    # trip started after its death went to a live daemon (haproxy retried or redispatched).
    assert len(failures) <= len(load.threads), report
    assert all(o.started <= dead_at for o in failures), report
    assert served_after["s2"] == served_at_down["s2"]
    assert served_after["s1"] > served_at_down["s1"] and served_after["s3"] > served_at_down["s3"]
    # Everything acknowledged, on whichever daemon, is still there through the survivors.
    assert len(load.acknowledged()) >= 80
    load.check_all(lambda key: s3.get_object(Bucket=name, Key=key)["Body"].read())
    empty_bucket(s3, name)


def test_sigterm_drains_a_daemon_without_losing_a_request(fresh_farm: Farm) -> None:
    farm = fresh_farm
    s3 = farm.client()
    name = f"scaleout-drain-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    slow = open_slow_uploads(farm, name)
    with RoundTrips(farm, name) as load:
        load.wait(40, clean=True)
        victim = farm.daemons[1]
        os.kill(victim.pid, signal.SIGTERM)  # systemctl stop
        # The upload it is in the middle of may finish (shutdown-grace, 30 s) ...
        finished = {server: upload.finish() for server, upload in slow.items()}
        assert victim.process is not None
        victim.process.wait(timeout=45)
        farm.proxy.wait_for_status({"s1": "UP", "s2": "DOWN", "s3": "UP"}, timeout=20)
        down_at = time.monotonic()
        load.wait(40, after=down_at)

    assert finished == {"s1": 200, "s2": 200, "s3": 200}
    for upload in slow.values():
        assert s3.get_object(Bucket=name, Key=upload.key)["Body"].read() == upload.body
    # ... and no client saw an error: new requests went to the other daemons.
    assert [(o.key, o.error) for o in load.failures()] == []
    assert len(load.acknowledged()) >= 80
    load.check_all(lambda key: s3.get_object(Bucket=name, Key=key)["Body"].read())
    empty_bucket(s3, name)
