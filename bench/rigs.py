"""What ``bench/upstream.py`` measures, brought up with the scale-out test harness.

The Ceph cluster (mon, OSD, radosgw), haproxy and the s3proxy daemons over RGW are the
ones ``tests/scaleout`` starts (``ceph.py``, ``haproxy.py``, ``farm.py``): one harness,
maintained and tested in one place, rather than a copy here that drifts. The benchmark
needs the repository checkout anyway (``bench/`` is not installed either), and the
harness's only dependency beyond the standard library, boto3, is in the ``test`` extra.

Every process is a child of this one on 127.0.0.1, stopped by PID (``Rig.stop``, the
cluster's ``stop``); the Ceph daemons and haproxy also die with us if we are killed
(``children.start`` gives them a parent-death signal).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loadgen import SigV4Signer
from metrics import forest_cpu_seconds
from servers import HOST, SetupError, Target, credentials_toml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.integration.daemon import Daemon  # noqa: E402
from tests.scaleout.ceph import CephCluster, start_cluster  # noqa: E402
from tests.scaleout.farm import RgwUpstreamFactory, start_farm  # noqa: E402

__all__ = ["CephCluster", "Rig", "direct_target", "start_ceph", "start_gateways"]

ACCESS_KEY = "BENCHUPSTREAMKEY0001"


def start_ceph() -> CephCluster:
    """The harness's cluster (installs the Debian packages if missing)."""
    try:
        return start_cluster()
    except (RuntimeError, OSError) as e:
        raise SetupError(f"Ceph RGW did not start: {e}") from e


def ceph_pids(cluster: CephCluster) -> tuple[int, ...]:
    return tuple(process.pid for process in cluster.processes.values())


def direct_target(cluster: CephCluster, name: str) -> Target:
    """RGW itself, with the cluster's user: the ceiling every gateway row is held to."""
    signer = SigV4Signer(cluster.access_key, cluster.secret_key)
    return Target(name, "s3", HOST, cluster.rgw_port, signer, upstream_pids=ceph_pids(cluster))


@dataclass
class Rig:
    """Gateways started for one row of the table, and how to stop them."""

    target: Target
    daemons: list[Daemon]
    stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self.stops):
            stop()
        self.stops.clear()


def _settle(pids: tuple[int, ...], timeout: float = 30.0) -> None:
    """Until the processes are done starting (their CPU use has stopped growing), so no
    daemon is still importing when a clock starts."""
    deadline = time.monotonic() + timeout
    previous = -1.0
    while time.monotonic() < deadline:
        time.sleep(0.3)
        cpu = forest_cpu_seconds(pids)
        if cpu - previous < 0.02:
            return
        previous = cpu


def start_gateways(
    cluster: CephCluster,
    name: str,
    workdir: Path,
    count: int,
    cache_ttl: float | None = None,
) -> Rig:
    """``count`` s3proxy daemons with ``--backend s3:<RGW>`` (upstream keys from an
    ``--upstream-credentials`` file, as docs/backends.md says), each verifying SigV4
    against a ``--credentials`` file; one is reached directly, several through haproxy
    (round-robin, the config docs/deployment.md recommends). ``cache_ttl``: give each
    a read cache (``--cache DIR --cache-ttl``) in its own directory."""
    secret_key = secrets.token_urlsafe(30)
    workdir.mkdir(parents=True, exist_ok=True)
    credentials = workdir / "credentials.toml"
    credentials.write_text(credentials_toml(ACCESS_KEY, secret_key))

    class SignedFactory(RgwUpstreamFactory):
        def daemons(self, workdir: Path, count: int) -> list[Daemon]:
            daemons = super().daemons(workdir, count)
            cpus = sorted(os.sched_getaffinity(0))
            for index, daemon in enumerate(daemons):
                daemon.extra_args += ["--credentials", str(credentials)]
                if count > 1:
                    # Daemons started one after another could all pin themselves to
                    # the same CPU: give each its own (docs/deployment.md).
                    cpu = cpus[index % len(cpus)]
                    daemon.extra_args += ["--cpu-affinity", str(cpu)]
                if cache_ttl is not None:
                    cache = daemon.workdir / "cache"
                    daemon.extra_args += ["--cache", str(cache), "--cache-ttl", f"{cache_ttl:g}"]
            return daemons

    factory = SignedFactory(cluster)
    signer = SigV4Signer(ACCESS_KEY, secret_key)
    upstream = ceph_pids(cluster)
    try:
        if count == 1:
            daemon = factory.daemons(workdir, 1)[0]
            rig = Rig(Target(name, "s3", HOST, 0, signer, upstream_pids=upstream), [daemon])
            daemon.start()
            rig.stops.append(daemon.stop)
            rig.target.port, rig.target.pid = daemon.port, daemon.pid
        else:
            farm = start_farm(factory, workdir, count)
            proxy = farm.proxy
            assert proxy.process is not None
            target = Target(
                name,
                "s3",
                HOST,
                proxy.port,
                signer,
                pid=proxy.process.pid,
                more_pids=tuple(d.pid for d in farm.daemons),
                upstream_pids=upstream,
            )
            rig = Rig(target, farm.daemons, [farm.stop])
    except (RuntimeError, OSError) as e:
        raise SetupError(f"{name} did not start: {e}") from e
    _settle(rig.target.server_pids)
    return rig
