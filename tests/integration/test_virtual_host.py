"""Virtual-hosted-style requests (``--virtual-host localhost``) from boto3 and curl.

``bucket.localhost`` does not resolve on this machine (no nss-myhostname), so the test
process resolves ``*.localhost`` to 127.0.0.1 itself (a patched ``getaddrinfo``): the
clients still send ``Host: bucket.localhost:PORT``, and traffic stays on loopback.
"""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.config import Config

from tests.integration.daemon import Daemon
from tests.integration.test_auth import ALICE, USERS, credentials_toml

DOMAIN = "localhost"
_real_getaddrinfo = socket.getaddrinfo


def _loopback_for_subdomains(host: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, str) and host.endswith("." + DOMAIN):
        host = "127.0.0.1"
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def resolve_subdomains() -> Iterator[None]:
    with mock.patch("socket.getaddrinfo", _loopback_for_subdomains):
        yield


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    workdir: Path = tmp_path_factory.mktemp("vhost-daemon")
    users = workdir / "users.toml"
    users.write_text(credentials_toml(USERS))
    started = Daemon(
        backend=f"file:{workdir / 'data'}",
        workdir=workdir,
        extra_args=["--no-fsync", "--credentials", str(users), "--virtual-host", DOMAIN],
    ).start()
    yield started
    started.stop()


def client(daemon: Daemon, style: str, signature: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://{DOMAIN}:{daemon.port}",
        aws_access_key_id=ALICE.access_key,
        aws_secret_access_key=ALICE.secret_key,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": style},
            signature_version=signature,
            retries={"max_attempts": 1},
        ),
    )


@pytest.mark.parametrize("signature", ["s3v4", "s3"])
def test_boto3_virtual_hosted_requests(daemon: Daemon, signature: str) -> None:
    s3 = client(daemon, "virtual", signature)
    sent: list[str] = []
    s3.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.url))
    bucket = f"vh-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dir/a b+c.txt", Body=b"virtual")
    s3.put_object(Bucket=bucket, Key="top", Body=b"t")
    assert s3.get_object(Bucket=bucket, Key="dir/a b+c.txt")["Body"].read() == b"virtual"
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a b+c.txt", "top"]
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "top"})
    assert url.startswith(f"http://{bucket}.{DOMAIN}:{daemon.port}/top?")
    # The same objects, path style, from the same daemon.
    path_style = client(daemon, "path", signature)
    assert path_style.get_object(Bucket=bucket, Key="top")["Body"].read() == b"t"
    for key in ("dir/a b+c.txt", "top"):
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)
    # Every request went out virtual-hosted style.
    assert sent and all(u.startswith(f"http://{bucket}.{DOMAIN}:{daemon.port}/") for u in sent)


def test_curl_with_host_header(daemon: Daemon) -> None:
    s3 = client(daemon, "path", "s3v4")
    bucket = f"vh-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hi", ACL="public-read")
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-H",
            f"Host: {bucket}.{DOMAIN}:{daemon.port}",
            f"http://127.0.0.1:{daemon.port}/hello.txt",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert out.stdout == b"hi"
    # A Host under another domain is a path-style request.
    other = subprocess.run(
        [
            "curl",
            "-s",
            "-H",
            "Host: elsewhere.test",
            f"http://127.0.0.1:{daemon.port}/{bucket}/hello.txt",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert other.stdout == b"hi"
    s3.delete_object(Bucket=bucket, Key="hello.txt")
    s3.delete_bucket(Bucket=bucket)
