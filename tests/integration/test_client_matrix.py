"""The client matrix: one scenario per S3 client against a daemon with credentials on
loopback, run the way docs/clients.md shows it. Each makes a bucket, uploads a small
and a 40 MiB file (multipart where the client does that on its own), lists with and
without a prefix, downloads and compares the bytes, copies, deletes and removes the
bucket. A client that is not installed fails its test."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from s3proxy.auth.credentials import User
from tests.integration.daemon import PREFIX, Daemon
from tests.integration.test_auth import ALICE, REGION, start_auth_daemon

BIN = Path(sys.executable).parent
SMALL_SIZE = 1234
BIG_SIZE = 40 * 1024 * 1024
USER: User = ALICE


@dataclass
class Files:
    small: Path
    big: Path

    def digest(self, path: Path) -> str:
        return sha256_of(path)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    started = start_auth_daemon(tmp_path_factory.mktemp("matrix-daemon"), (USER,))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    folder = tmp_path_factory.mktemp("matrix-files")
    rng = random.Random(40)
    small = folder / "small.txt"
    small.write_bytes(rng.randbytes(SMALL_SIZE))
    big = folder / "big.bin"
    with big.open("wb") as f:
        for _ in range(BIG_SIZE // (1024 * 1024)):
            f.write(rng.randbytes(1024 * 1024))
    return Files(small, big)


@pytest.fixture
def inspector(daemon: Daemon) -> Any:
    """boto3, to check what each client did (and to clean up after a failure)."""
    return boto3.client(
        "s3",
        endpoint_url=daemon.endpoint,
        aws_access_key_id=USER.access_key,
        aws_secret_access_key=USER.secret_key,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


@pytest.fixture
def bucket_name(inspector: Any) -> Iterator[str]:
    name = f"matrix-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        for page in inspector.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                inspector.delete_object(Bucket=name, Key=item["Key"])
        inspector.delete_bucket(Bucket=name)
    except Exception:
        pass  # the scenario removed it


def assert_stored(inspector: Any, bucket: str, key: str, source: Path) -> None:
    """The object holds exactly the file's bytes (read back by another client)."""
    body = inspector.get_object(Bucket=bucket, Key=key)["Body"]
    h = hashlib.sha256()
    for chunk in iter(lambda: body.read(1024 * 1024), b""):
        h.update(chunk)
    assert h.hexdigest() == sha256_of(source), f"{key} differs from {source.name}"


def assert_gone(inspector: Any, bucket: str) -> None:
    names = [b["Name"] for b in inspector.list_buckets()["Buckets"]]
    assert bucket not in names


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 180) -> str:
    result = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{' '.join(args[:4])}...: {result.stdout}\n{result.stderr}"
    return result.stdout


# -- curl --aws-sigv4 ------------------------------------------------------------------


class Curl:
    def __init__(self, daemon: Daemon) -> None:
        path = shutil.which("curl")
        assert path, "curl is not installed"
        self.base = daemon.url  # under the /api/v1/s3 prefix, as the reference page
        self.args = [
            path,
            "--silent",
            "--show-error",
            "--fail",
            "--aws-sigv4",
            f"aws:amz:{REGION}:s3",
            "--user",
            f"{USER.access_key}:{USER.secret_key}",
            # S3 wants the payload hash header with every SigV4 request; curl (before
            # 8.x) does not send it on its own.
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
        ]

    def __call__(self, *args: str) -> str:
        return run([*self.args, *args])


def test_curl(
    daemon: Daemon, files: Files, bucket_name: str, inspector: Any, tmp_path: Path
) -> None:
    curl = Curl(daemon)
    url = f"{curl.base}/{bucket_name}"
    curl("-X", "PUT", url)
    curl("-T", str(files.small), f"{url}/docs/small.txt")
    curl("-T", str(files.big), f"{url}/big.bin")  # one streamed PUT: curl has no multipart

    listing = curl(url)
    assert "<Key>docs/small.txt</Key>" in listing and "<Key>big.bin</Key>" in listing
    # Query values percent-encoded as SigV4 canonicalizes them: curl 7.x signs the
    # query as written.
    only_docs = curl(f"{url}?prefix=docs%2F")
    assert "<Key>docs/small.txt</Key>" in only_docs and "big.bin" not in only_docs

    for key, source in (("docs/small.txt", files.small), ("big.bin", files.big)):
        target = tmp_path / source.name
        curl("-o", str(target), f"{url}/{key}")
        assert sha256_of(target) == sha256_of(source)

    curl("-X", "PUT", "-H", f"x-amz-copy-source: /{bucket_name}/big.bin", f"{url}/copy.bin")
    assert_stored(inspector, bucket_name, "copy.bin", files.big)

    for key in ("docs/small.txt", "big.bin", "copy.bin"):
        curl("-X", "DELETE", f"{url}/{key}")
    curl("-X", "DELETE", url)
    assert_gone(inspector, bucket_name)


