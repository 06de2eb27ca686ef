"""What is measured around each timed phase, and how repetitions are summarised.

Server side, always over the whole process tree (the PID we started and every process
below it: twistd's workers, nginx's worker, moto's threads are in one process anyway):

* CPU: ``utime + stime + cutime + cstime`` from ``/proc/<pid>/stat``, summed over the
  tree, before and after the phase. (``cutime``/``cstime`` carry the time of children
  that exited and were reaped during the phase.) Resolution: one clock tick (10 ms).
* Peak RSS: the larger of two readings. (1) The tree's summed RSS (``/proc/<pid>/statm``)
  sampled every 50 ms on a thread. (2) The sum of every process's ``VmHWM`` at the end of
  the phase, after resetting each process's high-water mark at its start by writing ``5``
  to ``/proc/<pid>/clear_refs`` (root, Linux >= 4.0). (2) catches peaks between samples;
  for a tree of several processes it is an upper bound, since their peaks need not
  coincide.

Upstream (``bench/upstream.py``: the Ceph daemons behind an s3proxy with the s3:
backend, or the Ceph under test itself): CPU the same way, over their trees, reported
apart from the server's.

Client side: ``time.thread_time()`` of the event loop's thread, i.e. the load generator's
own CPU (user + system), excluding the sampler thread.

Everything else: the machine's busy time from ``/proc/stat`` less the server trees',
the upstream's and this whole process's CPU, i.e. what other processes took from the
cores meanwhile. On a shared 2-core machine that is the first thing to look at when a
number looks off.
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

SAMPLE_INTERVAL = 0.05
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(root: int) -> float:
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / CLOCK_TICKS


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idle and iowait since boot."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def load_besides_us(window: float = 1.0) -> float:
    """Cores' worth of CPU that everything but this process used over ``window`` s."""
    busy, own = machine_busy_seconds(), time.process_time()
    time.sleep(window)
    return max(0.0, machine_busy_seconds() - busy - (time.process_time() - own)) / window


def wait_until_quiet(limit: float, threshold: float = 0.25) -> tuple[float, float]:
    """Wait (up to ``limit`` s) until the rest of the machine, the idle server included,
    uses less than ``threshold`` of a core. Returns (seconds waited, last load seen)."""
    started = time.monotonic()
    load = load_besides_us()
    while load >= threshold and time.monotonic() - started < limit:
        load = load_besides_us()
    return time.monotonic() - started, load


