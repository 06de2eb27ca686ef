"""The daemon over a data root that runs out of space, turns read-only, or holds a
file it may not read: clients get an S3 error document (never InternalError), the
objects stored before are still served, the daemon keeps running and recovers by
itself once the cause is gone."""

from __future__ import annotations

import http.client
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from lxml import etree

from tests.integration.conftest import boto3_client
from tests.integration.daemon import Daemon
from tests.integration.smallfs import MiB, remount, small_fs

BUCKET = "faults"


def body(size: int, fill: bytes = b"x") -> bytes:
    return fill * size


def s3_error(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str, str]:
    """(HTTP status, error code, request id) of a call that must fail."""
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    response = raised.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["ResponseMetadata"].get("RequestId", ""),
    )


def raw_put(daemon: Daemon, path: str, data: bytes) -> tuple[int, etree._Element]:
    """A PUT with curl-like plain HTTP: the status and the parsed error document."""
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    try:
        connection.request("PUT", path, body=data, headers={"Content-Length": str(len(data))})
        response = connection.getresponse()
        document = response.read()
        assert response.getheader("Content-Type") == "application/xml"
        return response.status, etree.fromstring(document)
    finally:
        connection.close()


def assert_healthy(daemon: Daemon) -> None:
    assert daemon.process is not None and daemon.process.poll() is None, "the daemon died"
    log = daemon.log_text()
    assert "Traceback" not in log and "InternalError" not in log, log[-3000:]


def temp_files(root: Path) -> list[str]:
    return sorted(os.listdir(root / ".s3proxy" / "tmp"))


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    with small_fs(tmp_path / "small") as path:
        yield path


@pytest.fixture
def daemon(tmp_path: Path, mount: Path) -> Iterator[Daemon]:
    workdir = tmp_path / "daemon"  # its log is not on the small file system
    workdir.mkdir()
    started = Daemon(backend=f"file:{mount / 'data'}", workdir=workdir, extra_args=["--no-fsync"])
    started.start()
    yield started
    started.stop()


def test_disk_full(daemon: Daemon, mount: Path) -> None:
    s3 = boto3_client(daemon.endpoint)
    root = mount / "data"
    s3.create_bucket(Bucket=BUCKET)
    kept = os.urandom(MiB)
    s3.put_object(Bucket=BUCKET, Key="kept", Body=kept)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="assembled")["UploadId"]
    part = s3.upload_part(
        Bucket=BUCKET, Key="assembled", UploadId=upload, PartNumber=1, Body=body(6 * MiB)
    )
    s3.put_object(Bucket=BUCKET, Key="middle", Body=body(5 * MiB, b"m"))
    # 12 of the 16 MiB used.

    # A plain PUT that does not fit: the error document, with its request id.
    status, error = raw_put(daemon, f"/{BUCKET}/too-big", body(8 * MiB))
    assert status == 507
    assert error.findtext("Code") == "XMinioStorageFull"
    assert error.findtext("RequestId")
    assert error.findtext("Resource") == f"/{BUCKET}/too-big"

    refusals = {
        "PutObject": (s3.put_object, {"Key": "too-big", "Body": body(8 * MiB)}),
        "UploadPart": (
            s3.upload_part,
            {"Key": "assembled", "UploadId": upload, "PartNumber": 2, "Body": body(8 * MiB)},
        ),
        "CopyObject": (s3.copy_object, {"Key": "copy", "CopySource": f"{BUCKET}/middle"}),
        "UploadPartCopy": (
            s3.upload_part_copy,
            {
                "Key": "assembled",
                "UploadId": upload,
                "PartNumber": 2,
                "CopySource": f"{BUCKET}/middle",
            },
        ),
        "CompleteMultipartUpload": (
            s3.complete_multipart_upload,
            {
                "Key": "assembled",
                "UploadId": upload,
                "MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            },
        ),
    }
    for name, (call, kwargs) in refusals.items():
        status, code, request_id = s3_error(call, Bucket=BUCKET, **kwargs)
        assert (status, code) == (507, "XMinioStorageFull"), name
        assert request_id, name
        assert temp_files(root) == [], name

    # Nothing half-written is visible, what was stored is served.
    listed = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert sorted((o["Key"], o["Size"]) for o in listed) == [("kept", MiB), ("middle", 5 * MiB)]
    assert s3.get_object(Bucket=BUCKET, Key="kept")["Body"].read() == kept
    parts = s3.list_parts(Bucket=BUCKET, Key="assembled", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 6 * MiB)]
    assert_healthy(daemon)

    # Space freed: the refused writes succeed, no restart needed.
    s3.delete_object(Bucket=BUCKET, Key="middle")
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="assembled",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    s3.delete_object(Bucket=BUCKET, Key="assembled")
    s3.put_object(Bucket=BUCKET, Key="too-big", Body=body(8 * MiB))
    s3.copy_object(Bucket=BUCKET, Key="copy", CopySource=f"{BUCKET}/kept")
    assert s3.get_object(Bucket=BUCKET, Key="copy")["Body"].read() == kept
    assert s3.head_object(Bucket=BUCKET, Key="too-big")["ContentLength"] == 8 * MiB
    assert temp_files(root) == []
    assert_healthy(daemon)


