"""Fixtures: a real daemon on a loopback socket, and clients pointed at it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.integration.daemon import Daemon
from tests.moto_server import MotoServer, start_moto


@pytest.fixture(scope="session")
def fs_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One filesystem-backed daemon shared by the session (data root: ``.root``)."""
    workdir = tmp_path_factory.mktemp("daemon")
    root = workdir / "data"
    daemon = Daemon(backend=f"file:{root}", workdir=workdir, extra_args=["--no-fsync"]).start()
    daemon.root = root  # type: ignore[attr-defined]
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """A moto S3 server for one module: the upstream of the s3: backend's tests."""
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start extra daemons for one test (stopped by PID afterwards)."""
    started: list[Daemon] = []

    def start(backend: str | None = None, *extra_args: str) -> Daemon:
        workdir = tmp_path / f"daemon{len(started)}"
        workdir.mkdir()
        daemon = Daemon(
            backend=backend or f"file:{workdir / 'data'}",
            workdir=workdir,
            extra_args=list(extra_args),
        )
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.stop()


def boto3_client(endpoint: str, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test-access-key",
        aws_secret_access_key="test-secret-key",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


@pytest.fixture
def s3(fs_daemon: Daemon) -> Any:
    """A boto3 client with default settings against the filesystem daemon."""
    return boto3_client(fs_daemon.endpoint)


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    """A fresh bucket, emptied and deleted after the test."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=name)
    except Exception:
        pass  # a test may have removed it, or left keys only the fs can hold
