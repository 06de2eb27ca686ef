"""Session fixtures of the scale-out tests: a real Ceph RGW, haproxy, farms of daemons.

Everything runs on 127.0.0.1, as children of the test run, stopped by PID at the end;
missing Debian packages (Ceph, haproxy) are installed with apt-get first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scaleout.ceph import CephCluster, start_cluster
from tests.scaleout.farm import (
    DaemonFactory,
    Farm,
    FilesystemRootFactory,
    RgwUpstreamFactory,
    s3_backend_available,
    start_farm,
)

# Bring-up times, printed at the end of the run (the suite must stay fast).
TIMINGS: dict[str, float] = {}

FACTORIES = ["filesystem-root", "s3-over-rgw"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "scale-out bring-up times")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{what}: {seconds:.1f} s")


@pytest.fixture(scope="session")
def ceph() -> Iterator[CephCluster]:
    """One Ceph cluster (mon, OSD, radosgw) and an S3 user, for the whole session."""
    began = time.monotonic()
    cluster = start_cluster()
    TIMINGS["Ceph cluster (install check + mon + osd + rgw + user)"] = time.monotonic() - began
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module", params=FACTORIES)
def daemon_factory(request: pytest.FixtureRequest) -> DaemonFactory:
    if request.param == "filesystem-root":
        return FilesystemRootFactory()
    if not s3_backend_available():
        pytest.skip("s3 backend not available")
    cluster: CephCluster = request.getfixturevalue("ceph")
    return RgwUpstreamFactory(cluster)


def _farm(factory: DaemonFactory, workdir: Path) -> Iterator[Farm]:
    began = time.monotonic()
    farm = start_farm(factory, workdir)
    TIMINGS.setdefault(f"farm of 3 daemons + haproxy ({factory.name})", time.monotonic() - began)
    yield farm
    farm.stop()


@pytest.fixture(scope="module")
def farm(daemon_factory: DaemonFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """Three daemons behind haproxy, shared by a module's tests that leave them running."""
    yield from _farm(daemon_factory, tmp_path_factory.mktemp(f"farm-{daemon_factory.name}"))


@pytest.fixture
def fresh_farm(daemon_factory: DaemonFactory, tmp_path: Path) -> Iterator[Farm]:
    """A farm of its own, for a test that kills one of its daemons."""
    yield from _farm(daemon_factory, tmp_path / "farm")
