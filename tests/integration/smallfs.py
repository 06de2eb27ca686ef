"""A small file system of the test's own (a tmpfs) to fill up or make read-only.

Mounting needs root; without it the tests that use one are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

MiB = 1024 * 1024


@contextmanager
def small_fs(path: Path, size_mib: int = 16) -> Iterator[Path]:
    """A tmpfs of ``size_mib`` mounted at ``path`` (made world-traversable, so an
    unprivileged daemon can use it), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (and mount(8))")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def remount(path: Path, mode: str) -> None:
    """``mode`` "ro" or "rw"."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def everything_under(path: Path) -> dict[str, int]:
    """Every file and directory below ``path`` with its size (0 for directories)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), path) + "/"] = 0
        for name in filenames:
            full = os.path.join(dirpath, name)
            found[os.path.relpath(full, path)] = os.lstat(full).st_size
    return found
