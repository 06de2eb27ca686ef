"""``--cache``, ``--cache-size``, ``--cache-ttl`` and the storage they wrap."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.python.threadpool import ThreadPool

from s3proxy.cache import CachingStorage
from s3proxy.cache.options import cached_storage, parse_size
from s3proxy.storage.memory import MemoryStorage
from s3proxy.tap import ExpiryTask, Options, makeService


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(["--backend", "memory:", *args])
    return options


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10G", 10 * 1024**3),
        ("512M", 512 * 1024**2),
        ("512MiB", 512 * 1024**2),
        ("64k", 64 * 1024),
        ("1.5G", 3 * 512 * 1024**2),
        ("1T", 1024**4),
        ("123456", 123456),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "ten", "-1G", "0", "5X"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(usage.UsageError, match="not a size"):
        parse_size(text)


def test_defaults_leave_the_storage_alone() -> None:
    options = parse()
    assert options["cache"] is None
    assert options["cache-size"] == 10 * 1024**3 and options["cache-ttl"] == 0.0
    storage = MemoryStorage()
    assert cached_storage(storage, options, ThreadPool(), Clock()) is storage


@pytest.mark.parametrize(
    "args", [["--cache-ttl", "-1"], ["--cache-ttl", "soon"], ["--cache-size", "big"]]
)
def test_usage_errors(args: list[str]) -> None:
    with pytest.raises(usage.UsageError):
        parse(*args)


def test_cache_options_wrap_the_storage(tmp_path: Path) -> None:
    options = parse("--cache", str(tmp_path / "c"), "--cache-size", "512M", "--cache-ttl", "5")
    backend = MemoryStorage()
    storage = cached_storage(backend, options, ThreadPool(), Clock())
    assert isinstance(storage, CachingStorage)
    assert storage.backend is backend
    assert storage.index.max_bytes == 512 * 1024**2 and storage.ttl == 5.0
    assert (tmp_path / "c" / "blocks").is_dir()


def test_each_worker_has_its_own_part(tmp_path: Path) -> None:
    options = parse("--cache", str(tmp_path / "c"), "--cache-size", "1G", "--workers", "4")
    storage = cached_storage(MemoryStorage(), options, ThreadPool(), Clock(), worker_index=2)
    assert isinstance(storage, CachingStorage)
    assert storage.index.max_bytes == 256 * 1024**2
    assert (tmp_path / "c" / "worker-2" / "blocks").is_dir()


def test_make_service_serves_through_the_cache(tmp_path: Path) -> None:
    options = parse("--cache", str(tmp_path / "c"), "--listen", "tcp:0:interface=127.0.0.1")
    service = makeService(options, Clock())
    assert isinstance(service, MultiService)
    timers = [c for c in service if isinstance(c, TimerService)]
    task = timers[0].call[0]
    assert isinstance(task, ExpiryTask)
    assert isinstance(task.storage, CachingStorage)
    assert isinstance(task.storage.backend, MemoryStorage)
