"""One malloc arena: threads that allocate share it instead of making their own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROGRAM = """
import ctypes, os, sys, threading
sys.path.insert(0, {root!r})
from s3proxy import allocator
if sys.argv[1] == "one":
    assert allocator.use_one_arena()
held = []
def allocate():
    held.extend(os.urandom(1 << 20) for _ in range(4))  # malloc from this thread
threads = [threading.Thread(target=allocate) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def _arenas(mode: str) -> int:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(root=root), mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return sum(1 for line in result.stderr.splitlines() if line.startswith("Arena "))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_stats")
def test_threads_share_one_arena() -> None:
    assert _arenas("default") > 1  # glibc's own choice: one per allocating thread
    assert _arenas("one") == 1


def test_an_explicit_environment_setting_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from s3proxy import allocator

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert allocator.use_one_arena() is False
