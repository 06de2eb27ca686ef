"""The connection-limit options: parsing, the site they configure, the open-file limit."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from twisted.internet.task import Clock
from twisted.python import usage

from s3proxy.web.guard import Limits
from s3proxy.web.limit_options import SPARE_DESCRIPTORS, limits_from
from s3proxy.web.request import make_site
from tests.unit.tapoptions import parse


def test_defaults() -> None:
    limits = limits_from(parse())
    assert limits == Limits(
        header_timeout=60.0, idle_timeout=60.0, send_timeout=60.0, max_connections=1024
    )


def test_values_and_units() -> None:
    options = parse(
        "--header-timeout=5s",
        "--idle-timeout=2m",
        "--send-timeout=0",
        "--max-connections=0",
    )
    assert limits_from(options) == Limits(5.0, 120.0, 0.0, 0)


def test_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "s3proxy.toml"
    config.write_text('header-timeout = "3s"\nidle_timeout = 4\nmax-connections = 10\n')
    limits = limits_from(parse("--config", str(config)))
    assert (limits.header_timeout, limits.idle_timeout, limits.max_connections) == (3, 4, 10)


@pytest.mark.parametrize(
    "arg",
    ["--header-timeout=soon", "--send-timeout=-1", "--max-connections=-5", "--max-connections=x"],
)
def test_bad_values(arg: str) -> None:
    with pytest.raises(usage.UsageError):
        parse(arg)


def test_site_takes_the_limits() -> None:
    limits = Limits(header_timeout=1, idle_timeout=7, send_timeout=3, max_connections=9)
    site = make_site(None, Clock(), limits)  # type: ignore[arg-type]
    assert site.timeOut == 7
    assert site.guard.limits is limits
    assert limits.sweep_interval() == 0.25
    assert Limits(header_timeout=0, send_timeout=0).sweep_interval() is None
    assert Limits(header_timeout=600, send_timeout=600).sweep_interval() == 1.0
    assert make_site(None, Clock(), Limits(idle_timeout=0)).timeOut is None  # type: ignore[arg-type]


def test_open_file_limit_is_raised_for_the_cap() -> None:
    """In a child process: the soft limit is lowered, then raised to what the cap
    needs."""
    code = (
        "import resource\n"
        "from s3proxy.web.limit_options import ensure_descriptors\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))\n"
        "ensure_descriptors(1000)\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    raised = int(result.stdout)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = 1000 + SPARE_DESCRIPTORS
    assert raised == (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard))
