"""The command-line options of the connection limits (``guard.py``), and the file
descriptor limit they need."""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger
from twisted.python import usage

from s3proxy.web.guard import Limits

log = Logger()

LIMIT_PARAMETERS: list[list[Any]] = [
    [
        "header-timeout",
        None,
        "60s",
        "Close a connection whose request line and headers are not all in this long "
        "after its first byte (or after it opened), answering 400 RequestTimeout; 0 never.",
    ],
    [
        "idle-timeout",
        None,
        "60s",
        "Close a connection that received nothing for this long while no request was in "
        "progress (idle keep-alive, a stalled upload); 0 never.",
    ],
    [
        "send-timeout",
        None,
        "60s",
        "Cut a connection whose client took none of our response for this long; 0 never.",
    ],
    [
        "max-connections",
        None,
        "1024",
        "Most connections open at once (per worker process); beyond it a new one is "
        "answered 503 SlowDown and closed. 0: no limit.",
    ],
]

# Descriptors besides the connections: log, listening sockets, files being read or
# written by the I/O threads, the cache.
SPARE_DESCRIPTORS = 256


def check_limit_options(options: usage.Options, parse_duration: Callable[[str], float]) -> None:
    for name in ("header-timeout", "idle-timeout", "send-timeout"):
        options[name] = parse_duration(str(options[name]))
    try:
        options["max-connections"] = int(options["max-connections"])
        if options["max-connections"] < 0:
            raise ValueError
    except ValueError:
        raise usage.UsageError("--max-connections must be a number (0: no limit)") from None


def limits_from(options: usage.Options) -> Limits:
    return Limits(
        header_timeout=options["header-timeout"],
        idle_timeout=options["idle-timeout"],
        send_timeout=options["send-timeout"],
        max_connections=options["max-connections"],
    )


def ensure_descriptors(max_connections: int) -> None:
    """Raise the soft limit of open files to what the connection cap needs (up to the
    hard limit), and say so when even that is short: past it, accept() fails and
    clients wait in the backlog instead of getting an answer."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if not max_connections:
        return
    wanted = max_connections + SPARE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warn(
            "open-file limit {soft} is below --max-connections {cap} + {spare}: "
            "raise it (ulimit -n, systemd LimitNOFILE=) or lower --max-connections",
            soft=soft,
            cap=max_connections,
            spare=SPARE_DESCRIPTORS,
        )
