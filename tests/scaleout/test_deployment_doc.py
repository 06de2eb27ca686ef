"""docs/deployment.md shows configurations a reader copies: each one is checked by the
program that will read it (haproxy -c, the daemon's own option parser, systemd-analyze)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from s3proxy.tap import Options
from tests.scaleout.haproxy import haproxy_config
from tests.scaleout.packages import HAPROXY_PROGRAMS, ensure_programs, program_path

pytestmark = pytest.mark.scaleout

ROOT = Path(__file__).resolve().parents[2]


def blocks(language: str) -> list[str]:
    text = (ROOT / "docs" / "deployment.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_haproxy_config_is_valid_and_matches_the_tested_one(tmp_path: Path) -> None:
    (documented,) = blocks("haproxy")
    ensure_programs(HAPROXY_PROGRAMS)
    config = tmp_path / "haproxy.cfg"
    config.write_text(documented)
    check = subprocess.run(
        [program_path("haproxy"), "-c", "-f", str(config)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # The lines that decide balancing, health and failover are the ones the tests run.
    tested = haproxy_config(1, ["127.0.0.1:2"], tmp_path / "admin.sock")
    for line in (
        "mode http",
        "balance roundrobin",
        "option httpchk GET /",
        "http-check expect rstatus ^[234]",
        "option redispatch 1",
        "retry-on conn-failure empty-response",
    ):
        assert f"    {line}\n" in tested
        assert f"    {line}\n" in documented


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_daemon_configs_are_what_the_daemon_reads(tmp_path: Path) -> None:
    shared_root, upstream, keys = blocks("toml")
    (tmp_path / "shared-root.toml").write_text(shared_root)
    options = parse("--config", str(tmp_path / "shared-root.toml"))
    assert options["backend"] == "file:/srv/s3"
    assert options["listen"] == ["tcp:39999:interface=10.0.0.11"]
    assert options["workers"] == 2
    # The upstream keys come from systemd's credentials directory, as the drop-in says.
    (tmp_path / "upstream.toml").write_text(upstream)
    (tmp_path / "keys.toml").write_text(keys)
    config, credentials = str(tmp_path / "upstream.toml"), str(tmp_path / "keys.toml")
    options = parse("--config", config, "--upstream-credentials", credentials)
    assert options["backend"] == "s3:http://rgw.internal:7480"
    assert options["upstream-region"] == "default"
    assert options["upstream-bucket-prefix"] == "prod-"


def test_systemd_drop_ins_verify(tmp_path: Path) -> None:
    """Each drop-in, applied to etc/s3proxy.service (the documented install prefix
    replaced by this test's own environment), passes ``systemd-analyze verify``."""
    venv = str(Path(sys.executable).parent.parent)
    unit = (ROOT / "etc" / "s3proxy.service").read_text()
    drop_ins = blocks("ini")
    assert len(drop_ins) == 2
    for number, drop_in in enumerate(drop_ins):
        directory = tmp_path / str(number)
        directory.mkdir()
        # A unit file may repeat its sections: the drop-in's lines apply in order.
        merged = (unit + "\n" + drop_in).replace("/opt/s3proxy/.venv", venv)
        (directory / "s3proxy.service").write_text(merged)
        result = subprocess.run(
            ["systemd-analyze", "verify", str(directory / "s3proxy.service")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        problems = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if "s3proxy" in line  # other units of this machine are not ours to judge
        ]
        assert result.returncode == 0 and not problems, result.stdout + result.stderr
