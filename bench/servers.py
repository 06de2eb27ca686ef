"""The servers under test: installed into a temporary place, started on 127.0.0.1, and
stopped by PID.

* s3proxy: ``twistd -n s3proxy`` from this Python environment (as
  ``tests/integration/daemon.py`` starts it), filesystem backend in a temporary
  directory, with a credentials file so every request's SigV4 signature is verified.
* moto: ``pip install 'moto[server]'`` into a venv made for the run, ``moto_server``.
  (moto does not verify signatures.)
* nginx: Debian's ``nginx`` package, ``apt-get download`` + ``dpkg-deb -x`` into the
  tools directory (nothing installed system-wide, no service started); a generated config
  with WebDAV ``PUT``/``DELETE`` and static ``GET`` over a temporary root. Falls back to
  ``apt-get install -y nginx-light`` when the extracted binary cannot run.
* the ceiling: ``bench/ceiling.py``, a bare recv + MD5 + write (+ fsync) loop.
* peers: any other S3 endpoint, given by URL and keys; not started, not measured.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from loadgen import SigV4Signer
from metrics import process_tree, tree_cpu_seconds

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
Kind = Literal["s3", "webdav", "ceiling"]

S3_TESTS = frozenset({"small_put", "small_get", "list", "large_put", "large_get", "multi_put"})
SMALL_TESTS = frozenset({"small_put", "small_get"})
WEBDAV_TESTS = frozenset({"small_put", "small_get", "large_put", "large_get", "multi_put"})
CEILING_TESTS = frozenset({"large_put", "multi_put"})


class SetupError(RuntimeError):
    pass


@dataclass
class Target:
    """Where and how the load generator talks to one server."""

    name: str
    kind: Kind
    host: str
    port: int
    signer: SigV4Signer
    prefix: str = ""
    pid: int | None = None
    # More processes that serve it (several daemons behind a proxy: the proxy is ``pid``),
    # and the processes of the store it forwards to; their CPU is measured too.
    more_pids: tuple[int, ...] = ()
    upstream_pids: tuple[int, ...] = ()

    @property
    def server_pids(self) -> tuple[int, ...]:
        return (() if self.pid is None else (self.pid,)) + self.more_pids

    @property
    def host_header(self) -> str:
        return self.host if self.port == 80 else f"{self.host}:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def twistd_command() -> list[str]:
    beside = Path(sys.executable).with_name("twistd")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("twistd")
    if found:
        return [found]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def s3proxy_supports_workers() -> bool:
    """Whether this s3proxy has ``--workers`` (``twistd s3proxy --help`` lists it)."""
    result = subprocess.run(
        [*twistd_command(), "s3proxy", "--help"], capture_output=True, text=True, timeout=60
    )
    return "--workers" in result.stdout


def _run(args: list[str], log: Path, cwd: Path | None = None, timeout: float = 900) -> bool:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        try:
            result = subprocess.run(
                args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            out.write(f"{e}\n")
            return False
    return result.returncode == 0


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


# -- installing ------------------------------------------------------------------------


def ensure_moto(tools: Path) -> Path:
    """``moto_server`` from a venv under ``tools`` (made and filled from PyPI if new)."""
    venv = tools / "moto-venv"
    server = venv / "bin" / "moto_server"
    if server.exists():
        return server
    log = tools / "install-moto.log"
    print("installing moto[server] from PyPI into a temporary venv ...", file=sys.stderr)
    if not (
        _run([sys.executable, "-m", "venv", str(venv)], log)
        and _run([str(venv / "bin" / "pip"), "install", "-q", "moto[server]"], log)
        and server.exists()
    ):
        raise SetupError(f"could not install moto (log: {log}):\n{_tail(log)}")
    return server


def moto_version(server: Path) -> str:
    python = server.with_name("python")
    result = subprocess.run(
        [str(python), "-c", "import moto; print(moto.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.strip()


def _nginx_works(binary: Path) -> str | None:
    """nginx's version line if the binary runs and has the DAV module, else None."""
    try:
        result = subprocess.run([str(binary), "-V"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    if result.returncode != 0 or "http_dav_module" not in result.stderr:
        return None
    return result.stderr.splitlines()[0].removeprefix("nginx version: ")


def ensure_nginx(tools: Path) -> tuple[Path, str]:
    """An nginx binary with WebDAV, and its version."""
    found = shutil.which("nginx")
    if found and (version := _nginx_works(Path(found))):
        return Path(found), version
    root = tools / "nginx-root"
    local = root / "usr" / "sbin" / "nginx"
    if local.exists() and (version := _nginx_works(local)):
        return local, version
    log = tools / "install-nginx.log"
    debs = tools / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    print("fetching nginx from Debian (apt-get download) ...", file=sys.stderr)
    downloaded = _run(["apt-get", "download", "nginx"], log, cwd=debs) or (
        _run(["apt-get", "update", "-q"], log) and _run(["apt-get", "download", "nginx"], log, debs)
    )
    packages = sorted(debs.glob("nginx_*.deb"))
    if downloaded and packages and _run(["dpkg-deb", "-x", str(packages[-1]), str(root)], log):
        if version := _nginx_works(local):
            return local, version
    print("extracted nginx does not run; apt-get install -y nginx-light ...", file=sys.stderr)
    _run(["apt-get", "install", "-y", "-q", "nginx-light"], log)
    found = shutil.which("nginx")
    if found and (version := _nginx_works(Path(found))):
        return Path(found), version
    raise SetupError(f"could not get an nginx with WebDAV (log: {log}):\n{_tail(log)}")


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    types {{ }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    client_max_body_size 0;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {host}:{port};
        root {tmp}/root;
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw;
        }}
    }}
}}
"""


# -- running ---------------------------------------------------------------------------


def _probe(port: int) -> bool:
    """True once something answers HTTP on the port."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as s:
            request = f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
            s.sendall(request.encode())
            return s.recv(5) == b"HTTP/"
    except OSError:
        return False


