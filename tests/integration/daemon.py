"""Starting the real daemon the way a user does (``twistd -n s3proxy ...``) on a
loopback port, and stopping it by PID."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.processes import free_port, stop

PREFIX = "/api/v1/s3"


def twistd_command() -> list[str]:
    beside = Path(sys.executable).with_name("twistd")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("twistd")
    if found:
        return [found]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def read_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


@dataclass
class Daemon:
    backend: str
    workdir: Path
    extra_args: list[str] = field(default_factory=list)
    # Run through another command, e.g. setpriv to start it as another user.
    command_prefix: list[str] = field(default_factory=list)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def endpoint(self) -> str:
        """For SDKs: the API at the root path."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The reference page's URLs: the API under /api/v1/s3."""
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "daemon.log"

    def start(self, timeout: float = 20.0) -> Daemon:
        self.port = free_port()
        args = twistd_command() + [
            "-n",
            "--pidfile=",
            "--logfile",
            str(self.log_path),
            "s3proxy",
            "--listen",
            f"tcp:{self.port}:interface=127.0.0.1",
            "--backend",
            self.backend,
            *self.extra_args,
        ]
        args = self.command_prefix + args
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            args, cwd=self.workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"s3proxy exited with {self.process.returncode}: {err}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("s3proxy did not start listening in time")

    def stop(self) -> None:
        if self.process is None:
            return
        stop(self.process)
        # Close the stderr pipe now, not when the garbage collector finds it (a
        # ResourceWarning then, in whichever test happens to be running).
        if self.process.stderr is not None:
            self.process.stderr.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