def tree_rss(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        try:
            total += _rss(pid)
        except OSError:
            pass
    return total


def _hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_hwm(root: int) -> bool:
    """Reset the peak RSS of every process in the tree; False where it could not be."""
    ok = True
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def tree_hwm(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        try:
            total += _hwm(pid)
        except OSError:
            pass
    return total


class TreeMonitor:
    """CPU and peak RSS of one or more process trees over one phase (``start`` ... ``stop``)."""

    def __init__(self, roots: Sequence[int], interval: float = SAMPLE_INTERVAL) -> None:
        self.roots = tuple(roots)
        self.interval = interval
        self.peak_sampled = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._cpu_start = 0.0
        self._hwm_valid = False

    def _sample(self) -> None:
        self.peak_sampled = max(self.peak_sampled, sum(tree_rss(r) for r in self.roots))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> None:
        reset = [reset_hwm(r) for r in self.roots]  # every tree, even after one fails
        self._hwm_valid = all(reset)
        self._sample()
        self._cpu_start = forest_cpu_seconds(self.roots)
        self._thread.start()

    def stop(self) -> tuple[float, int]:
        """(CPU seconds, peak RSS bytes) of the trees during the phase."""
        cpu = forest_cpu_seconds(self.roots) - self._cpu_start
        self._stop.set()
        self._thread.join()
        self._sample()
        peak = self.peak_sampled
        if self._hwm_valid:
            peak = max(peak, sum(tree_hwm(r) for r in self.roots))
        return cpu, peak


def forest_cpu_seconds(roots: Sequence[int]) -> float:
    return sum(tree_cpu_seconds(r) for r in roots)


@dataclass
class Sample:
    """One repetition of one test against one server."""

    ops: int
    nbytes: int
    seconds: float
    latencies: list[float]
    client_cpu: float
    server_cpu: float | None = None
    server_rss: int | None = None
    other_cpu: float = 0.0
    upstream_cpu: float | None = None


class Meter:
    """Brackets the timed part of a test: wall clock, the client's CPU, the server
    trees' CPU and peak RSS when their PIDs are known (``server``: the process trees of
    the server under test), and the CPU of the store behind it (``upstream``: a real S3
    store the server forwards to, counted apart so it is not taken for other load)."""

    def __init__(self, server: Sequence[int] = (), upstream: Sequence[int] = ()) -> None:
        self.server = tuple(server)
        self.upstream = tuple(upstream)
        self._monitor: TreeMonitor | None = None
        self._wall = 0.0
        self._client = 0.0
        self._process = 0.0
        self._busy = 0.0
        self._upstream_start = 0.0
        self.seconds = 0.0
        self.client_cpu = 0.0
        self.other_cpu = 0.0
        self.server_cpu: float | None = None
        self.server_rss: int | None = None
        self.upstream_cpu: float | None = None

    def start(self) -> None:
        if self.server:
            self._monitor = TreeMonitor(self.server)
            self._monitor.start()
        self._upstream_start = forest_cpu_seconds(self.upstream)
        self._busy = machine_busy_seconds()
        self._process = time.process_time()
        self._client = time.thread_time()
        self._wall = time.perf_counter()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.client_cpu = time.thread_time() - self._client
        process = time.process_time() - self._process
        busy = machine_busy_seconds() - self._busy
        if self._monitor is not None:
            self.server_cpu, self.server_rss = self._monitor.stop()
        if self.upstream:
            self.upstream_cpu = forest_cpu_seconds(self.upstream) - self._upstream_start
        self.other_cpu = max(
            0.0, busy - process - (self.server_cpu or 0.0) - (self.upstream_cpu or 0.0)
        )

    def sample(self, ops: int, nbytes: int, latencies: list[float]) -> Sample:
        return Sample(
            ops=ops,
            nbytes=nbytes,
            seconds=self.seconds,
            latencies=latencies,
            client_cpu=self.client_cpu,
            server_cpu=self.server_cpu,
            server_rss=self.server_rss,
            other_cpu=self.other_cpu,
            upstream_cpu=self.upstream_cpu,
        )


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in (0, 1])."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return None
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Summary:
    """The medians (and min–max) of one test against one server over its repetitions."""

    reps: int
    rate: Spread
    p50_ms: Spread | None
    p99_ms: Spread | None
    server_cpu_ms_per_op: Spread | None
    server_rss_mb: Spread | None
    client_cpu_pct: Spread
    other_cpu_pct: Spread
    upstream_cpu_ms_per_op: Spread | None  # the S3 store behind the server, if measured


MB = 1_000_000


def summarise(samples: list[Sample], unit: str) -> Summary:
    """``unit`` is ``MB/s`` (rate from bytes) or anything per second (rate from ops)."""

    def rate(s: Sample) -> float:
        amount = s.nbytes / MB if unit == "MB/s" else s.ops
        return amount / s.seconds if s.seconds > 0 else math.nan

    rates = Spread.of([rate(s) for s in samples])
    assert rates is not None
    client = Spread.of([100 * s.client_cpu / s.seconds for s in samples if s.seconds > 0])
    other = Spread.of([100 * s.other_cpu / s.seconds for s in samples if s.seconds > 0])
    assert client is not None and other is not None
    return Summary(
        reps=len(samples),
        rate=rates,
        p50_ms=Spread.of([1000 * percentile(s.latencies, 0.5) for s in samples]),
        p99_ms=Spread.of([1000 * percentile(s.latencies, 0.99) for s in samples]),
        server_cpu_ms_per_op=Spread.of(
            [1000 * s.server_cpu / s.ops for s in samples if s.server_cpu is not None and s.ops]
        ),
        server_rss_mb=Spread.of([s.server_rss / MB for s in samples if s.server_rss is not None]),
        client_cpu_pct=client,
        other_cpu_pct=other,
        upstream_cpu_ms_per_op=Spread.of(
            [1000 * s.upstream_cpu / s.ops for s in samples if s.upstream_cpu is not None and s.ops]
        ),
    )
