"""A farm: several s3proxy daemons, started by a daemon factory, behind one haproxy.

A daemon factory decides what the daemons share:

- ``filesystem-root``: three ``--backend file:ROOT`` daemons on the same data root (what a
  shared filesystem such as NFS or CephFS gives several hosts);
- ``s3-over-rgw``: three ``--backend s3:http://127.0.0.1:<rgw port>`` daemons over the
  Ceph RGW of the session, with upstream credentials. It needs the S3 backend
  (``s3proxy.storage.s3``) and skips, saying so, while that module is missing.

The scale-out scenario is written once against :class:`Farm` and runs over every factory.
"""

from __future__ import annotations

import importlib.util
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config

from tests.integration.daemon import Daemon
from tests.scaleout.ceph import CephCluster
from tests.scaleout.haproxy import HAProxy

DAEMONS = 3


class DaemonFactory(Protocol):
    name: str

    def daemons(self, workdir: Path, count: int) -> list[Daemon]:
        """``count`` daemons, not started, each with its own dir under ``workdir``."""
        ...


def daemon_dir(workdir: Path, index: int) -> Path:
    path = workdir / f"daemon{index + 1}"
    path.mkdir(parents=True)
    return path


@dataclass
class FilesystemRootFactory:
    """Daemons sharing one filesystem data root."""

    name: str = "filesystem-root"

    def daemons(self, workdir: Path, count: int) -> list[Daemon]:
        root = workdir / "shared-root"
        return [
            Daemon(
                backend=f"file:{root}", workdir=daemon_dir(workdir, i), extra_args=["--no-fsync"]
            )
            for i in range(count)
        ]


def s3_backend_available() -> bool:
    return importlib.util.find_spec("s3proxy.storage.s3") is not None


def upstream_credentials_toml(access_key: str, secret_key: str) -> str:
    """The ``--upstream-credentials`` file: the keys, in the style of ``--credentials``."""
    return f'access_key = "{access_key}"\nsecret_key = "{secret_key}"\n'


@dataclass
class RgwUpstreamFactory:
    """Daemons storing everything in the Ceph RGW, each farm under its own bucket prefix."""

    cluster: CephCluster
    name: str = "s3-over-rgw"

    def daemons(self, workdir: Path, count: int) -> list[Daemon]:
        workdir.mkdir(parents=True, exist_ok=True)
        credentials = workdir / "upstream-credentials.toml"
        credentials.write_text(
            upstream_credentials_toml(self.cluster.access_key, self.cluster.secret_key)
        )
        credentials.chmod(0o600)
        # Farms of one session share the RGW user: a prefix per farm keeps them apart.
        prefix = f"so{secrets.token_hex(3)}-"
        args = [
            "--upstream-credentials",
            str(credentials),
            "--upstream-region",
            "default",
            "--upstream-bucket-prefix",
            prefix,
        ]
        return [
            Daemon(
                backend=f"s3:{self.cluster.endpoint}",
                workdir=daemon_dir(workdir, i),
                extra_args=list(args),
            )
            for i in range(count)
        ]


def boto3_client(endpoint: str, **config: Any) -> Any:
    """No retries: every failed request is counted by the test, none hidden."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="scaleout-access-key",
        aws_secret_access_key="scaleout-secret-key",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


@dataclass
class Farm:
    factory_name: str
    daemons: list[Daemon]
    proxy: HAProxy
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return self.proxy.endpoint

    def client(self, **config: Any) -> Any:
        """boto3 through haproxy."""
        return boto3_client(self.proxy.endpoint, **config)

    def direct(self, index: int, **config: Any) -> Any:
        """boto3 straight to daemon ``index`` (0-based), bypassing haproxy."""
        return boto3_client(self.daemons[index].endpoint, **config)

    def stop(self) -> None:
        self.proxy.stop()
        for daemon in self.daemons:
            daemon.stop()


def start_farm(factory: DaemonFactory, workdir: Path, count: int = DAEMONS) -> Farm:
    daemons = factory.daemons(workdir, count)
    started: list[Daemon] = []
    try:
        for daemon in daemons:
            started.append(daemon.start())
        proxy = HAProxy(workdir / "haproxy", [f"127.0.0.1:{d.port}" for d in daemons]).start()
    except BaseException:
        for daemon in started:
            daemon.stop()
        raise
    return Farm(factory.name, daemons, proxy)
