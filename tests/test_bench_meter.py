"""bench/metrics.py's Meter over several process trees (the gateway tier) and the upstream
store's trees apart (bench/upstream.py's two CPU columns), on real child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from metrics import Meter, process_tree  # noqa: E402

# A process that spins beside a child doing the same, so each tree has two processes and
# the Meter must walk it. Bounded (30 s), and stopped by PID after the test.
SPIN = """
import subprocess, sys, time
child = None
if sys.argv[1] == "parent":
    child = subprocess.Popen([sys.executable, "-c", sys.argv[2], "leaf", ""])
end = time.monotonic() + 30
while time.monotonic() < end:
    pass
if child is not None:
    child.wait()
"""


@pytest.fixture
def spinners() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes = [subprocess.Popen([sys.executable, "-c", SPIN, "parent", SPIN]) for _ in range(3)]
    yield processes
    for process in processes:
        for pid in reversed(process_tree(process.pid)):  # the child first, then its parent
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=20)


def test_meter_counts_server_trees_and_upstream_apart(
    spinners: list[subprocess.Popen[bytes]],
) -> None:
    deadline = time.monotonic() + 15
    while any(len(process_tree(p.pid)) < 2 for p in spinners):  # each spinner has its child
        assert time.monotonic() < deadline, "the spinners' children did not start"
        time.sleep(0.05)
    gateway, upstream = [spinners[0].pid, spinners[1].pid], [spinners[2].pid]
    meter = Meter(gateway, upstream)
    meter.start()
    time.sleep(1.5)
    meter.stop()
    sample = meter.sample(1, 0, [meter.seconds])
    assert sample.server_cpu is not None and sample.upstream_cpu is not None
    # Four spinning processes in the gateway trees, two upstream, on however many cores
    # are free: the gateway gets more, both get some, neither more than the wall time
    # allows.
    assert sample.server_cpu > 0.1 and sample.upstream_cpu > 0.05, sample
    assert sample.server_cpu > sample.upstream_cpu, sample
    assert sample.server_rss is not None and sample.server_rss > 4 * 5_000_000
    assert sample.server_cpu + sample.upstream_cpu <= meter.seconds * 64


def test_meter_without_pids_measures_only_the_client() -> None:
    meter = Meter()
    meter.start()
    meter.stop()
    sample = meter.sample(1, 0, [meter.seconds])
    assert sample.server_cpu is None and sample.server_rss is None
    assert sample.upstream_cpu is None
