"""``--workers N``: several processes share the listening socket, on one root, and
the first one restarts a worker that dies."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import boto3_client
from tests.integration.daemon import Daemon, twistd_command


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_two_workers_share_the_socket_and_the_root(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = make_daemon(None, "--workers", "2", "--no-fsync")
    wait_for(lambda: len(children(daemon.pid)) == 2)
    s3 = boto3_client(daemon.endpoint)
    s3.create_bucket(Bucket="shared")
    bodies = {f"key-{i}": os.urandom(100 + i) for i in range(40)}
    for key, body in bodies.items():
        s3.put_object(Bucket="shared", Key=key, Body=body)
    # Fresh clients open new connections, which the kernel spreads over the workers.
    for key, body in bodies.items():
        assert (
            boto3_client(daemon.endpoint).get_object(Bucket="shared", Key=key)["Body"].read()
            == body
        )
    listed = s3.list_objects_v2(Bucket="shared")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(bodies)
    assert (daemon.root if hasattr(daemon, "root") else daemon.workdir / "data").exists()


def test_a_dead_worker_is_restarted(make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(None, "--workers", "2", "--no-fsync")
    wait_for(lambda: len(children(daemon.pid)) == 2)
    before = children(daemon.pid)
    os.kill(before[0], signal.SIGKILL)
    wait_for(lambda: len(children(daemon.pid)) == 2 and before[0] not in children(daemon.pid))
    s3 = boto3_client(daemon.endpoint)
    s3.create_bucket(Bucket="after-restart")
    for i in range(10):
        s3.put_object(Bucket="after-restart", Key=f"k{i}", Body=b"x")
    assert s3.list_objects_v2(Bucket="after-restart")["KeyCount"] == 10


def test_stopping_the_supervisor_stops_every_worker(make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(None, "--workers", "3", "--no-fsync")
    wait_for(lambda: len(children(daemon.pid)) == 3)
    workers = children(daemon.pid)
    daemon.stop()
    for pid in workers:
        wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists() or _is_zombie(pid))


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_workers_need_tcp_endpoints(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *twistd_command(),
            "-n",
            "--pidfile=",
            "s3proxy",
            "--workers",
            "2",
            "--backend",
            f"file:{tmp_path}",
            "--listen",
            f"unix:{tmp_path / 'sock'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "only tcp: endpoints can be shared by workers" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_unix_socket_endpoint(make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    """--listen takes any Twisted endpoint string, a unix socket among them."""
    sock = tmp_path / "s3.sock"
    daemon = make_daemon(None, "--listen", f"unix:{sock}", "--no-fsync")
    wait_for(sock.exists)
    put = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--unix-socket",
            str(sock),
            "-X",
            "PUT",
            "http://localhost/over-unix",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert put.stdout == "200"
    # The same daemon, over its tcp endpoint, sees the bucket.
    assert (
        boto3_client(daemon.endpoint).head_bucket(Bucket="over-unix")["ResponseMetadata"][
            "HTTPStatusCode"
        ]
        == 200
    )


def test_workers_do_not_outlive_a_killed_supervisor(make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(None, "--workers", "2", "--no-fsync")
    wait_for(lambda: len(children(daemon.pid)) == 2)
    workers = children(daemon.pid)
    os.kill(daemon.pid, signal.SIGKILL)
    for pid in workers:
        wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists() or _is_zombie(pid))


def _thread_cpus(pid: int) -> set[str]:
    """Every thread's Cpus_allowed_list of process ``pid``."""
    masks = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    masks.add(line.split()[1])
    return masks


def _serve_a_little(daemon: Daemon) -> None:
    """Requests make the I/O pool start its threads."""
    s3 = boto3_client(daemon.endpoint)
    s3.create_bucket(Bucket="pinned")
    for i in range(20):
        s3.put_object(Bucket="pinned", Key=f"k{i}", Body=b"x" * i)
        assert s3.get_object(Bucket="pinned", Key=f"k{i}")["Body"].read() == b"x" * i


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_each_worker_runs_all_its_threads_on_its_own_cpu(
    make_daemon: Callable[..., Daemon],
) -> None:
    daemon = make_daemon(None, "--workers", "2", "--no-fsync")
    wait_for(lambda: len(children(daemon.pid)) == 2)
    for _ in range(3):
        _serve_a_little(daemon)
        boto3_client(daemon.endpoint).delete_objects(
            Bucket="pinned", Delete={"Objects": [{"Key": f"k{i}"} for i in range(20)]}
        )
        boto3_client(daemon.endpoint).delete_bucket(Bucket="pinned")
    masks = [_thread_cpus(pid) for pid in children(daemon.pid)]
    for mask in masks:
        assert len(mask) == 1 and "-" not in next(iter(mask)) and "," not in next(iter(mask))
    assert masks[0] != masks[1]
    # The supervisor only waits: it is left where the kernel puts it.
    assert _thread_cpus(daemon.pid) == {_allowed_list()}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_a_lone_daemon_is_pinned_and_none_leaves_it_free(
    make_daemon: Callable[..., Daemon],
) -> None:
    pinned = make_daemon(None, "--no-fsync")
    _serve_a_little(pinned)
    (mask,) = _thread_cpus(pinned.pid)
    assert int(mask) in os.sched_getaffinity(0)
    assert len(os.listdir(f"/proc/{pinned.pid}/task")) > 1  # the pool's threads too
    free = make_daemon(None, "--no-fsync", "--cpu-affinity", "none")
    _serve_a_little(free)
    assert _thread_cpus(free.pid) == {_allowed_list()}


def _allowed_list() -> str:
    """This test process's CPUs in Cpus_allowed_list form (the daemons inherit it)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split()[1]
    raise AssertionError("no Cpus_allowed_list")


def test_sigterm_to_every_process_stops_the_workers_without_tracebacks(tmp_path: Path) -> None:
    """systemd's default KillMode signals the supervisor and the workers at once, and
    the supervisor forwards its SIGTERM: each worker gets two, and must stop once."""
    from tests.processes import free_port, stop

    port = free_port()
    output = tmp_path / "output.log"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [
                *twistd_command(),
                "-n",
                "--pidfile=",
                "--logfile=-",
                "s3proxy",
                "--workers",
                "2",
                "--no-fsync",
                "--backend",
                f"file:{tmp_path / 'data'}",
                "--listen",
                f"tcp:{port}:interface=127.0.0.1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: output.read_text().count("S3Site starting") == 2, timeout=30)
        workers = children(process.pid)
        assert len(workers) == 2
        for pid in [process.pid, *workers]:
            os.kill(pid, signal.SIGTERM)
        # twistd ends by the signal that stopped it, once it has shut down cleanly.
        assert process.wait(timeout=30) == -signal.SIGTERM
    finally:
        stop(process)
    text = output.read_text()
    assert text.count("Main loop terminated") == 3  # the supervisor and both workers
    assert "Traceback" not in text and "ReactorNotRunning" not in text
