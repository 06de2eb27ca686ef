"""A moto S3 server on a loopback port, started as a subprocess and stopped by PID:
the upstream of the S3 backend's contract and integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

from tests.processes import free_port, stop

ACCESS_KEY = "moto-upstream-access"
SECRET_KEY = "moto-upstream-secret-never-logged"


@dataclass
class MotoServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget every bucket (moto's own reset call)."""
        request = urllib.request.Request(self.endpoint + "/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def stop(self) -> None:
        stop(self.process)


def start_moto(timeout: float = 30.0) -> MotoServer:
    port = free_port()
    env = dict(
        os.environ,
        # Our backend checks part sizes itself (select_parts, with the min_part_size it
        # is given); moto's own 5 MiB floor would refuse the contract suite's 1000 bytes.
        S3_UPLOAD_PART_MIN_SIZE="1",
        MOTO_S3_DEFAULT_KEY_BUFFER_SIZE=str(8 * 1024 * 1024),
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = MotoServer(port, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(server.endpoint + "/moto-api/", timeout=1) as answer:
                answer.read()
            return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("moto server did not answer in time")
