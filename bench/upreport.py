"""The table of ``bench/upstream.py``: one row per test and target, medians (min–max)
over the repetitions, and the ratios issue 7 asks for, of medians measured in one run.

Cells are computed by ``metrics.summarise`` and formatted by ``report.number`` and
``report.spread``, as in ``bench/run.py``'s table; the columns differ because a row here
has two servers behind it: the gateway tier (s3proxy daemons, and haproxy in front of
several) and the Ceph cluster that stores the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from metrics import Sample, Summary, summarise
from report import client_cell, number, spread
from workloads import TEST_ORDER, Workload


@dataclass(frozen=True)
class Ratio:
    """``ours`` over ``theirs`` for every test both ran; ``label`` names it in the summary."""

    label: str
    ours: str
    theirs: str
    short: str  # how ``theirs`` is named in a row's ratio cell


@dataclass
class UpstreamResults:
    workload: Workload
    targets: list[str]  # row order
    ratios: list[Ratio]
    samples: dict[tuple[str, str], list[Sample]]
    errors: dict[tuple[str, str], str]

    def record(self, test: str, target: str, sample: Sample) -> None:
        self.samples.setdefault((test, target), []).append(sample)

    def fail(self, test: str, target: str, error: str) -> None:
        self.samples.pop((test, target), None)
        self.errors[(test, target)] = error.splitlines()[0] if error else "failed"

    def summary(self, test: str, target: str) -> Summary | None:
        samples = self.samples.get((test, target))
        return summarise(samples, self.workload.unit(test)) if samples else None

    def ratio(self, test: str, ours: str, theirs: str) -> float | None:
        a, b = self.summary(test, ours), self.summary(test, theirs)
        if a is None or b is None or b.rate.median == 0:
            return None
        return a.rate.median / b.rate.median

    def tests(self) -> list[str]:
        ran = {test for test, _ in self.samples} | {test for test, _ in self.errors}
        return [t for t in TEST_ORDER if t in ran]

    def ratio_cell(self, test: str, target: str) -> str:
        cells = []
        for r in self.ratios:
            if r.ours == target and (value := self.ratio(test, r.ours, r.theirs)) is not None:
                cells.append(f"{value:.2f}× {r.short}")
        return ", ".join(cells)

    def table(self) -> str:
        lines = [
            "| test | target | rate (min–max) | p50 ms | p99 ms | gateway CPU ms/op "
            "| Ceph CPU ms/op | gateway peak RSS MB | client CPU | other CPU | ratios |",
            "|" + "---|" * 11,
        ]
        for test in self.tests():
            label, unit = self.workload.label(test), self.workload.unit(test)
            for target in self.targets:
                if (test, target) in self.errors:
                    error = self.errors[(test, target)][:80]
                    lines.append(f"| {label} | {target} | failed: {error} |" + " |" * 8)
                    continue
                s = self.summary(test, target)
                if s is None:
                    continue
                client = client_cell(s.client_cpu_pct)
                lines.append(
                    f"| {label} | {target} | {spread(s.rate, True)} {unit} "
                    f"| {spread(s.p50_ms)} | {spread(s.p99_ms)} "
                    f"| {spread(s.server_cpu_ms_per_op)} | {spread(s.upstream_cpu_ms_per_op)} "
                    f"| {spread(s.server_rss_mb, True)} | {client} "
                    f"| {s.other_cpu_pct.median:.0f}% | {self.ratio_cell(test, target)} |"
                )
        return "\n".join(lines)

    def headlines(self) -> list[str]:
        """One line per ratio: its value for every test, with both medians."""
        lines = []
        for r in self.ratios:
            cells = []
            for test in self.tests():
                value = self.ratio(test, r.ours, r.theirs)
                a, b = self.summary(test, r.ours), self.summary(test, r.theirs)
                if value is None or a is None or b is None:
                    continue
                cells.append(
                    f"{self.workload.label(test)} {value:.2f}× "
                    f"({number(a.rate.median)} vs {number(b.rate.median)} "
                    f"{self.workload.unit(test)})"
                )
            lines.append(f"- {r.label}: " + ("; ".join(cells) if cells else "not measured"))
        return lines
