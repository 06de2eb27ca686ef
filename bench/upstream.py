#!/usr/bin/env python3
"""s3proxy over a real upstream S3 store, in one command (issue 7's measurements).

    python bench/upstream.py [--quick] [--reps 3] [--large-size 256M] [--daemons 3]
                             [--tests small,large,list] [--cache-ttl 0]

Starts a one-node Ceph RGW on 127.0.0.1 with the scale-out test harness, then, with the
load generator and workloads of ``bench/run.py``, measures:

* ``upstream direct``: RGW itself, the ceiling;
* ``s3proxy``: one daemon with ``--backend s3:<RGW>`` (proxy overhead = it / direct);
* ``s3proxy --cache``: one such daemon with ``--cache DIR``: each GET test runs twice in
  a row, a miss (the objects were just written through the daemon, which drops them
  from its cache) then a hit; the cache's own block counters say which it was;
* ``N × s3proxy + haproxy``: N such daemons behind haproxy round-robin, against one.

Each repetition runs every target in turn (so a burst of other load on this shared
machine lands in one repetition of each, not in every repetition of one); the table
shows medians and (min–max). Everything started is stopped by PID at the end, on
failure and on Ctrl-C or SIGTERM too. Progress goes to stderr, the report to stdout.
See docs/benchmark.md, "Upstream, cache and scale-out".

Exit status: 0 when every test ran, 1 when a setup or a test failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from loadgen import BLOCK_SIZE, HttpError, Pattern
from metrics import Sample
from rigs import CephCluster, Rig, direct_target, start_ceph, start_gateways
from run import machine_lines, progress, settle
from servers import HOST, SetupError
from upreport import Ratio, UpstreamResults
from workloads import FULL, QUICK, BenchError, MiB, TargetBench, Workload

DIRECT = "upstream direct"
PROXY = "s3proxy"
CACHE = "s3proxy --cache"
MISS = "s3proxy --cache: miss"
HIT = "s3proxy --cache: hit"
GROUPS = {
    "small": ("small_put", "small_get"),
    "list": ("list",),
    "large": ("large_put", "large_get"),
}
GETS = frozenset({"small_get", "large_get"})
_SIZE = re.compile(r"(\d+)([KMG]?)")


def farm_name(daemons: int) -> str:
    return f"{daemons} × s3proxy + haproxy"


def size(text: str) -> int:
    match = _SIZE.fullmatch(text.strip().upper())
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"expected a size like 256M, 1G or bytes, not {text!r}")
    return int(match.group(1)) * 1024 ** " KMG".index(match.group(2) or " ")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="s3proxy over a real Ceph RGW on 127.0.0.1: proxy overhead, read cache "
        "hit vs miss, several daemons behind haproxy vs one."
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 rep: a smoke run")
    parser.add_argument("--reps", type=int, help="repetitions of each test (3; --quick: 1)")
    parser.add_argument("--small-ops", type=int, help="requests per small-op test (2000)")
    parser.add_argument(
        "--large-size", type=size, help="size of the large object (256M; --quick: 16M)"
    )
    parser.add_argument("--daemons", type=int, default=3, help="daemons behind haproxy (3)")
    parser.add_argument(
        "--tests", default="small,large", help="test groups: small, large, list (small,large)"
    )
    parser.add_argument(
        "--cache-ttl",
        type=float,
        default=0.0,
        help="the cached daemon's --cache-ttl (0, its default: every hit asks RGW for the ETag)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        metavar="SECONDS",
        help="before each test, wait up to this long for other processes to leave the cores "
        "alone (10; --quick: 0)",
    )
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.small_ops is not None and args.small_ops < 1:
        parser.error("--small-ops must be at least 1")
    if args.daemons < 2:
        parser.error("--daemons must be at least 2 (one daemon is the s3proxy row)")
    groups = [g.strip() for g in args.tests.split(",") if g.strip()]
    if not groups or any(g not in GROUPS for g in groups):
        parser.error(f"--tests: comma-separated of {', '.join(GROUPS)}, not {args.tests!r}")
    args.tests = [t for g in GROUPS if g in groups for t in GROUPS[g]]
    return args


def make_workload(args: argparse.Namespace) -> Workload:
    workload = QUICK if args.quick else replace(FULL, small_ops=2000, large_size=256 * MiB)
    if args.small_ops:
        workload = replace(workload, small_ops=args.small_ops)
    if args.large_size:
        workload = replace(workload, large_size=args.large_size)
    return workload


# -- the read cache's own account of each GET test ---------------------------------------


def cache_counters(port: int) -> dict[str, int]:
    """The daemon's ``s3proxy_cache_{hits,misses}_total`` (blocks) from ``/-/metrics``."""
    url = f"http://{HOST}:{port}/-/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    counters = {}
    for name in ("hits", "misses"):
        match = re.search(rf"^s3proxy_cache_{name}_total (\S+)$", text, re.MULTILINE)
        counters[name] = int(float(match.group(1))) if match else 0
    return counters


