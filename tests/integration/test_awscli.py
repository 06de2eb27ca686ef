"""The aws CLI against the filesystem daemon: the high-level ``aws s3`` commands and a
few ``aws s3api`` calls, as a user runs them with ``--endpoint-url``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon import Daemon

AWS = Path(sys.executable).with_name("aws")


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    assert AWS.exists(), f"the aws CLI is not installed next to {sys.executable}"
    home = tmp_path_factory.mktemp("aws-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_PAGER="",
        HOME=str(home),
    )
    return env


class Cli:
    def __init__(self, daemon: Daemon, env: dict[str, str]) -> None:
        self.daemon = daemon
        self.env = env

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AWS), "--endpoint-url", self.daemon.endpoint, *args],
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str, cwd: Path | None = None) -> str:
        result = self.run(*args, cwd=cwd)
        assert result.returncode == 0, f"aws {' '.join(args)}: {result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--output", "json"))


@pytest.fixture
def cli(fs_daemon: Daemon, aws_env: dict[str, str]) -> Cli:
    return Cli(fs_daemon, aws_env)


def unique() -> str:
    return f"awscli-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def bucket_name(cli: Cli, s3: Any) -> Any:
    name = unique()
    cli.ok("s3", "mb", f"s3://{name}")
    yield name
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=name)
    except Exception:
        pass  # the test removed it


def test_mb_ls_rb(cli: Cli, fs_daemon: Daemon) -> None:
    name = unique()
    assert cli.ok("s3", "mb", f"s3://{name}").strip() == f"make_bucket: {name}"
    assert (fs_daemon.root / name).is_dir()  # type: ignore[attr-defined]
    listed = [line.split()[-1] for line in cli.ok("s3", "ls").splitlines()]
    assert name in listed
    again = cli.run("s3", "mb", f"s3://{name}")
    assert again.returncode != 0
    assert "BucketAlreadyOwnedByYou" in again.stderr
    assert cli.ok("s3", "rb", f"s3://{name}").strip() == f"remove_bucket: {name}"
    assert name not in [line.split()[-1] for line in cli.ok("s3", "ls").splitlines()]
    assert not (fs_daemon.root / name).exists()  # type: ignore[attr-defined]


def test_cp_up_and_down(cli: Cli, bucket_name: str, tmp_path: Path, s3: Any) -> None:
    data = os.urandom(300_000)
    source = tmp_path / "small file.bin"
    source.write_bytes(data)
    up = cli.ok("s3", "cp", str(source), f"s3://{bucket_name}/dir/small file.bin")
    assert f"s3://{bucket_name}/dir/small file.bin" in up
    head = s3.head_object(Bucket=bucket_name, Key="dir/small file.bin")
    assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    target = tmp_path / "down.bin"
    cli.ok("s3", "cp", f"s3://{bucket_name}/dir/small file.bin", str(target))
    assert target.read_bytes() == data
    # ls without --recursive shows the directory as a prefix.
    top = cli.ok("s3", "ls", f"s3://{bucket_name}/").splitlines()
    assert [line.split() for line in top] == [["PRE", "dir/"]]
    listed = cli.ok("s3", "ls", f"s3://{bucket_name}/dir/").splitlines()
    assert len(listed) == 1
    assert listed[0].split(None, 3)[2:] == [str(len(data)), "small file.bin"]


def test_cp_missing_object_fails(cli: Cli, bucket_name: str, tmp_path: Path) -> None:
    result = cli.run("s3", "cp", f"s3://{bucket_name}/absent", str(tmp_path / "absent"))
    assert result.returncode != 0
    assert "404" in result.stderr
    assert not (tmp_path / "absent").exists()


def test_sync_ls_recursive_and_rm(cli: Cli, bucket_name: str, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    files = {
        "one.txt": b"1" * 10,
        "two.txt": os.urandom(2000),
        "sub/three.bin": os.urandom(30_000),
        "sub/deeper/four.bin": b"",
        "with space.txt": b"spaces",
    }
    for rel, content in files.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    cli.ok("s3", "sync", str(tree), f"s3://{bucket_name}/backup")
    lines = cli.ok("s3", "ls", f"s3://{bucket_name}/", "--recursive").splitlines()
    listed = {}
    for line in lines:
        _date, _time, size, key = line.split(None, 3)
        listed[key] = int(size)
    assert listed == {f"backup/{rel}": len(content) for rel, content in files.items()}

    # A second sync has nothing to upload.
    assert cli.ok("s3", "sync", str(tree), f"s3://{bucket_name}/backup").strip() == ""

    # Sync back down reproduces the tree.
    restored = tmp_path / "restored"
    cli.ok("s3", "sync", f"s3://{bucket_name}/backup", str(restored))
    for rel, content in files.items():
        assert (restored / rel).read_bytes() == content, rel

    removed = cli.ok("s3", "rm", f"s3://{bucket_name}/", "--recursive").splitlines()
    assert len(removed) == len(files)
    assert cli.ok("s3", "ls", f"s3://{bucket_name}/", "--recursive").strip() == ""
    assert cli.ok("s3", "rb", f"s3://{bucket_name}").strip() == f"remove_bucket: {bucket_name}"


def test_rb_force_on_a_bucket_with_objects(cli: Cli, tmp_path: Path) -> None:
    name = unique()
    cli.ok("s3", "mb", f"s3://{name}")
    source = tmp_path / "f"
    source.write_bytes(b"content")
    cli.ok("s3", "cp", str(source), f"s3://{name}/f")
    refused = cli.run("s3", "rb", f"s3://{name}")
    assert refused.returncode != 0
    assert "BucketNotEmpty" in refused.stderr
    cli.ok("s3", "rb", f"s3://{name}", "--force")
    assert name not in cli.ok("s3", "ls")


def test_s3api_put_and_head_with_metadata(cli: Cli, bucket_name: str, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"k": 1}')
    put = cli.json(
        "s3api",
        "put-object",
        "--bucket",
        bucket_name,
        "--key",
        "doc.json",
        "--body",
        str(body),
        "--content-type",
        "application/json",
        "--metadata",
        "color=blue,owner=alice",
    )
    assert put["ETag"] == f'"{hashlib.md5(body.read_bytes()).hexdigest()}"'
    head = cli.json("s3api", "head-object", "--bucket", bucket_name, "--key", "doc.json")
    assert head["ContentLength"] == len(body.read_bytes())
    assert head["ContentType"] == "application/json"
    assert head["ETag"] == put["ETag"]
    assert head["Metadata"] == {"color": "blue", "owner": "alice"}


def test_s3api_head_missing_object(cli: Cli, bucket_name: str) -> None:
    result = cli.run("s3api", "head-object", "--bucket", bucket_name, "--key", "nope")
    assert result.returncode != 0
    assert "404" in result.stderr


def test_s3api_list_objects_v2_pagination(cli: Cli, bucket_name: str, s3: Any) -> None:
    keys = sorted(["k1", "k2", "k3", "k4", "k5", "dir/a b", "x+y"])
    for key in keys:
        s3.put_object(Bucket=bucket_name, Key=key, Body=key.encode())

    # --max-keys turns the CLI's own paging off: follow the tokens by hand.
    collected: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        args = ["s3api", "list-objects-v2", "--bucket", bucket_name, "--max-keys", "2"]
        if token:
            args += ["--continuation-token", token]
        page = cli.json(*args)
        pages += 1
        assert page["KeyCount"] == len(page.get("Contents", []))
        assert page["MaxKeys"] == 2
        collected += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        token = page["NextContinuationToken"]
        assert pages < 10
    assert collected == keys
    assert pages == -(-len(keys) // 2)

    # --page-size: the CLI pages itself and prints one merged result.
    merged = cli.json("s3api", "list-objects-v2", "--bucket", bucket_name, "--page-size", "2")
    assert [o["Key"] for o in merged["Contents"]] == keys
