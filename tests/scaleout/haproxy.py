"""haproxy in front of several S3 daemons: round-robin, HTTP mode, active health checks.

The config is the one docs/deployment.md recommends, on a free 127.0.0.1 port, with an
admin socket in the fixture's temp dir so a test can read what haproxy thinks of each
server (``show stat``).
"""

from __future__ import annotations

import csv
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.scaleout import children
from tests.scaleout.packages import HAPROXY_PROGRAMS, ensure_programs, program_path

BACKEND = "s3proxy"

# Health check: any daemon that answers ``GET /`` with an S3 document is alive: 200
# (open mode: ListBuckets) or 403 (with --credentials: an anonymous ListBuckets is denied
# before storage is touched). A 5xx or no answer marks it down after two misses 250 ms
# apart; two good answers bring it back.
# ``retry-on conn-failure empty-response`` + ``redispatch``: a request that found its
# server dead before it got an answer is replayed on another server, so a crash costs
# only requests the dead daemon had already started answering.
CONFIG = """\
global
    maxconn 1024
    stats socket {admin_socket} mode 600 level admin
    log stderr format short local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 30s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend s3
    bind 127.0.0.1:{port}
    # Large uploads stream through; no body buffering.
    default_backend {backend}

backend {backend}
    balance roundrobin
    option httpchk GET /
    http-check expect rstatus ^[234]
    default-server check inter 250ms fastinter 250ms downinter 500ms fall 2 rise 2
{servers}
"""


def haproxy_config(port: int, servers: list[str], admin_socket: Path) -> str:
    lines = "\n".join(f"    server s{i + 1} {address}" for i, address in enumerate(servers))
    return CONFIG.format(port=port, servers=lines, admin_socket=admin_socket, backend=BACKEND)


@dataclass
class HAProxy:
    workdir: Path
    servers: list[str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    server_names: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "haproxy.cfg"

    @property
    def admin_socket(self) -> Path:
        return self.workdir / "admin.sock"

    @property
    def log_path(self) -> Path:
        return self.workdir / "haproxy.log"

    def start(self, timeout: float = 20.0) -> HAProxy:
        ensure_programs(HAPROXY_PROGRAMS)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = children.free_port()
        self.server_names = [f"s{i + 1}" for i in range(len(self.servers))]
        self.config_path.write_text(haproxy_config(self.port, self.servers, self.admin_socket))
        haproxy = program_path("haproxy")
        check = subprocess.run(
            [haproxy, "-c", "-f", str(self.config_path)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejects its config:\n{check.stdout}{check.stderr}")
        # -db: stay in the foreground, one process: the PID we hold is haproxy itself.
        self.process = children.start([haproxy, "-db", "-f", str(self.config_path)], self.log_path)
        try:
            children.wait_for_port(self.port, self.process, timeout)
            self.wait_for_status(dict.fromkeys(self.server_names, "UP"), timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            children.stop(self.process)

    def command(self, line: str) -> str:
        """One command on the admin socket (``show stat``, ``disable server ...``)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.admin_socket))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_stats(self) -> dict[str, dict[str, str]]:
        """Server name -> its ``show stat`` row (status, check_status, stot, ...)."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(text.splitlines())
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def statuses(self) -> dict[str, str]:
        return {name: row["status"] for name, row in self.server_stats().items()}

    def wait_for_status(self, wanted: dict[str, str], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                seen = self.statuses()
            except OSError:  # the admin socket appears a moment after the listener
                time.sleep(0.05)
                continue
            if all(seen.get(name) == status for name, status in wanted.items()):
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"haproxy servers {seen}, wanted {wanted}:\n{children.tail(self.log_path)}"
        )