# -- boto 2.49 ------------------------------------------------------------------------


@pytest.fixture
def boto2(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto
    import boto.connection
    import boto.provider
    import boto.pyami.config
    import boto.s3.connection

    # No user boto configuration in the way (see test_boto2.py).
    monkeypatch.setenv("BOTO_CONFIG", "/dev/null")
    empty = boto.pyami.config.Config(path="/dev/null")
    for module in (boto, boto.connection, boto.provider):
        monkeypatch.setattr(module, "config", empty)
    return boto.connect_s3(
        aws_access_key_id=USER.access_key,
        aws_secret_access_key=USER.secret_key,
        host="127.0.0.1",
        port=daemon.port,
        is_secure=False,
        calling_format=boto.s3.connection.OrdinaryCallingFormat(),
    )


def test_boto2(boto2: Any, files: Files, bucket_name: str, inspector: Any, tmp_path: Path) -> None:
    from filechunkio import FileChunkIO

    bucket = boto2.create_bucket(bucket_name)
    bucket.new_key("docs/small.txt").set_contents_from_filename(str(files.small))

    # boto 2 has no automatic multipart: its documented recipe, 16 MiB parts.
    upload = bucket.initiate_multipart_upload("big.bin")
    part_size = 16 * 1024 * 1024
    for number, offset in enumerate(range(0, BIG_SIZE, part_size), start=1):
        size = min(part_size, BIG_SIZE - offset)
        with FileChunkIO(str(files.big), "r", offset=offset, bytes=size) as part:
            upload.upload_part_from_file(part, part_num=number)
    upload.complete_upload()
    assert bucket.get_key("big.bin").etag.strip('"').endswith("-3")

    assert sorted(k.name for k in bucket.list()) == ["big.bin", "docs/small.txt"]
    assert [k.name for k in bucket.list(prefix="docs/")] == ["docs/small.txt"]

    for key, source in (("docs/small.txt", files.small), ("big.bin", files.big)):
        target = tmp_path / source.name
        bucket.get_key(key).get_contents_to_filename(str(target))
        assert sha256_of(target) == sha256_of(source)

    bucket.copy_key("copy.txt", bucket_name, "docs/small.txt")
    assert_stored(inspector, bucket_name, "copy.txt", files.small)

    for key in ("docs/small.txt", "big.bin", "copy.txt"):
        bucket.delete_key(key)
    boto2.delete_bucket(bucket_name)
    assert_gone(inspector, bucket_name)


# -- boto3 --------------------------------------------------------------------------------


def test_boto3(
    daemon: Daemon, files: Files, bucket_name: str, inspector: Any, tmp_path: Path
) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=daemon.endpoint,
        aws_access_key_id=USER.access_key,
        aws_secret_access_key=USER.secret_key,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket=bucket_name)
    s3.upload_file(str(files.small), bucket_name, "docs/small.txt")
    s3.upload_file(str(files.big), bucket_name, "big.bin")  # multipart above 8 MiB
    assert "-" in s3.head_object(Bucket=bucket_name, Key="big.bin")["ETag"]

    everything = s3.list_objects_v2(Bucket=bucket_name)["Contents"]
    assert [o["Key"] for o in everything] == ["big.bin", "docs/small.txt"]
    assert [o["Size"] for o in everything] == [BIG_SIZE, SMALL_SIZE]
    docs = s3.list_objects_v2(Bucket=bucket_name, Prefix="docs/")["Contents"]
    assert [o["Key"] for o in docs] == ["docs/small.txt"]

    for key, source in (("docs/small.txt", files.small), ("big.bin", files.big)):
        target = tmp_path / source.name
        s3.download_file(bucket_name, key, str(target))
        assert sha256_of(target) == sha256_of(source)

    s3.copy({"Bucket": bucket_name, "Key": "big.bin"}, bucket_name, "copy.bin")
    assert_stored(inspector, bucket_name, "copy.bin", files.big)

    for key in ("docs/small.txt", "big.bin", "copy.bin"):
        s3.delete_object(Bucket=bucket_name, Key=key)
    s3.delete_bucket(Bucket=bucket_name)
    assert_gone(inspector, bucket_name)


# -- the aws CLI --------------------------------------------------------------------


