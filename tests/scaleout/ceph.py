"""A throw-away single-node Ceph cluster (one mon, one OSD, one radosgw) on loopback.

Ceph 16.2 from Debian 12 (``ceph-mon ceph-osd radosgw``, ~58 MiB, no ceph-mgr: S3 I/O
does not need it). Every daemon runs in the foreground as our child, with all its state
(config, mon store, OSD store, sockets, logs) in one temp dir, bound to 127.0.0.1; the
mon and radosgw on free ports, the OSD on free ports of Ceph's own 6800-7300 range. Ready
in ~5 s. The facts below each cost time to find:

- ``auth none`` everywhere, but radosgw's compiled-in client defaults ignore ``[global]``:
  without ``auth client required = none`` and crc messenger modes in its own client
  section it hangs at ``get_initial_auth_request returned -13``.
- bluestore on a sparse file: the block file must sit *beside* the OSD data dir (inside
  it, mkfs fails with "Too many levels of symbolic links").
- radosgw's first start issues ~10 sequential pool commands: ``paxos propose interval =
  0.05`` takes start-up from ~13 s to ~5 s.
- Without a mgr, health turns MGR_DOWN after 120 s unless ``mon mgr mkfs grace`` is large;
  ``ceph df`` reads zeros (use radosgw-admin or ``rados ls``).
- Deleted data waits 2 h for garbage collection by default: ~30 s here, for churning tests.
- Without ``tcp_nodelay=1`` on the beast frontend small operations cost a flat ~40 ms.
- RGW 16.2.15 answers CompleteMultipartUpload with an empty ``<ETag></ETag>`` (an RGW
  bug); HEAD, GET and LIST show the right ``"<md5>-N"``.
- Region (zonegroup) is ``default``; SigV4 with any region name works; path style.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.scaleout import children
from tests.scaleout.packages import CEPH_PROGRAMS, ensure_programs, program_path

RGW_NAME = "client.rgw.scaleout"

# Settings every client (radosgw, radosgw-admin, ceph) needs under ``auth none``.
_CLIENT_NO_AUTH = """\
auth client required = none
ms mon client mode = crc
ms client mode = crc
"""


def ceph_conf(fsid: str, root: Path, mon_port: int, rgw_port: int) -> str:
    return f"""\
[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{mon_port}]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
run dir = {root}/run
admin socket = {root}/run/$name.$pid.asok
log file = {root}/log/$name.log
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon mgr mkfs grace = 31536000
mon data avail warn = 1
mon data avail crit = 0

[mon]
mon data = {root}/mon/$cluster-$id
paxos propose interval = 0.05

[osd]
osd data = {root}/osd/$cluster-$id
osd objectstore = bluestore
bluestore block path = {root}/osd/$cluster-$id.block
bluestore block create = true
bluestore block size = 10737418240
osd memory target = 939524096

[client]
{_CLIENT_NO_AUTH}
[{RGW_NAME}]
{_CLIENT_NO_AUTH}rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw data = {root}/rgw
rgw gc obj min wait = 30
rgw gc processor period = 30
rgw gc processor max time = 30
# The contract suite's multipart tests use parts of about 1,000 bytes and check the
# minimum the gateway is given (--min-part-size) themselves; RGW's own (5 MiB, like
# AWS's) is lowered below any they use, as moto's is (S3_UPLOAD_PART_MIN_SIZE=1).
rgw multipart min part size = 1
"""


@dataclass
class CephCluster:
    """mon + OSD + radosgw in ``root``, an S3 user with keys; ``stop`` undoes everything."""

    root: Path
    mon_port: int = 0
    rgw_port: int = 0
    access_key: str = field(default_factory=lambda: "SCALEOUT" + secrets.token_hex(6).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    startup_seconds: float = 0.0

    @property
    def conf(self) -> Path:
        return self.root / "ceph.conf"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rgw_port}"

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for the cluster's user, path style."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="default",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, **config),
        )

    def start(self, timeout: float = 120.0) -> CephCluster:
        began = time.monotonic()
        try:
            self._write_conf()
            self._start_mon(timeout)
            self._start_osd(timeout)
            self._start_rgw(timeout)
            self._create_user()
            self._wait_for_s3(timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop every daemon we started, by PID, newest first; then remove the temp dir."""
        for name in reversed(list(self.processes)):
            children.stop(self.processes[name])
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self, name: str) -> str:
        return children.tail(self.root / "log" / f"{name}.log")

    def _write_conf(self) -> None:
        for sub in ("run", "log", "mon", "osd", "rgw"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.mon_port = children.free_port()
        self.rgw_port = children.free_port()
        fsid = str(uuid.uuid4())
        self.conf.write_text(ceph_conf(fsid, self.root, self.mon_port, self.rgw_port))
        self._fsid = fsid

    def _run(self, program: str, *args: str, timeout: float = 60.0) -> str:
        command = [program_path(program), "-c", str(self.conf), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def _daemon(self, name: str, program: str, *args: str) -> None:
        command = [program_path(program), "-f", "-c", str(self.conf), *args]
        self.processes[name] = children.start(command, self.root / "log" / f"{name}.out")

    def _start_mon(self, timeout: float) -> None:
        monmap = self.root / "monmap"
        subprocess.run(
            [program_path("monmaptool"), "--create", "--clobber", "--fsid", self._fsid]
            + ["--addv", "a", f"[v2:127.0.0.1:{self.mon_port}]", str(monmap)],
            check=True,
            capture_output=True,
        )
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(monmap))
        self._daemon("mon.a", "ceph-mon", "-i", "a")
        children.wait_for_port(self.mon_port, self.processes["mon.a"], timeout)

    def _start_osd(self, timeout: float) -> None:
        osd_uuid = str(uuid.uuid4())
        osd_id = self._run("ceph", "--connect-timeout", "30", "osd", "new", osd_uuid).strip()
        (self.root / "osd" / f"ceph-{osd_id}").mkdir()
        self._run("ceph-osd", "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid, timeout=timeout)
        self._daemon(f"osd.{osd_id}", "ceph-osd", "-i", osd_id)
        self._wait_until(
            lambda: (
                '"num_up_osds":1' in self._run("ceph", "osd", "stat", "-f", "json").replace(" ", "")
            ),
            timeout,
            f"osd.{osd_id} up",
        )

    def _start_rgw(self, timeout: float) -> None:
        self._daemon(RGW_NAME, "radosgw", "-n", RGW_NAME)
        children.wait_for_port(self.rgw_port, self.processes[RGW_NAME], timeout)

    def _create_user(self) -> None:
        self._run(
            "radosgw-admin",
            "-n",
            "client.admin",
            "user",
            "create",
            "--uid",
            "scaleout",
            "--display-name",
            "s3proxy scale-out tests",
            "--access-key",
            self.access_key,
            "--secret",
            self.secret_key,
        )

    def _wait_for_s3(self, timeout: float) -> None:
        s3 = self.client()

        def answers() -> bool:
            try:
                s3.list_buckets()
                return True
            except Exception:
                return False

        self._wait_until(answers, timeout, "radosgw answering S3 for the new user")

    def _wait_until(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode} waiting for {what}:\n"
                        + self.log(name)
                        + children.tail(self.root / "log" / f"{name}.out")
                    )
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}")


def start_cluster(timeout: float = 120.0) -> CephCluster:
    """Install Ceph if missing, and bring a cluster up in a fresh temp dir."""
    ensure_programs(CEPH_PROGRAMS)
    root = Path(tempfile.mkdtemp(prefix="s3proxy-ceph-"))
    return CephCluster(root=root).start(timeout)
