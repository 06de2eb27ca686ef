"""``--cpu-affinity``: which CPU a serving process is pinned to, and that it is."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest
from twisted.python import usage

from s3proxy import affinity
from tests.unit.tapoptions import parse


def test_auto_none_and_lists_parse() -> None:
    assert affinity.parse_cpus("auto") == ()
    assert affinity.parse_cpus("none") is None
    assert affinity.parse_cpus("0,2-3") == (0, 2, 3)
    assert affinity.parse_cpus(" 3, 1 ") == (1, 3)


@pytest.mark.parametrize("bad", ["", "x", "1-", "3-1", "-1", "0,,1", "99999"])
def test_bad_lists_are_usage_errors(bad: str) -> None:
    with pytest.raises(usage.UsageError):
        affinity.parse_cpus(bad)


def test_workers_take_the_allowed_cpus_in_turn() -> None:
    allowed = {0, 1, 2}
    assert [affinity.choose_cpu((), allowed, i, None) for i in range(5)] == [0, 1, 2, 0, 1]
    # A list is narrowed to the CPUs the daemon may use.
    assert [affinity.choose_cpu((1, 2, 7), allowed, i, 0) for i in range(3)] == [1, 2, 1]
    assert affinity.choose_cpu((7,), allowed, 0, 0) is None


def test_a_lone_process_keeps_the_cpu_it_started_on() -> None:
    assert affinity.choose_cpu((), {0, 1}, None, 1) == 1
    assert affinity.choose_cpu((0,), {0, 1}, None, 1) == 0  # not in the list
    assert affinity.choose_cpu((), {0, 1}, None, None) == 0


def test_current_cpu_is_one_this_thread_may_use() -> None:
    assert affinity.current_cpu() in os.sched_getaffinity(0)


def _in_a_thread(work: Callable[[], object]) -> dict[str, object]:
    """Run ``work`` on a new thread (pinning is per thread) and return its result
    and the mask of a thread that thread starts afterwards."""
    out: dict[str, object] = {}

    def run() -> None:
        out["result"] = work()
        child_mask: dict[str, set[int]] = {}
        child = threading.Thread(target=lambda: child_mask.update(m=os.sched_getaffinity(0)))
        child.start()
        child.join()
        out["mask"] = os.sched_getaffinity(0)
        out["child"] = child_mask["m"]

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_pinning_holds_for_the_thread_and_the_threads_it_starts() -> None:
    last = max(os.sched_getaffinity(0))
    out = _in_a_thread(lambda: affinity.pin_this_process((last,), 0))
    assert out["result"] == last
    assert out["mask"] == {last}
    assert out["child"] == {last}  # the pool's threads inherit it
    assert len(os.sched_getaffinity(0)) >= 2  # the test's own thread is untouched


def test_none_leaves_threads_unpinned() -> None:
    allowed = os.sched_getaffinity(0)
    out = _in_a_thread(lambda: affinity.pin_this_process(None, 0))
    assert out["result"] is None
    assert out["mask"] == allowed


def test_unusable_cpus_leave_the_process_unpinned() -> None:
    allowed = os.sched_getaffinity(0)
    out = _in_a_thread(lambda: affinity.pin_this_process((4095,), None))
    assert out["result"] is None
    assert out["mask"] == allowed


def test_option_default_and_value() -> None:
    assert parse()["cpus"] == ()
    assert parse("--cpu-affinity", "none")["cpus"] is None
    assert parse("--cpu-affinity", "1")["cpus"] == (1,)
    with pytest.raises(usage.UsageError):
        parse("--cpu-affinity", "fast")
