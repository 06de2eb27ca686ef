"""The benchmark (bench/run.py) runs end to end in its quick form and prints its table.

No timing is asserted: this only keeps the command working. It starts the daemon the way
a user does (``twistd -n s3proxy`` from this environment), signs every request with
SigV4 against a credentials file, and checks ETags and bodies, so a run that exits 0 has
also exercised those paths.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.markdown import table_rows

ROOT = Path(__file__).resolve().parent.parent

QUICK_TESTS = (
    "small PUT 1 KiB ×16",
    "small GET 1 KiB ×16",
    "LIST 300 keys, 100/page",
    "PUT 16 MiB",
    "GET 16 MiB",
    "PUT 2 × 8 MiB",
)


def test_quick_benchmark_prints_s3proxy_rows() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--quick",
            "--skip-moto",
            "--skip-nginx",
            "--reps",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    rows = table_rows(result.stdout)
    assert rows and rows[0][:3] == ["test", "server", "rate (min–max)"], result.stdout
    found = {(row[0], row[1]) for row in rows[1:]}
    for test in QUICK_TESTS:
        for server in ("s3proxy", "s3proxy --no-fsync"):
            assert (test, server) in found, f"no row for {server} / {test}:\n{result.stdout}"
    for test in ("PUT 16 MiB", "PUT 2 × 8 MiB"):
        assert (test, "ceiling") in found, result.stdout
    assert "failed" not in result.stdout, result.stdout
    assert "Targets:" in result.stdout
