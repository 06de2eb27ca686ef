#!/usr/bin/env python3
"""The s3proxy benchmark, in one command.

    python bench/run.py [--quick] [--reps 3] [--skip-moto] [--skip-nginx]
                        [--peer NAME=URL --peer-key NAME=ACCESS:SECRET ...]

Installs moto (PyPI, into a venv made for the run) and nginx (Debian, extracted into a
temporary directory), starts each server on 127.0.0.1 in turn (s3proxy with and without
fsync, and with ``--workers 2`` for the small requests when this s3proxy has it; moto;
nginx; the bare-Python ceiling), drives each with the same asyncio load generator, stops
it by PID, and prints one Markdown table of medians over the repetitions with min–max,
the ratios to moto, nginx and the ceiling, and which targets s3proxy meets. Progress goes
to stderr, the report to stdout. See docs/benchmark.md.

Exit status: 0 when every test ran (missed targets too, unless ``--strict``), 1 when a
server could not be set up or a test failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

from loadgen import BLOCK_SIZE, HttpError, Pattern
from metrics import Sample, wait_until_quiet
from report import Results
from servers import (
    CEILING_TESTS,
    S3_TESTS,
    SMALL_TESTS,
    WEBDAV_TESTS,
    CeilingServer,
    ManagedServer,
    MotoServer,
    NginxServer,
    S3ProxyServer,
    SetupError,
    Target,
    ensure_moto,
    ensure_nginx,
    moto_version,
    peer_target,
    s3proxy_supports_workers,
)
from workloads import FULL, QUICK, BenchError, TargetBench, Workload

GROUPS = (("small_put", "small_get"), ("list",), ("large_put", "large_get"), ("multi_put",))


@dataclass
class Plan:
    """One server to benchmark: how to start it (or the peer to reach) and which tests."""

    name: str
    tests: frozenset[str]
    make: Callable[[Path], ManagedServer] | None = None
    peer: Target | None = None


def key_value(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return name, value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark s3proxy against moto, nginx and the machine's own ceiling."
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 rep: a smoke run")
    parser.add_argument("--reps", type=int, help="repetitions of each test (3; --quick: 1)")
    parser.add_argument("--skip-moto", action="store_true", help="do not install or run moto")
    parser.add_argument("--skip-nginx", action="store_true", help="do not install or run nginx")
    parser.add_argument(
        "--peer",
        type=key_value,
        action="append",
        default=[],
        metavar="NAME=URL",
        help="also benchmark this S3 endpoint (http://host:port[/prefix])",
    )
    parser.add_argument(
        "--peer-key",
        type=key_value,
        action="append",
        default=[],
        metavar="NAME=ACCESS:SECRET",
        help="the keys to sign a peer's requests with",
    )
    parser.add_argument("--region", default="us-east-1", help="region peers' requests sign")
    parser.add_argument(
        "--only",
        help="comma-separated server names or prefixes to run (e.g. s3proxy,ceiling)",
    )
    parser.add_argument(
        "--tests",
        help="comma-separated test groups to run: small, list, large, multi (default: all)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        metavar="SECONDS",
        help="before each test, wait up to this long for other processes to leave the cores "
        "alone (60; --quick: 0)",
    )
    parser.add_argument("--small-ops", type=int, help="requests per small-op test (5000)")
    parser.add_argument(
        "--tools-dir",
        type=Path,
        help="keep moto's venv and nginx here and reuse them (default: a temporary directory)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when s3proxy misses a target")
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.small_ops is not None and args.small_ops < 1:
        parser.error("--small-ops must be at least 1")
    return args


def machine_lines() -> list[str]:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return [
        f"date: {now}; nproc: {len(os.sched_getaffinity(0))}; CPU: {model}; "
        f"memory: {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB",
        f"Linux {platform.release()}; Python {platform.python_version()}; "
        f"Twisted {metadata.version('twisted')}; load average at start: {load}",
        s3proxy_line(),
    ]


def s3proxy_line() -> str:
    """Which s3proxy is measured: where the package is and, in a git checkout, its commit
    (read-only git plumbing) and whether the code differs from it."""
    spec = importlib.util.find_spec("s3proxy")
    if spec is None or spec.origin is None:
        return "s3proxy: not importable here (twistd must still find it)"
    package = Path(spec.origin).parent
    line = f"s3proxy: {package}"
    try:
        commit = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if commit.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(package.parent), "diff-index", "--quiet", "HEAD", "--"]
                + ["s3proxy", "twisted"],
                capture_output=True,
                timeout=30,
            )
            changed = " + uncommitted changes" if dirty.returncode else ""
            line += f" at commit {commit.stdout.strip()}{changed}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return line


def make_plans(args: argparse.Namespace, tools: Path, versions: dict[str, str]) -> list[Plan]:
    plans = [
        Plan("s3proxy", S3_TESTS, lambda d: S3ProxyServer("s3proxy", d)),
        Plan(
            "s3proxy --no-fsync",
            S3_TESTS,
            lambda d: S3ProxyServer("s3proxy --no-fsync", d, fsync=False),
        ),
    ]
    if s3proxy_supports_workers():
        versions["s3proxy --workers"] = "yes: 1 and 2 workers for small requests"
        plans += [
            Plan(
                "s3proxy --workers 2",
                SMALL_TESTS,
                lambda d: S3ProxyServer("s3proxy --workers 2", d, workers=2),
            ),
            Plan(
                "s3proxy --workers 2 --no-fsync",
                SMALL_TESTS,
                lambda d: S3ProxyServer(
                    "s3proxy --workers 2 --no-fsync", d, fsync=False, workers=2
                ),
            ),
        ]
    else:
        versions["s3proxy --workers"] = "not available: 1 worker only"

    if not args.skip_moto:

        def make_moto(d: Path) -> ManagedServer:
            executable = ensure_moto(tools)
            versions["moto"] = moto_version(executable)
            return MotoServer("moto", d, executable=executable)

        plans.append(Plan("moto", S3_TESTS, make_moto))
    if not args.skip_nginx:

        def make_nginx(d: Path) -> ManagedServer:
            executable, version = ensure_nginx(tools)
            versions["nginx"] = version
            return NginxServer("nginx", d, executable=executable)

        plans.append(Plan("nginx", WEBDAV_TESTS, make_nginx))
    plans += [
        Plan("ceiling", CEILING_TESTS, lambda d: CeilingServer("ceiling", d)),
        Plan(
            "ceiling --no-fsync",
            CEILING_TESTS,
            lambda d: CeilingServer("ceiling --no-fsync", d, fsync=False),
        ),
    ]
    keys = dict(args.peer_key)
    for name, url in args.peer:
        target = peer_target(name, url, keys.get(name), args.region)
        plans.append(Plan(target.name, S3_TESTS, peer=target))
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        plans = [p for p in plans if any(p.name.startswith(w) for w in wanted)]
    if args.tests:
        groups = [g.strip() for g in args.tests.split(",") if g.strip()]
        plans = [
            replace(p, tests=frozenset(t for t in p.tests if any(t.startswith(g) for g in groups)))
            for p in plans
        ]
        plans = [p for p in plans if p.tests]
    return plans


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def settle(name: str, limit: float) -> None:
    """Before a timed test: let other processes' bursts (and the kernel's writeback of
    the last test's data) pass, so the two cores are ours; say so when they do not."""
    if limit <= 0:
        return
    waited, load = wait_until_quiet(limit)
    if load >= 0.25:
        progress(f"  {name}: the machine stayed busy ({load:.2f} cores besides us) for {limit:g} s")
    elif waited > 1.5:
        progress(f"  {name}: waited {waited:.0f} s for the machine to quiet down")


