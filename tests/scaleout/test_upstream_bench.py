"""bench/upstream.py runs end to end in its quick form, and stops what it started.

No timing is asserted: this keeps the command working. A run that exits 0 has put and
read every object through RGW directly, through one s3proxy over it, through one with
a read cache, and through three behind haproxy, with every ETag and body checked, and
the cache's own counters agreeing that the "miss" rows missed and the "hit" rows hit.
It starts its own Ceph cluster (a few seconds), like a user running the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.markdown import table_rows

pytestmark = pytest.mark.scaleout

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, str(ROOT / "bench" / "upstream.py"), "--quick"]
TARGETS = ("upstream direct", "s3proxy", "3 × s3proxy + haproxy")
TESTS = ("small PUT 1 KiB ×16", "small GET 1 KiB ×16", "PUT 16 MiB", "GET 16 MiB")


def rows_by_test_and_target(stdout: str) -> dict[tuple[str, str], list[str]]:
    rows = table_rows(stdout)
    assert rows and rows[0][:3] == ["test", "target", "rate (min–max)"], stdout
    return {(row[0], row[1]): row for row in rows[1:]}


def test_quick_run_measures_every_target() -> None:
    result = subprocess.run(COMMAND, cwd=ROOT, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    rows = rows_by_test_and_target(result.stdout)
    for test in TESTS:
        for target in TARGETS:
            row = rows.get((test, target))
            assert row is not None, f"no row for {target} / {test}:\n{result.stdout}"
            assert row[2].endswith(("ops/s", "MB/s")) and float(row[2].split()[0].replace(",", ""))
            assert row[6] != "–", f"Ceph's CPU not measured for {target}:\n{result.stdout}"
    for test in ("small GET 1 KiB ×16", "GET 16 MiB"):
        for target in ("s3proxy --cache: miss", "s3proxy --cache: hit"):
            assert (test, target) in rows, result.stdout
    for test in ("small PUT 1 KiB ×16", "PUT 16 MiB"):
        assert (test, "s3proxy --cache") in rows, result.stdout
    assert "0.00×" not in result.stdout
    assert "× direct" in rows[("GET 16 MiB", "s3proxy")][10], result.stdout
    assert "× miss" in rows[("GET 16 MiB", "s3proxy --cache: hit")][10], result.stdout
    assert "× one s3proxy" in rows[("small GET 1 KiB ×16", "3 × s3proxy + haproxy")][10]
    checks = [line for line in result.stdout.splitlines() if "blocks from the cache" in line]
    assert len(checks) == 4 and all(line.endswith("as expected") for line in checks), output
    assert "failed" not in result.stdout
    assert "nproc: " in result.stdout and "radosgw: ceph version" in result.stdout


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_interrupted_run_stops_everything_it_started(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    with open(log, "w") as err:
        process = subprocess.Popen(
            COMMAND, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True
        )
    try:
        deadline = time.monotonic() + 600
        while "rep 1/1" not in log.read_text():  # measuring: every server is up
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        started = descendants(process.pid)
        # Ceph's three daemons, the three of the farm, haproxy, and the two single ones.
        assert len(started) >= 9, started
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 130, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    left = [pid for pid in started if alive(pid)]
    assert not left, f"still running after the run ended: {left}"
    assert "everything it started is stopped" in log.read_text()