@dataclass
class CacheCheck:
    """Blocks the cache served and fetched during each GET test, and whether a hit test
    was all hits and a miss test all misses."""

    lines: list[str]
    ok: bool = True

    def note(self, what: str, before: dict[str, int], after: dict[str, int], hit: bool) -> None:
        hits, misses = after["hits"] - before["hits"], after["misses"] - before["misses"]
        good = (misses == 0 and hits > 0) if hit else (hits == 0 and misses > 0)
        self.ok = self.ok and good
        verdict = "as expected" if good else "NOT AS EXPECTED"
        self.lines.append(f"- {what}: {hits} blocks from the cache, {misses} from RGW: {verdict}")


# -- running -----------------------------------------------------------------------------


@dataclass
class Row:
    """One target of the run and the bench (buckets, payloads) driving it."""

    bench: TargetBench
    cache_port: int | None = None  # the cached daemon: GET tests run as miss, then hit


def runs_of(row: Row, test: str) -> list[tuple[str, bool]]:
    """The rows a test fills: (target label, whether it should be a cache hit)."""
    if row.cache_port is None:
        return [(row.bench.target.name, False)]
    return [(MISS, False), (HIT, True)] if test in GETS else [(CACHE, False)]


async def run_test(
    row: Row, test: str, results: UpstreamResults, checks: CacheCheck, quiet_wait: float, rep: str
) -> None:
    for label, hit in runs_of(row, test):
        settle(label, quiet_wait)
        counted = row.cache_port if test in GETS else None
        before = cache_counters(counted) if counted else None
        # A cached large object is read twice: the miss leaves it for the hit.
        row.bench.keep_large = label == MISS
        sample: Sample = await row.bench.run(test)
        results.record(test, label, sample)
        workload = results.workload
        unit = workload.unit(test)
        amount = sample.nbytes / 1e6 if unit == "MB/s" else sample.ops
        progress(
            f"  {label}: {workload.label(test)} rep {rep}: {amount / sample.seconds:,.1f} {unit}"
        )
        if counted and before is not None:
            after = cache_counters(counted)
            checks.note(f"{workload.label(test)}, {label}, rep {rep}", before, after, hit)


async def measure(
    rows: list[Row],
    tests: list[str],
    reps: int,
    results: UpstreamResults,
    checks: CacheCheck,
    quiet_wait: float,
) -> None:
    failed: set[tuple[str, str]] = set()
    for row in rows:
        await row.bench.setup()
    for rep in range(1, reps + 1):
        for row in rows:
            name = row.bench.target.name
            for test in tests:
                if (name, test) in failed:
                    continue
                try:
                    await run_test(row, test, results, checks, quiet_wait, f"{rep}/{reps}")
                except (BenchError, HttpError, OSError, TimeoutError) as e:
                    progress(f"  {name}: {test} FAILED: {e}")
                    failed.add((name, test))
                    for label, _ in runs_of(row, test):
                        results.fail(test, label, str(e))