def test_read_only_root(daemon: Daemon, mount: Path) -> None:
    s3 = boto3_client(daemon.endpoint)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="dir/kept", Body=b"kept", Metadata={"m": "1"})
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="assembled")["UploadId"]
    part = s3.upload_part(Bucket=BUCKET, Key="assembled", UploadId=upload, PartNumber=1, Body=b"p")
    remount(mount, "ro")
    try:
        # Reads work.
        got = s3.get_object(Bucket=BUCKET, Key="dir/kept")
        assert got["Body"].read() == b"kept" and got["Metadata"] == {"m": "1"}
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["dir/kept"]
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [BUCKET]
        assert s3.list_parts(Bucket=BUCKET, Key="assembled", UploadId=upload)["Parts"]
        # Every kind of write gets the same clear answer.
        writes = {
            "PutObject": (s3.put_object, {"Key": "new", "Body": b"new"}),
            "DeleteObject": (s3.delete_object, {"Key": "dir/kept"}),
            "CopyObject": (s3.copy_object, {"Key": "copy", "CopySource": f"{BUCKET}/dir/kept"}),
            "CreateMultipartUpload": (s3.create_multipart_upload, {"Key": "new"}),
            "UploadPart": (
                s3.upload_part,
                {"Key": "assembled", "UploadId": upload, "PartNumber": 2, "Body": b"q"},
            ),
            "CompleteMultipartUpload": (
                s3.complete_multipart_upload,
                {
                    "Key": "assembled",
                    "UploadId": upload,
                    "MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
                },
            ),
            "AbortMultipartUpload": (
                s3.abort_multipart_upload,
                {"Key": "assembled", "UploadId": upload},
            ),
            "PutObjectTagging": (
                s3.put_object_tagging,
                {"Key": "dir/kept", "Tagging": {"TagSet": [{"Key": "a", "Value": "b"}]}},
            ),
            "PutBucketAcl": (s3.put_bucket_acl, {"ACL": "public-read"}),
        }
        for name, (call, kwargs) in writes.items():
            status, code, request_id = s3_error(call, Bucket=BUCKET, **kwargs)
            assert (status, code) == (503, "ServiceUnavailable"), name
            assert request_id, name
        status, code, _ = s3_error(s3.create_bucket, Bucket="another")
        assert (status, code) == (503, "ServiceUnavailable")
        status, code, _ = s3_error(s3.delete_bucket, Bucket=BUCKET)
        assert status in (409, 503), code  # not empty anyway
        assert s3.get_object(Bucket=BUCKET, Key="dir/kept")["Body"].read() == b"kept"
        assert_healthy(daemon)
        # Restarted while read-only, it starts and serves reads all the same.
        daemon.stop()
        daemon.start()
        s3 = boto3_client(daemon.endpoint)
        got = s3.get_object(Bucket=BUCKET, Key="dir/kept")
        assert got["Body"].read() == b"kept" and got["Metadata"] == {"m": "1"}
        status, code, _ = s3_error(s3.put_object, Bucket=BUCKET, Key="new", Body=b"new")
        assert (status, code) == (503, "ServiceUnavailable")
    finally:
        remount(mount, "rw")
    # Writable again: writes succeed, the upload is still there to complete.
    s3.put_object(Bucket=BUCKET, Key="new", Body=b"new")
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="assembled",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object(Bucket=BUCKET, Key="assembled")["Body"].read() == b"p"
    assert s3.get_object(Bucket=BUCKET, Key="new")["Body"].read() == b"new"
    assert_healthy(daemon)


# -- a file the daemon may not read -----------------------------------------------------


def unprivileged_prefix() -> list[str]:
    """setpriv to run as nobody; the test is skipped where that cannot work."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run the daemon as an unprivileged user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    prefix = [setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import s3proxy, twisted"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run this Python: {probe.stderr.decode()[-200:]}")
    return prefix


@pytest.fixture
def unprivileged_daemon() -> Iterator[Daemon]:
    prefix = unprivileged_prefix()
    nobody = pwd.getpwnam("nobody")
    # Outside pytest's own temporary directory, which only root may enter.
    workdir = Path(tempfile.mkdtemp(prefix="s3proxy-unprivileged-"))
    try:
        workdir.chmod(0o755)
        data = workdir / "data"
        data.mkdir()
        os.chown(workdir, nobody.pw_uid, nobody.pw_gid)
        os.chown(data, nobody.pw_uid, nobody.pw_gid)
        daemon = Daemon(
            backend=f"file:{data}",
            workdir=workdir,
            extra_args=["--no-fsync"],
            command_prefix=prefix,
        )
        daemon.start()
        try:
            yield daemon
        finally:
            daemon.stop()
    finally:
        shutil.rmtree(workdir)


def test_unreadable_file(unprivileged_daemon: Daemon) -> None:
    daemon = unprivileged_daemon
    s3 = boto3_client(daemon.endpoint)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="dir/secret", Body=b"secret")
    s3.put_object(Bucket=BUCKET, Key="dir/public", Body=b"public")
    (daemon.workdir / "data" / BUCKET / "dir" / "secret").chmod(0)

    status, code, request_id = s3_error(s3.get_object, Bucket=BUCKET, Key="dir/secret")
    assert (status, code) == (403, "AccessDenied") and request_id
    status, _, _ = s3_error(s3.head_object, Bucket=BUCKET, Key="dir/secret")
    assert status == 403
    status, code, _ = s3_error(
        s3.copy_object, Bucket=BUCKET, Key="copy", CopySource=f"{BUCKET}/dir/secret"
    )
    assert (status, code) == (403, "AccessDenied")
    # The others are served; the listing still shows the file.
    assert s3.get_object(Bucket=BUCKET, Key="dir/public")["Body"].read() == b"public"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert listed == ["dir/public", "dir/secret"]
    # A directory the daemon may not enter: its keys are refused, not an error page.
    (daemon.workdir / "data" / BUCKET / "dir").chmod(0o300)
    status, code, _ = s3_error(s3.get_object, Bucket=BUCKET, Key="dir/public")
    assert (status, code) == (403, "AccessDenied")
    (daemon.workdir / "data" / BUCKET / "dir").chmod(0o755)
    assert s3.get_object(Bucket=BUCKET, Key="dir/public")["Body"].read() == b"public"
    assert_healthy(daemon)
