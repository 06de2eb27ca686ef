"""``twistd s3proxy``: options, the service tree and plugin discovery, no reactor running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, IServiceMaker, MultiService
from twisted.internet.endpoints import TCP4ServerEndpoint, UNIXServerEndpoint
from twisted.internet.task import Clock
from twisted.plugin import IPlugin, getPlugins
from twisted.python import usage
from twisted.python.threadpool import ThreadPool
from twisted.web import server

from s3proxy.config import DEFAULT_LISTEN, DEFAULT_PREFIX
from s3proxy.services import Announcement, ProcessPlacement
from s3proxy.storage.filesystem import FilesystemStorage
from s3proxy.storage.memory import MemoryStorage
from s3proxy.tap import Options, ThreadPoolService, make_storage, makeService
from s3proxy.web.request import S3Request
from s3proxy.workers import DEFAULT_BACKLOG, with_backlog
from tests.unit.tapoptions import parse

pytestmark = pytest.mark.usefixtures("data_dir")


def test_defaults(data_dir: Path) -> None:
    options = parse()
    assert options["listen"] == ["tcp:39999:interface=127.0.0.1"]
    assert options["listen"] == [DEFAULT_LISTEN]
    assert options["backend"] == f"file:{data_dir}"
    assert options["prefix"] == "/api/v1/s3" == DEFAULT_PREFIX
    assert options["region"] == "us-east-1"
    assert int(options["threads"]) >= 1
    assert not options["no-fsync"]


def test_defaults_are_not_shared_between_instances() -> None:
    first = parse("--listen", "tcp:1")
    second = parse()
    assert first["listen"] == ["tcp:1"]
    assert second["listen"] == [DEFAULT_LISTEN]


def test_listen_is_repeatable() -> None:
    options = parse("--listen", "tcp:8001", "-l", "unix:/tmp/s3.sock", "--listen=tcp:8002")
    assert options["listen"] == ["tcp:8001", "unix:/tmp/s3.sock", "tcp:8002"]


@pytest.mark.parametrize(
    ("args", "backend"),
    [
        (["--backend", "memory:"], "memory:"),
        (["-b", "memory:"], "memory:"),
        (["--backend", "file:/srv/s3"], "file:/srv/s3"),
    ],
)
def test_backend(args: list[str], backend: str) -> None:
    assert parse(*args)["backend"] == backend


def test_other_options() -> None:
    options = parse("--prefix", "/s3", "--region", "eu-west-1", "--threads", "2", "--no-fsync")
    assert options["prefix"] == "/s3"
    assert options["region"] == "eu-west-1"
    assert options["threads"] == "2"
    assert options["no-fsync"]


@pytest.mark.parametrize(
    "args",
    [
        ["--backend", "s3://upstream"],
        ["--backend", "memory"],
        ["--backend", "file:"],
        ["--backend", "/var/lib/s3proxy"],
        ["--prefix", "api/v1/s3"],
        ["--threads", "0"],
        ["--threads", "many"],
        ["--no-such-option"],
        ["extra-argument"],
    ],
)
def test_usage_errors(args: list[str]) -> None:
    with pytest.raises(usage.UsageError):
        parse(*args)


def _children(service: IService) -> list[IService]:
    assert isinstance(service, MultiService)
    return list(service)


def test_make_service_tree(capsys: pytest.CaptureFixture[str]) -> None:
    allowed_before = os.sched_getaffinity(0)
    clock = Clock()
    options = parse(
        "--backend",
        "memory:",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--listen",
        "unix:/tmp/s3proxy-test.sock",
        "--threads",
        "3",
    )
    service = makeService(options, clock)
    assert isinstance(service, MultiService)
    assert not service.running
    children = _children(service)
    endpoints = [c for c in children if isinstance(c, StreamServerEndpointService)]
    pools = [c for c in children if isinstance(c, ThreadPoolService)]
    assert len(endpoints) == 2
    assert len(pools) == 1
    assert len(children) >= 3
    assert isinstance(endpoints[0].endpoint, TCP4ServerEndpoint)
    assert isinstance(endpoints[1].endpoint, UNIXServerEndpoint)
    # Nothing is started or listening.
    assert not any(c.running for c in children)
    assert not pools[0].pool.started
    assert pools[0].pool.max == 3
    # One site, built by make_site, serves every endpoint.
    site = endpoints[0].factory
    assert endpoints[1].factory is site
    assert isinstance(site, server.Site)
    assert site.requestFactory is S3Request
    assert site.reactor is clock
    # "serving ..." is said once the listeners are up, not while building the tree.
    assert capsys.readouterr().err == ""
    (announcement,) = [c for c in children if isinstance(c, Announcement)]
    assert announcement.message.startswith("serving memory: on tcp:0:interface=127.0.0.1")
    assert children.index(announcement) > children.index(endpoints[-1])
    # The CPU pinning comes first, so the pool's threads inherit it, and happens only
    # when the tree starts: building it left this (the test's) process unpinned.
    assert isinstance(children[0], ProcessPlacement)
    assert children[0].cpus == () and children[0].worker_index is None
    assert children[0].cpu is None
    assert os.sched_getaffinity(0) == allowed_before


def test_make_service_default_options(data_dir: Path) -> None:
    service = makeService(parse())
    children = _children(service)
    [endpoint] = [c for c in children if isinstance(c, StreamServerEndpointService)]
    assert isinstance(endpoint.endpoint, TCP4ServerEndpoint)
    assert endpoint.endpoint._port == 39999
    assert endpoint.endpoint._interface == "127.0.0.1"
    assert endpoint.endpoint._backlog == DEFAULT_BACKLOG  # not Twisted's 50
    assert [c for c in children if isinstance(c, ThreadPoolService)]
    # The file backend made its data directory, and nothing was started.
    assert data_dir.is_dir()
    assert not service.running


@pytest.mark.parametrize(
    ("backend", "kind"), [("memory:", MemoryStorage), ("file", FilesystemStorage)]
)
def test_make_storage(backend: str, kind: type, tmp_path: Path) -> None:
    spec = f"file:{tmp_path / 'root'}" if backend == "file" else backend
    pool = ThreadPool(minthreads=0, maxthreads=1)
    storage = make_storage(spec, pool, False, Clock())
    assert isinstance(storage, kind)
    assert not pool.started


def test_plugin_is_found() -> None:
    list(getPlugins(IPlugin))  # rebuild a stale dropin.cache
    makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "s3proxy"]
    assert len(makers) == 1
    maker = makers[0]
    assert maker.description
    assert maker.options is Options
    assert maker.makeService is makeService


def test_twistd_help_subprocess(tmp_path: Path) -> None:
    twistd = Path(sys.executable).parent / "twistd"
    assert twistd.exists(), twistd
    result = subprocess.run(
        [str(twistd), "s3proxy", "--help"],
        cwd=tmp_path,  # the installed package, not the checkout in the working directory
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for option in ("--listen", "--backend", "--prefix"):
        assert option in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("description", "listened"),
    [
        ("tcp:8080", "tcp:8080:backlog=1024"),
        ("tcp:8080:interface=127.0.0.1", "tcp:8080:interface=127.0.0.1:backlog=1024"),
        ("tcp6:8080:interface=\\:\\:1", "tcp6:8080:interface=\\:\\:1:backlog=1024"),
        ("tcp:8080:backlog=10", "tcp:8080:backlog=10"),
        ("unix:/run/s3proxy.sock", "unix:/run/s3proxy.sock"),
        ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0"),
    ],
)
def test_listen_backlog(description: str, listened: str) -> None:
    assert with_backlog(description) == listened
