"""The soak script (bench/soak.py) runs end to end in a tiny form, so it cannot rot:
its own daemon, every operation of the mix, the resource samples, the final check.
The full run (10 minutes, 200 connections) is documented in docs/benchmark.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.markdown import table_rows

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


def test_tiny_soak_passes_and_prints_its_tables() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            "--duration",
            "5",
            "--connections",
            "8",
            "--sample-interval",
            "0.4",
            "--check-interval",
            "0.8",
            "--warm-up",
            "0.5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    rows = table_rows(result.stdout)
    counted = {(row[0], row[1]): int(row[2]) for row in rows if len(row) == 5 and row[2].isdigit()}
    for op, answer in [("put small", "200"), ("get", "200"), ("delete", "204"), ("list", "200")]:
        assert counted.get((op, answer), 0) > 0, result.stdout
    assert counted.get(("final GET", "200"), 0) > 0, result.stdout
    assert not any(answer == "UNEXPECTED" for _, answer in counted), result.stdout
    resources = {row[0] for row in rows if row[0].startswith(("open fds", "RSS MiB"))}
    assert resources == {
        "open fds, under load",
        "RSS MiB, under load",
        "open fds, quiet",
        "RSS MiB, quiet",
    }, result.stdout
    assert "PASSED" in result.stdout


@pytest.fixture
def soak(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import soak as module

    return module


def test_resource_judgement(soak: ModuleType) -> None:
    steady = [(t, 200, 100 * MiB) for t in range(10, 60, 5)]
    warm_up = [(0.0, 50, 40 * MiB), (5.0, 400, 300 * MiB)]  # anything goes before
    assert soak.judge_resources(warm_up + steady, 10) == []
    # Within 20 fds (below 200, 10 % is less) and 10 % of RSS: still steady.
    assert soak.judge_resources(steady + [(60, 219, 109 * MiB)], 10) == []
    grown_fds = soak.judge_resources(steady + [(60, 230, 100 * MiB)], 10)
    assert grown_fds == ["at 60 s: 230 open fds, 200 after the warm-up"]
    grown_rss = soak.judge_resources(steady + [(60, 200, 115 * MiB)], 10)
    assert grown_rss == ["at 60 s: RSS 115.0 MiB, 100.0 MiB after the warm-up"]
    assert soak.judge_resources(warm_up, 10) == ["only 0 resource sample(s) after the warm-up"]