async def bench_target(
    bench: TargetBench, tests: frozenset[str], reps: int, results: Results, quiet_wait: float
) -> None:
    name = bench.target.name
    workload = bench.workload
    await bench.setup()
    for group in GROUPS:
        active = [t for t in group if t in tests]
        try:
            for rep in range(reps):
                for test in active:
                    settle(name, quiet_wait)
                    sample: Sample = await bench.run(test)
                    results.samples.setdefault((test, name), []).append(sample)
                    unit = workload.unit(test)
                    amount = sample.nbytes / 1e6 if unit == "MB/s" else sample.ops
                    progress(
                        f"  {name}: {workload.label(test)} rep {rep + 1}/{reps}: "
                        f"{amount / sample.seconds:,.1f} {unit}, "
                        f"client CPU {100 * sample.client_cpu / sample.seconds:.0f}%"
                    )
        except (BenchError, HttpError, OSError, TimeoutError) as e:
            progress(f"  {name}: FAILED: {e}")
            for test in active:
                results.samples.pop((test, name), None)
                results.errors[(test, name)] = str(e).splitlines()[0]
    if bench.target.pid is None:
        await bench.cleanup()


def run_plan(
    plan: Plan,
    workdir: Path,
    workload: Workload,
    reps: int,
    pattern: Pattern,
    small_body: bytes,
    run_id: str,
    results: Results,
    quiet_wait: float,
) -> None:
    progress(f"{plan.name}:")
    server: ManagedServer | None = None
    try:
        if plan.peer is not None:
            target = plan.peer
        else:
            assert plan.make is not None
            server = plan.make(workdir)
            target = server.start()
        bench = TargetBench(target, workload, pattern, small_body, run_id)
        asyncio.run(bench_target(bench, plan.tests, reps, results, quiet_wait))
    except (SetupError, BenchError, HttpError, OSError, TimeoutError) as e:
        progress(f"  {plan.name}: FAILED: {e}")
        for test in plan.tests:
            if (test, plan.name) not in results.samples:
                results.errors[(test, plan.name)] = str(e).splitlines()[0]
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workload = QUICK if args.quick else FULL
    if args.small_ops:
        workload = replace(workload, small_ops=args.small_ops)
    reps = args.reps or (1 if args.quick else 3)
    quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0 if args.quick else 60)
    machine = machine_lines()  # the date and load average at the start
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="s3proxy-bench-"))
    tools = args.tools_dir or scratch / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    versions: dict[str, str] = {}
    try:
        try:
            plans = make_plans(args, tools, versions)
        except SetupError as e:
            print(f"run.py: {e}", file=sys.stderr)
            return 2
        pattern = Pattern(os.urandom(BLOCK_SIZE))
        small_body = os.urandom(workload.small_size)
        progress("computing the MD5s of the generated payloads ...")
        pattern.md5(0, workload.large_size)
        pattern.md5(0, workload.multi_size)
        run_id = os.urandom(4).hex()
        results = Results(
            workload=workload,
            servers=[p.name for p in plans],
            samples={},
            errors={},
            ceiling_for={"s3proxy": "ceiling", "s3proxy --no-fsync": "ceiling --no-fsync"},
            compare_with=[p.name for p in plans if p.name in ("moto", "nginx")]
            + [p.name for p in plans if p.peer is not None],
        )
        for index, plan in enumerate(plans):
            workdir = scratch / f"server-{index}"
            run_plan(
                plan, workdir, workload, reps, pattern, small_body, run_id, results, quiet_wait
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    w = workload
    print(f"# s3proxy benchmark{' (--quick)' if args.quick else ''}\n")
    for line in machine:
        print(f"- {line}")
    if (now := s3proxy_line()) != machine[-1]:
        print(f"- CHANGED DURING THE RUN, at the end: {now}")
    for name, version in versions.items():
        print(f"- {name}: {version}")
    print(
        f"- {reps} repetition(s); cells are medians, (min–max) over the repetitions; "
        f"MB = 10^6 bytes; small: {w.small_ops} requests of {w.small_size} B over "
        f"{w.concurrency} connections; LIST: full ListObjectsV2 listings for at least "
        f"{w.list_seconds:g} s; the run took {time.monotonic() - started:.0f} s"
    )
    print()
    print(results.table())
    print(
        "\nclient CPU: the load generator's event-loop thread, % of one core. other CPU: what "
        "other processes on the machine used meanwhile, % of one core. Server CPU and RSS: "
        "the whole process tree. (client-bound?): the client reached 90% of a core."
    )
    lines, all_pass = results.targets()
    print("\nTargets:\n")
    print("\n".join(lines))
    if results.errors:
        print(f"\n{len(results.errors)} test(s) failed; see above.")
        return 1
    if args.strict and not all_pass:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
