"""``--log-format`` and ``--admin-listen``: parsing, the service tree, twistd's logger
hook, and the JSON log lines, without a reactor running."""

from __future__ import annotations

import io
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.python.reflect import namedAny
from twisted.scripts.twistd import ServerOptions
from twisted.web import server

from s3proxy.observe import jsonlog
from s3proxy.observe.admin import AdminResource
from s3proxy.observe.jsonlog import json_file_observer, twistd_json_observer
from s3proxy.tap import makeService
from s3proxy.web.app import S3Root
from tests.unit.tapoptions import parse

pytestmark = pytest.mark.usefixtures("data_dir")


def listeners(service: MultiService) -> list[StreamServerEndpointService]:
    return [s for s in service if isinstance(s, StreamServerEndpointService)]


def test_defaults() -> None:
    options = parse()
    assert options["log-format"] == "text"
    assert options["admin-listen"] is None


def test_bad_log_format_is_refused() -> None:
    with pytest.raises(usage.UsageError, match="--log-format must be text or json"):
        parse("--log-format", "xml")


def test_admin_listen_with_workers_is_refused() -> None:
    with pytest.raises(usage.UsageError, match="--admin-listen"):
        parse("--workers", "2", "--admin-listen", "tcp:9100")


def test_admin_paths_beside_the_api_by_default() -> None:
    service = makeService(
        parse("--backend", "memory:", "--listen", "tcp:0:interface=127.0.0.1"), Clock()
    )
    assert isinstance(service, MultiService)
    [api] = listeners(service)
    resource = api.factory.resource  # type: ignore[attr-defined]
    assert isinstance(resource, S3Root) and resource._admin is not None


def test_admin_listen_gets_its_own_site_and_the_api_loses_the_paths() -> None:
    options = parse(
        "--backend",
        "memory:",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--admin-listen",
        "tcp:9100",
    )
    service = makeService(options, Clock())
    assert isinstance(service, MultiService)
    [admin] = [s for s in listeners(service) if isinstance(s.factory.resource, AdminResource)]  # type: ignore[attr-defined]
    [api] = [s for s in listeners(service) if s is not admin]
    assert isinstance(admin.endpoint, TCP4ServerEndpoint) and admin.endpoint._port == 9100
    assert isinstance(admin.factory, server.Site)
    assert isinstance(admin.factory.resource, AdminResource)
    assert isinstance(api.factory.resource, S3Root)  # type: ignore[attr-defined]
    assert api.factory.resource._admin is None  # type: ignore[attr-defined]


@pytest.fixture
def sigusr1() -> Iterator[None]:
    """The JSON log file rotates on SIGUSR1 as twistd's does: undo that afterwards."""
    before = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, before)


def test_json_makes_twistd_log_json_lines(tmp_path: Path, sigusr1: None) -> None:
    logfile = tmp_path / "s3proxy.log"
    twistd = ServerOptions()
    twistd.parseOptions(
        ["-n", "--logfile", str(logfile), "s3proxy", "--backend", "memory:", "--log-format", "json"]
    )
    factory = twistd["logger"]
    assert factory is namedAny("s3proxy.observe.jsonlog.twistd_json_observer")
    observer = factory()
    Logger(namespace="test", observer=observer).info("started {what}", what="up")
    assert signal.getsignal(signal.SIGUSR1) not in (None, signal.SIG_DFL)
    observer.log.close()  # type: ignore[attr-defined]  # flushes the batch
    [line] = logfile.read_text().splitlines()
    record = json.loads(line)
    assert (record["namespace"], record["level"], record["message"]) == (
        "test",
        "info",
        "started up",
    )


def test_text_is_twistds_own_lines_written_in_batches(tmp_path: Path) -> None:
    logfile = tmp_path / "s3proxy.log"
    twistd = ServerOptions()
    twistd.parseOptions(["-n", "--logfile", str(logfile), "s3proxy", "--backend", "memory:"])
    factory = twistd["logger"]
    assert factory is namedAny("s3proxy.observe.jsonlog.twistd_text_observer")
    observer = factory()
    Logger(namespace="test", observer=observer).info("started {what}", what="up")
    observer.log.close()  # type: ignore[attr-defined]
    [line] = logfile.read_text().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[test#info\] started up", line)


def test_syslog_keeps_twistds_own_logger() -> None:
    twistd = ServerOptions()
    twistd.parseOptions(["-n", "--syslog", "s3proxy", "--backend", "memory:"])
    assert twistd["logger"] is None


def test_a_logger_given_to_twistd_wins() -> None:
    twistd = ServerOptions()
    twistd.parseOptions(
        [
            "-n",
            "--logger",
            "twisted.logger.textFileLogObserver",
            "s3proxy",
            "--log-format",
            "json",
        ]
    )
    assert twistd["logger"] is namedAny("twisted.logger.textFileLogObserver")


def test_json_on_stdout_without_a_logfile(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr(jsonlog, "_twistd_target", ("", True))
    Logger(namespace="x", observer=twistd_json_observer()).warn("careful")
    assert json.loads(out.getvalue())["level"] == "warn"


def test_json_failures_carry_their_traceback() -> None:
    out = io.StringIO()
    log = Logger(namespace="x", observer=json_file_observer(out))
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.failure("it broke", Failure(), LogLevel.error)
    record = json.loads(out.getvalue())
    assert record["message"] == "it broke"
    assert "ZeroDivisionError" in record["traceback"]


def test_log_format_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "s3proxy.toml"
    config.write_text('backend = "memory:"\nlog-format = "json"\nadmin-listen = "tcp:9100"\n')
    twistd = ServerOptions()
    twistd.parseOptions(["-n", "s3proxy", "--config", str(config)])
    options = twistd.subOptions
    assert (options["log-format"], options["admin-listen"]) == ("json", "tcp:9100")
    assert twistd["logger"] is namedAny("s3proxy.observe.jsonlog.twistd_json_observer")