def versions(cluster: CephCluster | None) -> list[str]:
    lines = []
    for program, args in (("radosgw", ["--version"]), ("haproxy", ["-v"])):
        found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")
        if found:
            result = subprocess.run([found, *args], capture_output=True, text=True, timeout=30)
            lines.append(f"{program}: {(result.stdout or result.stderr).splitlines()[0]}")
    if cluster is not None:
        lines.append(f"Ceph cluster (mon, OSD, radosgw) up in {cluster.startup_seconds:.1f} s")
    return lines


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the ``finally`` that stops everything runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workload = make_workload(args)
    reps = args.reps or (1 if args.quick else 3)
    quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0 if args.quick else 10)
    farm = farm_name(args.daemons)
    stop_on_sigterm()
    machine = machine_lines()
    started = time.monotonic()
    results = UpstreamResults(
        workload=workload,
        targets=[DIRECT, PROXY, CACHE, MISS, HIT, farm],
        ratios=[
            Ratio("Proxy overhead (s3proxy / upstream direct)", PROXY, DIRECT, "direct"),
            Ratio("Read cache, hit / miss", HIT, MISS, "miss"),
            Ratio("Read cache, hit / upstream direct", HIT, DIRECT, "direct"),
            Ratio("Read cache, miss / s3proxy without cache", MISS, PROXY, "s3proxy"),
            Ratio("Read cache, PUT / s3proxy without cache", CACHE, PROXY, "s3proxy"),
            Ratio(f"Scale-out ({farm} / one s3proxy)", farm, PROXY, "one s3proxy"),
            Ratio(f"Scale-out ({farm} / upstream direct)", farm, DIRECT, "direct"),
        ],
        samples={},
        errors={},
    )
    checks = CacheCheck([])
    cluster: CephCluster | None = None
    scratch = Path(tempfile.mkdtemp(prefix="s3proxy-upbench-"))
    try:
        with ExitStack() as stack:
            stack.callback(shutil.rmtree, scratch, True)
            progress("starting Ceph RGW (mon, OSD, radosgw) on 127.0.0.1 ...")
            cluster = start_ceph()
            stack.callback(cluster.stop)
            progress(f"  RGW at {cluster.endpoint}, up in {cluster.startup_seconds:.1f} s")
            rigs: list[Rig] = []
            for name, count, ttl in (
                (PROXY, 1, None),
                (CACHE, 1, args.cache_ttl),
                (farm, args.daemons, None),
            ):
                progress(f"starting {name} ...")
                rig = start_gateways(cluster, name, scratch / f"rig-{len(rigs)}", count, ttl)
                stack.callback(rig.stop)
                rigs.append(rig)
            pattern = Pattern(os.urandom(BLOCK_SIZE))
            small_body = os.urandom(workload.small_size)
            pattern.md5(0, workload.large_size)
            payloads = (workload, pattern, small_body, os.urandom(4).hex())

            rows = [Row(TargetBench(direct_target(cluster, DIRECT), *payloads))]
            for rig in rigs:
                cache_port = rig.daemons[0].port if rig.target.name == CACHE else None
                rows.append(Row(TargetBench(rig.target, *payloads), cache_port))
            asyncio.run(measure(rows, args.tests, reps, results, checks, quiet_wait))
            ceph_versions = versions(cluster)
    except SetupError as e:
        progress(f"upstream.py: {e}")
        return 1
    except KeyboardInterrupt:
        progress("upstream.py: interrupted; everything it started is stopped")
        return 130

    w = workload
    print(f"# s3proxy over an upstream S3 store{' (--quick)' if args.quick else ''}\n")
    for line in machine + ceph_versions:
        print(f"- {line}")
    cores = len(os.sched_getaffinity(0))
    print(
        f"- {reps} repetition(s), every target in turn in each; cells are medians, (min–max) "
        f"over the repetitions; MB = 10^6 bytes; small: {w.small_ops} requests of "
        f"{w.small_size} B over {w.concurrency} connections; large: one object of "
        f"{w.large_size // MiB} MiB; read cache --cache-ttl {args.cache_ttl:g}; "
        f"the run took {time.monotonic() - started:.0f} s"
    )
    print(
        f"- {cores} cores for everything: load generator, Ceph (mon, OSD, radosgw), haproxy "
        f"and every daemon; {args.daemons} daemons can use at most {cores} of them"
    )
    print()
    print(results.table())
    print(
        "\ngateway CPU: the s3proxy daemon(s), and haproxy in front of several; Ceph CPU: "
        "mon + OSD + radosgw; both user + system over the timed part, per request (per "
        "object for large). client CPU: the load generator's event loop, % of one core. "
        "other CPU: the rest of the machine meanwhile, % of one core."
    )
    print("\nRatios (of medians):\n")
    print("\n".join(results.headlines()))
    if checks.lines:
        print("\nRead cache blocks per GET test (its s3proxy_cache_*_total counters):\n")
        print("\n".join(checks.lines))
    if results.errors:
        print(f"\n{len(results.errors)} test(s) failed; see above.")
        return 1
    if not checks.ok:
        print("\nThe read cache did not behave as the miss/hit rows assume; see above.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
