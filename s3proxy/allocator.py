"""One malloc arena for the serving process.

glibc gives each thread that allocates while another holds the main arena an arena of
its own, up to eight per CPU. The I/O pool's threads allocate the 2 MiB buffers of
large reads, so freed buffers ended up spread over several arenas, each keeping some:
a 1 GiB GET peaked at 105 MB of RSS against 90 MB with a single arena, at the same
speed (benchmark, 2026-11-25). Python allocates with the GIL held, so the threads
would hardly ever contend for the one arena anyway. ``MALLOC_ARENA_MAX`` in the
environment still wins: glibc read it at start-up, and we leave it alone."""

from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8  # glibc's malloc.h


def use_one_arena() -> bool:
    """Before any thread starts: limit glibc to one arena. False where that is not
    glibc, or the environment chose a number."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        # The process's own symbols (libc's among them): find_library would run
        # ldconfig in a subprocess.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl has no mallopt)
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, 1))
