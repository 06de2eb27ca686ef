"""Installing the Debian packages a scale-out test needs, once, when they are missing.

The tests run as root on Debian (developers' machines and CI alike), so a missing
program is installed with apt-get rather than skipped: a skipped harness would hide
a broken scale-out path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

# Program -> the Debian package that ships it. Ceph 16.2 (bookworm) needs no ceph-mgr
# for S3 I/O, and no systemd: every daemon runs in the foreground.
CEPH_PROGRAMS = {
    "ceph-mon": "ceph-mon",
    "monmaptool": "ceph-base",
    "ceph-osd": "ceph-osd",
    "ceph": "ceph-common",
    "radosgw": "radosgw",
    "radosgw-admin": "radosgw",
}
HAPROXY_PROGRAMS = {"haproxy": "haproxy"}

_lock = threading.Lock()
_updated = False


def missing_packages(programs: dict[str, str]) -> list[str]:
    return sorted({package for program, package in programs.items() if not _which(program)})


def _which(program: str) -> str | None:
    # Daemons live in /usr/bin, but a root shell may lack /usr/sbin on PATH (haproxy).
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin:/bin")


def program_path(program: str) -> str:
    found = _which(program)
    if found is None:
        raise RuntimeError(f"{program} is not installed")
    return found


def ensure_programs(programs: dict[str, str], timeout: float = 900) -> None:
    """apt-get install the packages of the programs that are not on this machine."""
    global _updated
    with _lock:
        packages = missing_packages(programs)
        if not packages:
            return
        if os.geteuid() != 0:
            raise RuntimeError(f"need root to install {' '.join(packages)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if not _updated:
            _apt(["update"], env, timeout)
            _updated = True
        _apt(["install", "-y", "--no-install-recommends", *packages], env, timeout)
        still = missing_packages(programs)
        if still:
            raise RuntimeError(f"apt-get installed but still missing: {' '.join(still)}")


def _apt(args: list[str], env: dict[str, str], timeout: float) -> None:
    result = subprocess.run(
        ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=300", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"apt-get {args[0]} failed:\n{result.stdout[-2000:]}{result.stderr}")
