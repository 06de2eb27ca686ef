"""Daemons the scale-out fixtures start: children that die with the test run, stopped by PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

# Re-exported: the scale-out fixtures call them as children.free_port / children.stop.
from tests.processes import free_port as free_port
from tests.processes import stop as stop


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Until something accepts on 127.0.0.1:port; fail early if the daemon exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def start(args: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a foreground daemon whose output goes to ``log``.

    ``setpriv --pdeathsig KILL`` (util-linux, always on Debian) execs the daemon with a
    parent-death signal, so a test run that is itself killed leaves no Ceph or haproxy
    behind; the PID we hold is the daemon's own.
    """
    setpriv = shutil.which("setpriv")
    prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
    with open(log, "ab") as out:
        return subprocess.Popen(
            prefix + args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except FileNotFoundError:
        return ""
