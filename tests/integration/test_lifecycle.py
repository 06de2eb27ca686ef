"""The daemon's life: start-up failures in one line, graceful SIGTERM, SIGHUP reloading
credentials, and socket activation, each with the real ``twistd`` process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, free_port, twistd_command

Start = Callable[..., Daemon]


def run_twistd(tmp_path: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the daemon in the foreground until it exits by itself."""
    command = twistd_command() + ["-n", "--pidfile=", "--logfile", str(tmp_path / "log")]
    return subprocess.run(
        command + ["s3proxy", *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path
    )


def assert_one_line(result: subprocess.CompletedProcess[str], status: int, text: str) -> None:
    assert result.returncode == status, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("s3proxy: ") and text in lines[0], lines
    assert "Traceback" not in result.stdout + result.stderr
    assert "Usage:" not in result.stdout + result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_is_one_line(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_twistd(
            tmp_path,
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
            "--backend",
            "memory:",
            "--workers",
            workers,
        )
    assert_one_line(result, 1, f"cannot listen on tcp:{port}:interface=127.0.0.1")
    assert "Address already in use" in result.stderr


def test_unusable_data_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    result = run_twistd(
        tmp_path, "--listen", f"tcp:{free_port()}:interface=127.0.0.1", "--backend",
        f"file:{tmp_path / 'a-file' / 'data'}",
    )  # fmt: skip
    assert_one_line(result, 1, "cannot use backend")


def test_missing_credentials_file_is_one_line(tmp_path: Path) -> None:
    result = run_twistd(
        tmp_path, "--listen", f"tcp:{free_port()}:interface=127.0.0.1", "--backend", "memory:",
        "--credentials", str(tmp_path / "missing.toml"),
    )  # fmt: skip
    assert_one_line(result, 1, "missing.toml")


def test_malformed_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "s3proxy.toml"
    config.write_text('listen = "tcp:1"\nthreads = [\n')
    result = run_twistd(tmp_path, "--config", str(config))
    assert_one_line(result, 2, "is not valid TOML")


def test_config_file_runs_the_daemon(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "s3proxy.toml"
    config.write_text(
        f'listen = ["tcp:{port}:interface=127.0.0.1"]\nbackend = "memory:"\nregion = "eu-west-3"\n'
    )
    command = twistd_command() + ["-n", "--pidfile=", "--logfile", str(tmp_path / "log")]
    process = subprocess.Popen(command + ["s3proxy", "--config", str(config)], cwd=tmp_path)
    try:
        wait_for_port(port)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", method="GET")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        location = (
            b"<CreateBucketConfiguration><LocationConstraint>eu-west-3</LocationConstraint>"
            b"</CreateBucketConfiguration>"
        )
        urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}/bkt1", data=location, method="PUT"),
            timeout=5,
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/bkt1?location", timeout=5) as r:
            assert b"eu-west-3" in r.read()
    finally:
        process.terminate()
        process.wait(timeout=20)


def wait_for_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def start_upload(port: int, key: str, size: int, sent: int) -> socket.socket:
    """A PUT whose headers and first ``sent`` bytes are in; the rest is still to come."""
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(
        f"PUT /bkt/{key} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n\r\n".encode()
        + b"x" * sent
    )
    return conn


def read_response(conn: socket.socket) -> bytes:
    conn.settimeout(20)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_sigterm_lets_requests_in_flight_finish(make_daemon: Start) -> None:
    daemon = make_daemon(None, "--no-fsync", "--shutdown-grace", "20s")
    urllib.request.urlopen(urllib.request.Request(f"{daemon.endpoint}/bkt", method="PUT"))
    size = 8 * 1024 * 1024
    idle = socket.create_connection(("127.0.0.1", daemon.port))  # a kept-alive client
    upload = start_upload(daemon.port, "in-flight", size, 1024 * 1024)
    time.sleep(0.5)
    os.kill(daemon.pid, signal.SIGTERM)
    time.sleep(0.5)
    # No longer accepting, and the idle connection is closed...
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", daemon.port), timeout=2).close()
    idle.settimeout(5)
    assert idle.recv(1) == b""
    # ...but the upload in flight still completes.
    assert daemon.process is not None and daemon.process.poll() is None
    upload.sendall(b"x" * (size - 1024 * 1024))
    response = read_response(upload)
    assert response.startswith(b"HTTP/1.1 200"), response
    assert b"connection: close" in response.lower()
    assert daemon.process.wait(timeout=20) == -signal.SIGTERM  # twistd's convention
    stored = Path(daemon.backend.removeprefix("file:")) / "bkt" / "in-flight"
    assert stored.stat().st_size == size
    log = daemon.log_text()
    assert "shutting down: 1 requests in flight" in log
    assert "every request in flight finished" in log


def test_sigterm_waits_for_a_request_whose_headers_are_arriving(make_daemon: Start) -> None:
    """A request is in flight from its first line on, not only once it is handled."""
    daemon = make_daemon(None, "--no-fsync", "--shutdown-grace", "20s")
    urllib.request.urlopen(urllib.request.Request(f"{daemon.endpoint}/bkt", method="PUT"))
    conn = socket.create_connection(("127.0.0.1", daemon.port))
    conn.sendall(b"PUT /bkt/half-headers HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.5)
    os.kill(daemon.pid, signal.SIGTERM)
    time.sleep(0.5)
    assert daemon.process is not None and daemon.process.poll() is None
    conn.sendall(b"Content-Length: 5\r\n\r\nhello")
    response = read_response(conn)
    assert response.startswith(b"HTTP/1.1 200"), response
    assert b"connection: close" in response.lower()
    assert daemon.process.wait(timeout=20) == -signal.SIGTERM
    stored = Path(daemon.backend.removeprefix("file:")) / "bkt" / "half-headers"
    assert stored.read_bytes() == b"hello"
    assert "shutting down: 1 requests in flight" in daemon.log_text()


def test_sigterm_grace_period_ends_stalled_uploads(make_daemon: Start) -> None:
    daemon = make_daemon(None, "--no-fsync", "--shutdown-grace", "1s")
    urllib.request.urlopen(urllib.request.Request(f"{daemon.endpoint}/bkt", method="PUT"))
    upload = start_upload(daemon.port, "stalled", 8 * 1024 * 1024, 1024 * 1024)
    time.sleep(0.5)
    started = time.monotonic()
    os.kill(daemon.pid, signal.SIGTERM)
    assert daemon.process is not None
    assert daemon.process.wait(timeout=20) == -signal.SIGTERM
    assert time.monotonic() - started < 10
    upload.settimeout(5)
    try:
        assert upload.recv(65536) == b""
    except ConnectionResetError:
        pass  # aborted: as good as closed
    root = Path(daemon.backend.removeprefix("file:"))
    assert not (root / "bkt" / "stalled").exists()
    assert list((root / ".s3proxy" / "tmp").iterdir()) == []
    assert "closing 1 connections still busy after 1 s" in daemon.log_text()


USERS = """
[[users]]
access_key = "{key}"
secret_key = "secret-{key}"
user_id = "id-{key}"
display_name = "{key}"
"""


def client(daemon: Daemon, key: str) -> object:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=daemon.endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=f"secret-{key}",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def test_sighup_reloads_credentials(make_daemon: Start, tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    credentials = tmp_path / "users.toml"
    credentials.write_text(USERS.format(key="alice"))
    daemon = make_daemon(None, "--no-fsync", "--credentials", str(credentials))
    alice, bob = client(daemon, "alice"), client(daemon, "bob")
    alice.list_buckets()  # type: ignore[attr-defined]
    with pytest.raises(ClientError) as denied:
        bob.list_buckets()  # type: ignore[attr-defined]
    assert denied.value.response["Error"]["Code"] == "InvalidAccessKeyId"

    credentials.write_text(USERS.format(key="alice") + USERS.format(key="bob"))
    os.kill(daemon.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reloaded 2 users" not in daemon.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    bob.list_buckets()  # type: ignore[attr-defined]

    credentials.write_text("[[users]]\naccess_key = ")  # broken: the old users stay
    os.kill(daemon.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "keeping the users loaded before" not in daemon.log_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    bob.list_buckets()  # type: ignore[attr-defined]
    assert daemon.process is not None and daemon.process.poll() is None


def test_socket_activation(tmp_path: Path) -> None:
    """systemd-socket-activate binds the socket and starts the daemon with it as
    fd 3, as systemd does with etc/s3proxy.socket; no --listen is given."""
    port = free_port()
    command = twistd_command() + ["-n", "--pidfile=", "--logfile", str(tmp_path / "log")]
    process = subprocess.Popen(
        # --fdname: systemd (227 and later) always names the sockets it passes.
        ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=s3proxy", *command,
         "s3proxy",
         "--backend", "memory:"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for_port(port)  # systemd-socket-activate listens before starting us
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=20) as response:
            assert response.status == 200
            assert b"ListAllMyBucketsResult" in response.read()
        log = (tmp_path / "log").read_text()
        assert "systemd:domain=INET:index=0" in log
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_systemd_units_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` on the units as installed (the documented install
    prefix /opt/s3proxy/.venv replaced by this test's own environment)."""
    etc = Path(__file__).parents[2] / "etc"
    venv = Path(sys.executable).parent.parent
    for name in ("s3proxy.service", "s3proxy.socket"):
        text = (etc / name).read_text().replace("/opt/s3proxy/.venv", str(venv))
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "s3proxy.service"),
         str(tmp_path / "s3proxy.socket")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    problems = [
        line for line in (result.stdout + result.stderr).splitlines()
        if "s3proxy" in line  # other units of this machine are not ours to judge
    ]  # fmt: skip
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
