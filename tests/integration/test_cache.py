"""The read cache in a real daemon (``--cache`` over ``file:``), driven by boto3."""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import boto3_client
from tests.integration.daemon import Daemon, read_status
from tests.integration.test_observability import metric_samples
from tests.integration.test_streaming import RSS_LIMIT_KB, RssSampler, simple

MiB = 1024 * 1024


def block_files(cache: Path) -> dict[str, tuple[int, int, int]]:
    """Committed block files: (size, inode, mtime) by path."""
    found = {}
    for dirpath, _, names in os.walk(cache):
        for name in names:
            if not name.startswith(".tmp-"):
                st = os.stat(os.path.join(dirpath, name))
                found[os.path.join(dirpath, name)] = (st.st_size, st.st_ino, st.st_mtime_ns)
    return found


def wait_for_blocks(cache: Path, total: int, without: str = "") -> dict[str, tuple[int, int, int]]:
    """Blocks are committed just after the response: wait until ``total`` bytes are
    (and the file ``without`` is gone)."""
    deadline = time.monotonic() + 10
    while True:
        found = block_files(cache)
        if sum(size for size, _, _ in found.values()) == total and without not in found:
            return found
        assert time.monotonic() < deadline, f"cache holds {found}"
        time.sleep(0.02)


def start(make_daemon: Callable[..., Daemon], tmp_path: Path, *args: str) -> tuple[Daemon, Path]:
    data, cache = tmp_path / "data", tmp_path / "cache"
    daemon = make_daemon(f"file:{data}", "--no-fsync", "--cache", str(cache), *args)
    return daemon, cache


