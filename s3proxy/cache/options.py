"""``--cache``, ``--cache-size``, ``--cache-ttl``: parsing them and wrapping the storage."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

from twisted.logger import Logger
from twisted.python import usage
from twisted.python.threadpool import ThreadPool

from s3proxy.cache.storage import CachingStorage
from s3proxy.interfaces import IStorage

log = Logger()

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """ "10G", "512M", "64K", "1T" (powers of 1024; a trailing "B" or "iB" is allowed)
    or plain bytes."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in _SIZE_UNITS else ""
    number = value[: len(value) - len(unit)]
    try:
        size = int(float(number) * _SIZE_UNITS[unit])
    except ValueError:
        raise usage.UsageError(f"not a size: {text!r} (use e.g. 10G, 512M or bytes)") from None
    if size <= 0:
        raise usage.UsageError(f"not a size: {text!r} (must be more than 0)")
    return size


def check_cache_options(options: MutableMapping[str, Any]) -> None:
    """Validate and convert the cache options in place (from ``postOptions``)."""
    options["cache-size"] = parse_size(str(options["cache-size"]))
    try:
        options["cache-ttl"] = float(options["cache-ttl"])
        if options["cache-ttl"] < 0:
            raise ValueError
    except ValueError:
        raise usage.UsageError("--cache-ttl must be a number of seconds (0: always ask)") from None


def cached_storage(
    storage: IStorage,
    options: MutableMapping[str, Any],
    pool: ThreadPool,
    reactor: Any,
    worker_index: int = 0,
) -> IStorage:
    """``storage`` behind a read cache if ``--cache`` was given. Worker processes
    each get their own part of the directory and of the size (an index lives in one
    process's memory)."""
    cache_dir = options.get("cache")
    if not cache_dir:
        return storage
    workers = int(options.get("workers") or 1)
    max_bytes = int(options["cache-size"]) // workers
    if workers > 1:
        cache_dir = os.path.join(cache_dir, f"worker-{worker_index}")
    log.info(
        "read cache in {cache_dir}: {max_bytes} bytes, ETags trusted for {ttl} s",
        cache_dir=cache_dir,
        max_bytes=max_bytes,
        ttl=options["cache-ttl"],
    )
    return CachingStorage(storage, cache_dir, max_bytes, reactor, pool, ttl=options["cache-ttl"])
