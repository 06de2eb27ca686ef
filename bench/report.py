"""The results table (Markdown, so it pastes into docs/benchmark.md) and the targets.

Every cell is the median over the repetitions; the rate and the peak RSS also show
min–max. Ratios are of medians, measured in the same run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from metrics import Sample, Spread, Summary, summarise
from workloads import TEST_ORDER, Workload

CLIENT_BOUND_PCT = 90.0
# Two workers must give this many times one worker's small requests/s.
WORKERS_SCALING = 1.6


def number(value: float) -> str:
    if math.isnan(value):
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def spread(value: Spread | None, with_range: bool = False) -> str:
    if value is None:
        return "–"
    if with_range and value.low != value.high:
        return f"{number(value.median)} ({number(value.low)}–{number(value.high)})"
    return number(value.median)


def client_cell(client_cpu_pct: Spread) -> str:
    """The load generator's CPU, flagged when it may have been the bottleneck."""
    cell = f"{client_cpu_pct.median:.0f}%"
    if client_cpu_pct.high >= CLIENT_BOUND_PCT:
        cell += " (client-bound?)"
    return cell


@dataclass
class Results:
    """Samples per (test, server), in the order servers were run."""

    workload: Workload
    servers: list[str]
    samples: dict[tuple[str, str], list[Sample]]
    errors: dict[tuple[str, str], str]
    ceiling_for: dict[str, str]  # s3proxy variant -> the ceiling it is held to
    compare_with: list[str]  # servers every s3proxy row is compared with (moto, nginx, peers)

    def summary(self, test: str, server: str) -> Summary | None:
        samples = self.samples.get((test, server))
        return summarise(samples, self.workload.unit(test)) if samples else None

    def median_rate(self, test: str, server: str) -> float | None:
        summary = self.summary(test, server)
        return summary.rate.median if summary else None

    def ratio(self, test: str, ours: str, theirs: str) -> float | None:
        a, b = self.median_rate(test, ours), self.median_rate(test, theirs)
        if a is None or b is None or b == 0:
            return None
        return a / b

    def ours(self) -> list[str]:
        return [s for s in self.servers if s.startswith("s3proxy")]

    def comparisons(self, test: str, server: str) -> str:
        if not server.startswith("s3proxy"):
            return ""
        cells = []
        others = list(self.compare_with)
        if test in ("large_put", "multi_put") and server in self.ceiling_for:
            others.append(self.ceiling_for[server])
        for other in others:
            ratio = self.ratio(test, server, other)
            if ratio is not None:
                cells.append(f"{ratio:.2f}× {other}")
        return ", ".join(cells)

    def table(self) -> str:
        header = (
            "| test | server | rate (min–max) | p50 ms | p99 ms | server CPU ms/op "
            "| server peak RSS MB (min–max) | client CPU | other CPU | us / them |"
        )
        lines = [header, "|" + "---|" * 10]
        for test in TEST_ORDER:
            unit = self.workload.unit(test)
            for server in self.servers:
                key = (test, server)
                if key in self.errors:
                    lines.append(
                        f"| {self.workload.label(test)} | {server} | failed: "
                        f"{self.errors[key][:80]} | | | | | | | |"
                    )
                    continue
                s = self.summary(test, server)
                if s is None:
                    continue
                client = client_cell(s.client_cpu_pct)
                lines.append(
                    f"| {self.workload.label(test)} | {server} "
                    f"| {spread(s.rate, True)} {unit} | {spread(s.p50_ms)} | {spread(s.p99_ms)} "
                    f"| {spread(s.server_cpu_ms_per_op)} | {spread(s.server_rss_mb, True)} "
                    f"| {client} | {s.other_cpu_pct.median:.0f}% "
                    f"| {self.comparisons(test, server)} |"
                )
        return "\n".join(lines)

    def targets(self) -> tuple[list[str], bool]:
        """One line per target and s3proxy variant; and whether all measured ones pass."""
        lines: list[str] = []
        all_pass = True

        def verdict(ok: bool | None, text: str) -> None:
            nonlocal all_pass
            if ok is None:
                lines.append(f"- n/a  {text}")
            else:
                lines.append(f"- {'PASS' if ok else 'MISS'} {text}")
                all_pass = all_pass and ok

        ratio_targets: Sequence[tuple[str, str, float]] = (
            ("small_put", "moto", 4.0),
            ("small_get", "moto", 4.0),
            ("list", "moto", 12.0),
            ("large_put", "ceiling", 0.7),
            ("large_get", "nginx", 0.5),
        )
        for test, other_kind, wanted in ratio_targets:
            for ours in self.ours():
                if (test, ours) not in self.samples:
                    continue
                other = self.ceiling_for.get(ours, "") if other_kind == "ceiling" else other_kind
                ratio = self.ratio(test, ours, other)
                mine, theirs = self.median_rate(test, ours), self.median_rate(test, other)
                what = f"{self.workload.label(test)}, {ours}: ≥ {wanted:g}× {other or other_kind}"
                if ratio is None or mine is None or theirs is None:
                    verdict(None, f"{what} ({other or other_kind} not measured)")
                else:
                    unit = self.workload.unit(test)
                    verdict(
                        ratio >= wanted,
                        f"{what}: {number(mine)} vs {number(theirs)} {unit} = {ratio:.2f}×",
                    )
        # --workers 2 against one worker with the same flags.
        for test in ("small_put", "small_get"):
            for ours in self.ours():
                one = ours.replace(" --workers 2", "")
                if one == ours or (test, ours) not in self.samples:
                    continue
                mine, theirs = self.median_rate(test, ours), self.median_rate(test, one)
                what = f"{self.workload.label(test)}, {ours}: ≥ {WORKERS_SCALING:g}× {one}"
                if mine is None or theirs is None or theirs == 0:
                    verdict(None, f"{what} ({one} not measured)")
                else:
                    verdict(
                        mine / theirs >= WORKERS_SCALING,
                        f"{what}: {number(mine)} vs {number(theirs)} ops/s = {mine / theirs:.2f}×",
                    )
        for test, limit in (("large_put", 100.0), ("large_get", 100.0), ("multi_put", 150.0)):
            for ours in self.ours():
                summary = self.summary(test, ours)
                if summary is None or summary.server_rss_mb is None:
                    continue
                peak = summary.server_rss_mb.high
                verdict(
                    peak < limit,
                    f"{self.workload.label(test)}, {ours}: peak RSS < {limit:.0f} MB: "
                    f"{peak:.1f} MB (highest of {summary.reps})",
                )
        return lines, all_pass
