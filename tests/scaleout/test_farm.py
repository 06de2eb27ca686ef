"""The pieces of a farm on their own: the S3-over-RGW factory's daemons and credentials,
and haproxy's health check against a daemon that requires signatures."""

from __future__ import annotations

import tomllib
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from tests.integration.daemon import Daemon
from tests.scaleout.ceph import CephCluster
from tests.scaleout.farm import RgwUpstreamFactory, s3_backend_available
from tests.scaleout.haproxy import HAProxy

pytestmark = pytest.mark.scaleout


def test_rgw_factory_gives_three_daemons_one_upstream(ceph: CephCluster, tmp_path: Path) -> None:
    daemons = RgwUpstreamFactory(ceph).daemons(tmp_path, 3)
    assert [d.backend for d in daemons] == [f"s3:http://127.0.0.1:{ceph.rgw_port}"] * 3
    assert len({d.workdir for d in daemons}) == 3
    # One farm, one bucket prefix and one credentials file, shared by its daemons.
    assert all(d.extra_args == daemons[0].extra_args for d in daemons)
    args = daemons[0].extra_args
    assert args[args.index("--upstream-region") + 1] == "default"
    assert args[args.index("--upstream-bucket-prefix") + 1].startswith("so")
    credentials = Path(args[args.index("--upstream-credentials") + 1])
    assert credentials.stat().st_mode & 0o777 == 0o600
    keys = tomllib.loads(credentials.read_text())
    # The keys in the file are the RGW user's: they work against the cluster.
    rgw = boto3.client(
        "s3",
        endpoint_url=ceph.endpoint,
        aws_access_key_id=keys["access_key"],
        aws_secret_access_key=keys["secret_key"],
        region_name="default",
        config=Config(s3={"addressing_style": "path"}),
    )
    assert rgw.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_s3_backend_detection_matches_the_import() -> None:
    try:
        import s3proxy.storage.s3  # noqa: F401
    except ImportError:
        assert not s3_backend_available()
    else:
        assert s3_backend_available()


def test_health_check_passes_a_daemon_that_requires_signatures(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    users.write_text(
        '[[users]]\naccess_key = "AKIASCALEOUT"\nsecret_key = "scale-out-secret"\n'
        'user_id = "scaleout-id"\ndisplay_name = "scaleout"\n'
    )
    workdir = tmp_path / "daemon"
    workdir.mkdir()
    daemon = Daemon(
        backend=f"file:{tmp_path / 'data'}",
        workdir=workdir,
        extra_args=["--credentials", str(users)],
    ).start()
    try:
        # The check's request is anonymous: denied, but answered, so the server is UP.
        assert requests.get(daemon.endpoint + "/", timeout=10).status_code == 403
        proxy = HAProxy(tmp_path / "haproxy", [f"127.0.0.1:{daemon.port}"]).start()
        try:
            assert proxy.statuses() == {"s1": "UP"}
            assert "L7OK" in proxy.server_stats()["s1"]["check_status"]
        finally:
            proxy.stop()
    finally:
        daemon.stop()