@dataclass
class ManagedServer:
    """A server process we start, and stop by its PID."""

    name: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    processes: int = 1  # how many processes the tree has once it is up

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        raise NotImplementedError

    def target(self) -> Target:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> Target:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        args = self.command()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not _probe(self.port):
            if self.process.poll() is not None:
                raise SetupError(
                    f"{self.name} exited with {self.process.returncode}:\n{_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise SetupError(f"{self.name} did not answer in {timeout:.0f} s")
            time.sleep(0.1)
        self._settle(deadline)
        return self.target()

    def _settle(self, deadline: float) -> None:
        """Wait until every process of the tree is up and done starting (its CPU use has
        stopped growing), so no worker is still importing when the clock starts."""
        previous = -1.0
        while time.monotonic() < deadline:
            time.sleep(0.3)
            cpu = tree_cpu_seconds(self.pid)
            if len(process_tree(self.pid)) >= self.processes and cpu - previous < 0.02:
                return
            previous = cpu

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


def credentials_toml(access_key: str, secret_key: str) -> str:
    """The ``--credentials`` file of one user, so every request's signature is checked."""
    return (
        "[[users]]\n"
        f'access_key = "{access_key}"\n'
        f'secret_key = "{secret_key}"\n'
        'user_id = "bench"\n'
        'display_name = "bench"\n'
    )


@dataclass
class S3ProxyServer(ManagedServer):
    fsync: bool = True
    workers: int = 1
    access_key: str = "BENCHACCESSKEY000001"
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))

    def command(self) -> list[str]:
        credentials = self.workdir / "credentials.toml"
        credentials.write_text(credentials_toml(self.access_key, self.secret_key))
        args = [
            *twistd_command(),
            "-n",
            "--pidfile=",
            "--logfile",
            str(self.workdir / "daemon.log"),
            "s3proxy",
            "--listen",
            f"tcp:{self.port}:interface={HOST}",
            "--backend",
            f"file:{self.workdir / 'data'}",
            "--credentials",
            str(credentials),
        ]
        if not self.fsync:
            args.append("--no-fsync")
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
            self.processes = self.workers + 1
        return args

    def target(self) -> Target:
        signer = SigV4Signer(self.access_key, self.secret_key)
        return Target(self.name, "s3", HOST, self.port, signer, pid=self.pid)


@dataclass
class MotoServer(ManagedServer):
    executable: Path = Path("moto_server")

    def command(self) -> list[str]:
        return [str(self.executable), "-H", HOST, "-p", str(self.port)]

    def target(self) -> Target:
        signer = SigV4Signer("BENCHMOTOKEY", "bench-moto-secret")
        return Target(self.name, "s3", HOST, self.port, signer, pid=self.pid)


@dataclass
class NginxServer(ManagedServer):
    executable: Path = Path("nginx")

    def command(self) -> list[str]:
        tmp = self.workdir
        for sub in ("root", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, host=HOST, port=self.port))
        self.processes = 2  # master and one worker
        return [str(self.executable), "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")]

    def target(self) -> Target:
        # nginx ignores the signature; it is sent so every server gets the same requests.
        signer = SigV4Signer("BENCHNGINXKEY", "bench-nginx-secret")
        return Target(self.name, "webdav", HOST, self.port, signer, pid=self.pid)


@dataclass
class CeilingServer(ManagedServer):
    fsync: bool = True

    def command(self) -> list[str]:
        args = [
            sys.executable,
            str(BENCH_DIR / "ceiling.py"),
            "--port",
            str(self.port),
            "--dir",
            str(self.workdir / "data"),
        ]
        return args if self.fsync else [*args, "--no-fsync"]

    def target(self) -> Target:
        signer = SigV4Signer("BENCHCEILINGKEY", "bench-ceiling-secret")
        return Target(self.name, "ceiling", HOST, self.port, signer, pid=self.pid)


def peer_target(name: str, url: str, key: str | None, region: str) -> Target:
    """Another S3 endpoint (``http://host:port[/prefix]``), not started or measured."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SetupError(f"--peer {name}: only http://host[:port][/prefix] URLs, not {url!r}")
    if key is None or ":" not in key:
        raise SetupError(f"--peer {name} needs --peer-key {name}=ACCESS:SECRET")
    access, _, secret = key.partition(":")
    return Target(
        name=f"peer:{name}",
        kind="s3",
        host=parts.hostname,
        port=parts.port or 80,
        signer=SigV4Signer(access, secret, region=region),
        prefix=parts.path.rstrip("/"),
    )
