"""bench/report.py's target lines, from made-up samples (no servers run)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from metrics import Sample  # noqa: E402
from report import Results  # noqa: E402
from workloads import FULL  # noqa: E402


def _ops_per_second(rate: float) -> list[Sample]:
    return [
        Sample(
            ops=int(rate), nbytes=int(rate) * 1024, seconds=1.0, latencies=[0.01], client_cpu=0.1
        )
    ]


def _results(rates: dict[tuple[str, str], float]) -> Results:
    servers = sorted({server for _, server in rates})
    return Results(
        workload=FULL,
        servers=servers,
        samples={key: _ops_per_second(rate) for key, rate in rates.items()},
        errors={},
        ceiling_for={},
        compare_with=["moto"],
    )


def test_two_workers_are_held_to_one_worker_with_the_same_flags() -> None:
    results = _results(
        {
            ("small_put", "moto"): 300,
            ("small_put", "s3proxy"): 700,
            ("small_put", "s3proxy --workers 2"): 1200,  # 1.71×
            ("small_put", "s3proxy --no-fsync"): 800,
            ("small_put", "s3proxy --workers 2 --no-fsync"): 1200,  # 1.50×
        }
    )
    lines, all_pass = results.targets()
    workers = [line for line in lines if "≥ 1.6×" in line]
    assert workers == [
        "- PASS small PUT 1 KiB ×16, s3proxy --workers 2: ≥ 1.6× s3proxy: "
        "1,200 vs 700 ops/s = 1.71×",
        "- MISS small PUT 1 KiB ×16, s3proxy --workers 2 --no-fsync: ≥ 1.6× "
        "s3proxy --no-fsync: 1,200 vs 800 ops/s = 1.50×",
    ]
    assert not all_pass


def test_a_missing_one_worker_row_is_not_applicable() -> None:
    results = _results({("small_get", "moto"): 300, ("small_get", "s3proxy --workers 2"): 900})
    lines, _ = results.targets()
    assert (
        "- n/a  small GET 1 KiB ×16, s3proxy --workers 2: ≥ 1.6× s3proxy (s3proxy not measured)"
        in lines
    )
