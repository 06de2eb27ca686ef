"""Races over HTTP against the real daemon (the whole path: web layer, bucket caches,
filesystem backend). The IStorage-level races of every backend are in
tests/contract/test_concurrency_contract.py."""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from tests.integration.conftest import boto3_client
from tests.integration.daemon import Daemon

WRITERS = 20
READERS = 8


def version(n: int, size: int) -> bytes:
    """A body naming its version in every 64-byte line (a mix of two cannot pass)."""
    line = f"version {n:04d} ".encode()
    noise = random.Random(n).randbytes(size).hex().encode()
    width = 64 - len(line)
    return b"".join(line + noise[i : i + width] for i in range(0, size, 64))[:size]


def error_code(call: Any) -> str | None:
    """None if ``call()`` succeeds, else the S3 error code it failed with."""
    try:
        call()
    except ClientError as e:
        return str(e.response["Error"]["Code"])
    return None


def race(first: Any, second: Any) -> tuple[str | None, str | None]:
    """Run two calls at the same moment in two threads: their error codes."""
    start = threading.Barrier(2)

    def run(call: Any) -> str | None:
        start.wait()
        return error_code(call)

    with ThreadPoolExecutor(2) as pool:
        one, other = pool.submit(run, first), pool.submit(run, second)
        return one.result(30), other.result(30)


def test_writers_and_readers_of_one_key(fs_daemon: Daemon, bucket: str) -> None:
    s3 = boto3_client(fs_daemon.endpoint, max_pool_connections=WRITERS + READERS)
    bodies = [version(n, 1 + (n * 52_361) % 900_000) for n in range(WRITERS)]
    by_etag = {hashlib.md5(b).hexdigest(): n for n, b in enumerate(bodies)}
    s3.put_object(Bucket=bucket, Key="k", Body=bodies[0])
    writing = threading.Event()
    writing.set()
    start = threading.Barrier(WRITERS + READERS)

    def write(n: int) -> str:
        start.wait()
        return str(s3.put_object(Bucket=bucket, Key="k", Body=bodies[n])["ETag"]).strip('"')

    def read() -> list[tuple[str, bytes]]:
        start.wait()
        seen = []
        while writing.is_set() or not seen:
            got = s3.get_object(Bucket=bucket, Key="k")
            seen.append((str(got["ETag"]).strip('"'), got["Body"].read()))
        return seen

    with ThreadPoolExecutor(WRITERS + READERS) as pool:
        readers = [pool.submit(read) for _ in range(READERS)]
        writers = [pool.submit(write, n) for n in range(WRITERS)]
        etags = [w.result(timeout=60) for w in writers]
        writing.clear()
        reads = [r for reader in readers for r in reader.result(timeout=60)]

    assert [by_etag.get(e) for e in etags] == list(range(WRITERS))
    assert len(reads) >= READERS
    for etag, data in reads:
        assert etag in by_etag, etag
        assert data == bodies[by_etag[etag]], "a GET mixed versions, or its ETag lied"
    final = s3.get_object(Bucket=bucket, Key="k")
    data = final["Body"].read()
    assert data == bodies[by_etag[str(final["ETag"]).strip('"')]]


def test_delete_bucket_against_put_object(fs_daemon: Daemon) -> None:
    """Never an acknowledged object silently lost: either the PUT fails, or the
    bucket survives (DeleteBucket fails with BucketNotEmpty) and serves it."""
    s3 = boto3_client(fs_daemon.endpoint, max_pool_connections=4)
    outcomes = set()
    for round_ in range(16):
        name = f"race-{uuid.uuid4().hex[:12]}"
        key = "deep/er/key" if round_ % 2 else "flat"
        data = version(round_, 1000 + round_ * 30_000)
        s3.create_bucket(Bucket=name)
        s3.head_bucket(Bucket=name)  # the daemon now knows the bucket (its caches)
        # (The lambdas run before the loop moves on: binding late is harmless.)
        put_outcome, delete_outcome = race(
            lambda: s3.put_object(Bucket=name, Key=key, Body=data),  # noqa: B023
            lambda: s3.delete_bucket(Bucket=name),  # noqa: B023
        )
        outcomes.add((put_outcome, delete_outcome))
        if put_outcome is None:
            assert delete_outcome == "BucketNotEmpty"
            assert s3.get_object(Bucket=name, Key=key)["Body"].read() == data
            s3.delete_object(Bucket=name, Key=key)
            s3.delete_bucket(Bucket=name)
        else:
            assert (put_outcome, delete_outcome) == ("NoSuchBucket", None)
        assert error_code(lambda name=name: s3.head_bucket(Bucket=name)) is not None
    assert outcomes <= {(None, "BucketNotEmpty"), ("NoSuchBucket", None)}