@pytest.fixture
def aws(daemon: Daemon, tmp_path: Path) -> Any:
    command = BIN / "aws"
    assert command.exists(), f"the aws CLI is not installed next to {sys.executable}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=USER.access_key,
        AWS_SECRET_ACCESS_KEY=USER.secret_key,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_PAGER="",
        HOME=str(tmp_path),
    )

    def call(*args: str) -> str:
        return run([str(command), "--endpoint-url", daemon.endpoint, *args], env=env)

    return call


def test_aws_cli(aws: Any, files: Files, bucket_name: str, inspector: Any, tmp_path: Path) -> None:
    bucket = f"s3://{bucket_name}"
    aws("s3", "mb", bucket)
    aws("s3", "cp", str(files.small), f"{bucket}/docs/small.txt")
    aws("s3", "cp", str(files.big), f"{bucket}/big.bin")  # multipart above 8 MiB
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket_name, "--key", "big.bin"))
    assert head["ContentLength"] == BIG_SIZE and "-" in head["ETag"]

    listing = aws("s3", "ls", "--recursive", bucket)
    assert "docs/small.txt" in listing and "big.bin" in listing
    docs = aws("s3", "ls", "--recursive", f"{bucket}/docs/")
    assert "docs/small.txt" in docs and "big.bin" not in docs

    for key, source in (("docs/small.txt", files.small), ("big.bin", files.big)):
        target = tmp_path / source.name
        aws("s3", "cp", f"{bucket}/{key}", str(target))
        assert sha256_of(target) == sha256_of(source)

    # A 40 MiB copy: the CLI copies in parts (UploadPartCopy).
    aws("s3", "cp", f"{bucket}/big.bin", f"{bucket}/copy.bin")
    assert_stored(inspector, bucket_name, "copy.bin", files.big)

    aws("s3", "rm", "--recursive", bucket)
    aws("s3", "rb", bucket)
    assert_gone(inspector, bucket_name)


# -- s3cmd --------------------------------------------------------------------------------


def s3cmd_config(daemon: Daemon, path: Path) -> Path:
    """A config file pointing s3cmd at the daemon: path style (host_bucket without
    %(bucket)s), plain HTTP, SigV4 in the daemon's region."""
    host = f"127.0.0.1:{daemon.port}"
    path.write_text(
        "[default]\n"
        f"access_key = {USER.access_key}\n"
        f"secret_key = {USER.secret_key}\n"
        f"host_base = {host}\n"
        f"host_bucket = {host}\n"
        f"bucket_location = {REGION}\n"
        "use_https = False\n"
        "signature_v2 = False\n"
        "check_ssl_certificate = False\n"
        "multipart_chunk_size_mb = 15\n"
        "progress_meter = False\n"
    )
    return path


@pytest.fixture
def s3cmd(daemon: Daemon, tmp_path: Path) -> Any:
    command = BIN / "s3cmd"
    assert command.exists(), f"s3cmd is not installed next to {sys.executable}"
    config = s3cmd_config(daemon, tmp_path / "s3cmd.cfg")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)

    def call(*args: str) -> str:
        return run([sys.executable, str(command), "-c", str(config), *args], env=env)

    return call


def test_s3cmd(s3cmd: Any, files: Files, bucket_name: str, inspector: Any, tmp_path: Path) -> None:
    bucket = f"s3://{bucket_name}"
    s3cmd("mb", bucket)
    s3cmd("put", str(files.small), f"{bucket}/docs/small.txt")
    s3cmd("put", str(files.big), f"{bucket}/big.bin")  # multipart: 15 MiB parts
    assert inspector.head_object(Bucket=bucket_name, Key="big.bin")["ETag"].endswith('-3"')

    listing = s3cmd("ls", "--recursive", bucket)
    assert f"{bucket}/docs/small.txt" in listing and f"{bucket}/big.bin" in listing
    docs = s3cmd("ls", f"{bucket}/docs/")
    assert f"{bucket}/docs/small.txt" in docs and "big.bin" not in docs

    for key, source in (("docs/small.txt", files.small), ("big.bin", files.big)):
        target = tmp_path / source.name
        s3cmd("get", f"{bucket}/{key}", str(target))
        assert sha256_of(target) == sha256_of(source)

    s3cmd("cp", f"{bucket}/big.bin", f"{bucket}/copy.bin")
    assert_stored(inspector, bucket_name, "copy.bin", files.big)

    s3cmd("del", f"{bucket}/docs/small.txt", f"{bucket}/big.bin", f"{bucket}/copy.bin")
    s3cmd("rb", bucket)
    assert_gone(inspector, bucket_name)


def test_every_client_is_under_the_prefix_too(daemon: Daemon) -> None:
    """curl uses the /api/v1/s3 prefix, the SDKs the root: both are the same store."""
    assert daemon.url == daemon.endpoint + PREFIX
