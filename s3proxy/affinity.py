"""``--cpu-affinity``: keep each serving process's threads on one CPU.

CPython's threads take turns holding the GIL, and the reactor thread and the I/O pool's
threads hand it over at every system call either of them makes. When they run on
different CPUs each hand-over wakes a sleeping thread on the other CPU (a futex wake and
an inter-processor interrupt, costly in a VM), and profiles of small requests showed a
quarter of the daemon's CPU spent there. On one CPU a released GIL is usually taken back
by the thread that released it before the woken one gets to run, so the hand-overs all
but disappear: small GETs cost 35-45 % less CPU. Threads made later (the pool grows on
demand) inherit the pinning of the thread that creates them.

``auto`` pins worker ``i`` of ``--workers N`` to the ``i``-th CPU it may use (modulo
their number), as nginx's ``worker_cpu_affinity auto`` does, and a lone process to the
CPU it started on; a list (``0,2-3``) picks among those CPUs; ``none`` leaves placement
to the kernel."""

from __future__ import annotations

import os

from twisted.logger import Logger
from twisted.python import usage

log = Logger()

OPTION = [
    "cpu-affinity",
    None,
    "auto",
    "Pin each serving process (its reactor and I/O threads) to one CPU: auto (worker i "
    "of several on the i-th CPU the daemon may use, a lone process on the CPU it starts "
    "on), a list of CPUs to take them from (e.g. 0,2-3), or none.",
]


def parse_cpus(text: str) -> tuple[int, ...] | None:
    """``auto`` -> (), ``none`` -> None, ``0,2-3`` -> (0, 2, 3)."""
    text = text.strip()
    if text == "auto":
        return ()
    if text == "none":
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low = int(first)
            high = int(last) if dash else low
        except ValueError:
            raise usage.UsageError(
                f"--cpu-affinity must be auto, none or CPUs like 0,2-3, not {text!r}"
            ) from None
        if low < 0 or high < low or high >= 4096:
            raise usage.UsageError(f"--cpu-affinity: bad CPU range {part.strip()!r}")
        cpus.update(range(low, high + 1))
    return tuple(sorted(cpus))


def current_cpu() -> int | None:
    """The CPU the calling thread is running on (field 39 of its /proc stat line)."""
    try:
        with open("/proc/thread-self/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[36])
    except (OSError, IndexError, ValueError):
        return None


def choose_cpu(
    choice: tuple[int, ...], allowed: set[int], worker_index: int | None, running_on: int | None
) -> int | None:
    """The CPU a serving process stays on, or None to leave it unpinned (the listed
    CPUs are none of those the daemon may use). Worker ``i`` of several takes the
    ``i``-th candidate; a lone process keeps the CPU the kernel started it on, so that
    several daemons on one machine do not all crowd onto the first CPU."""
    candidates = sorted(set(choice) & allowed) if choice else sorted(allowed)
    if not candidates:
        return None
    if worker_index is not None:
        return candidates[worker_index % len(candidates)]
    return running_on if running_on in candidates else candidates[0]


def pin_this_process(choice: tuple[int, ...] | None, worker_index: int | None) -> int | None:
    """Pin the calling thread, and so every thread it starts from now on. Returns the
    CPU, or None when left unpinned. ``worker_index``: None for the only serving
    process, else its index among the workers."""
    if choice is None or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    cpu = choose_cpu(choice, allowed, worker_index, current_cpu())
    if cpu is None:
        log.warn(
            "--cpu-affinity: none of CPUs {cpus} may be used (allowed: {allowed}); not pinning",
            cpus=list(choice),
            allowed=sorted(allowed),
        )
        return None
    if allowed == {cpu}:
        return cpu  # nothing to narrow
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as e:
        log.warn("--cpu-affinity: cannot pin to CPU {cpu}: {error}", cpu=cpu, error=e)
        return None
    return cpu