def test_get_twice_through_the_cache(make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    daemon, cache = start(make_daemon, tmp_path, "--cache-size", "64M")
    s3 = boto3_client(daemon.endpoint)
    s3.create_bucket(Bucket="bkt")
    data = random.Random(1).randbytes(3 * MiB + 17)
    s3.put_object(Bucket="bkt", Key="dir/k", Body=data)
    assert block_files(cache) == {}  # writes are not cached
    assert s3.get_object(Bucket="bkt", Key="dir/k")["Body"].read() == data
    first = wait_for_blocks(cache, len(data))
    assert sorted(size for size, _, _ in first.values()) == [17, MiB, MiB, MiB]
    # The second GET is served from those blocks: none is written again.
    assert s3.get_object(Bucket="bkt", Key="dir/k")["Body"].read() == data
    ranged = s3.get_object(Bucket="bkt", Key="dir/k", Range=f"bytes={MiB - 5}-{2 * MiB + 5}")
    assert ranged["Body"].read() == data[MiB - 5 : 2 * MiB + 6]
    assert block_files(cache) == first
    # A write through the daemon drops the cached version.
    newer = random.Random(2).randbytes(MiB + 1)
    s3.put_object(Bucket="bkt", Key="dir/k", Body=newer)
    assert s3.get_object(Bucket="bkt", Key="dir/k")["Body"].read() == newer
    wait_for_blocks(cache, len(newer))
    # So does a change behind its back, found by the ETag check.
    newest = random.Random(3).randbytes(MiB + 1)
    (tmp_path / "data" / "bkt" / "dir" / "k").write_bytes(newest)
    assert s3.get_object(Bucket="bkt", Key="dir/k")["Body"].read() == newest
    s3.delete_object(Bucket="bkt", Key="dir/k")
    wait_for_blocks(cache, 0)
    assert "Traceback" not in daemon.log_text()


def test_ttl_serves_from_the_cache_without_asking(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """With --cache-ttl the cached ETag is trusted: a file replaced behind the daemon's
    back is not noticed until the TTL runs out, which shows where the bytes come from."""
    daemon, cache = start(make_daemon, tmp_path, "--cache-ttl", "3600")
    s3 = boto3_client(daemon.endpoint)
    s3.create_bucket(Bucket="bkt")
    data = random.Random(4).randbytes(2 * MiB)
    s3.put_object(Bucket="bkt", Key="k", Body=data)
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == data
    wait_for_blocks(cache, len(data))
    (tmp_path / "data" / "bkt" / "k").write_bytes(b"x" * len(data))
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == data


def test_corrupt_block_in_a_running_daemon(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon, cache = start(make_daemon, tmp_path)
    s3 = boto3_client(daemon.endpoint)
    s3.create_bucket(Bucket="bkt")
    data = random.Random(5).randbytes(2 * MiB)
    s3.put_object(Bucket="bkt", Key="k", Body=data)
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == data
    blocks = wait_for_blocks(cache, len(data))
    damaged = sorted(blocks)[0]
    raw = bytearray(Path(damaged).read_bytes())
    raw[1000] ^= 1
    Path(damaged).write_bytes(bytes(raw))
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == data
    # The damaged block was deleted and cached again, under a new name.
    restored = wait_for_blocks(cache, len(data), without=damaged)
    assert b"".join(Path(p).read_bytes() for p in sorted(restored, key=block_order)) == data


def block_order(path: str) -> int:
    return int(os.path.basename(path).split("-")[0])


def test_large_object_miss_and_hit_keep_rss_small(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """256 MiB read twice through the cache (tee to disk, then from the blocks): the
    daemon's memory does not grow with the object."""
    daemon, cache = start(make_daemon, tmp_path, "--cache-size", "1G")
    assert simple(daemon, "PUT", "/big").status == 200
    size = 256 * MiB
    piece = os.urandom(MiB)
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=120)
    conn.putrequest("PUT", "/big/obj", skip_accept_encoding=True)
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    for _ in range(size // MiB):
        conn.send(piece)
    response = conn.getresponse()
    assert response.status == 200, response.read()
    response.read()
    expected = hashlib.md5(piece * (size // MiB)).hexdigest()
    sampler = RssSampler(daemon.pid)
    sampler.start()
    try:
        seconds = []
        for _ in range(2):
            started = time.monotonic()
            conn.request("GET", "/big/obj")
            response = conn.getresponse()
            assert response.status == 200
            received = hashlib.md5()
            while chunk := response.read(MiB):
                received.update(chunk)
            assert received.hexdigest() == expected
            seconds.append(time.monotonic() - started)
            wait_for_blocks(cache, size)
    finally:
        peak_kb = sampler.stop()
        conn.close()
    print(
        f"\n256 MiB GET through the cache: miss {size / MiB / seconds[0]:.0f} MB/s,"
        f" hit {size / MiB / seconds[1]:.0f} MB/s; daemon RSS peak {peak_kb / 1000:.1f} MB"
    )
    assert sampler.samples > 5
    assert peak_kb < RSS_LIMIT_KB, f"RSS peaked at {peak_kb} kB"
    assert read_status(daemon.pid)["VmHWM"] < RSS_LIMIT_KB


def cache_metrics(daemon: Daemon) -> dict[str, float]:
    samples = metric_samples(f"{daemon.endpoint}/-/metrics")
    return {name: v for (name, _), v in samples.items() if name.startswith("s3proxy_cache_")}


def test_cache_counters_are_prometheus_metrics(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon, cache = start(make_daemon, tmp_path, "--cache-size", "64M")
    s3 = boto3_client(daemon.endpoint)
    s3.create_bucket(Bucket="bkt")
    data = random.Random(4).randbytes(2 * MiB)
    s3.put_object(Bucket="bkt", Key="k", Body=data)
    before = cache_metrics(daemon)
    assert before["s3proxy_cache_misses_total"] == 0
    assert before["s3proxy_cache_max_bytes"] == 64 * MiB
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == data
    wait_for_blocks(cache, len(data))
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == data
    after = cache_metrics(daemon)
    # Counted in blocks (1 MiB): two read from the backend, then two from the cache.
    assert after["s3proxy_cache_misses_total"] == 2
    assert after["s3proxy_cache_hits_total"] == 2
    assert after["s3proxy_cache_fills_total"] == 2
    assert after["s3proxy_cache_bytes"] == len(data)
    assert after["s3proxy_cache_bytes_from_cache_total"] == len(data)
