"""The reference page's curl examples (alluxio-s3-api.md, "REST API"), run as written
against the daemon's /api/v1/s3 prefix, plus the HTTP details curl exercises: chunked
uploads, ``Expect: 100-continue``, form content types, a trailing slash, error documents."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from tests.integration.daemon import Daemon

# The size of the reference page's LICENSE file.
LICENSE_SIZE = 26847


@dataclass
class CurlResponse:
    status: int
    reason: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    informational: list[int]  # 1xx status lines seen before the final response
    raw: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def xml(self) -> etree._Element:
        root: etree._Element = etree.fromstring(self.body)
        return root


def parse_curl_output(raw: bytes) -> CurlResponse:
    """Split ``curl -i`` output into its 1xx interim responses and the final one."""
    rest = raw
    informational: list[int] = []
    while True:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, f"no end of headers in {raw[:500]!r}"
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        version, status_text, *reason = status_line.split(" ", 2)
        assert version.startswith("HTTP/"), status_line
        status = int(status_text)
        if 100 <= status < 200:
            informational.append(status)
            continue
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return CurlResponse(status, reason[0] if reason else "", headers, rest, informational, raw)


def curl(*args: str, cwd: Path | None = None) -> CurlResponse:
    result = subprocess.run(
        ["curl", "-i", "-sS", *args], cwd=cwd, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return parse_curl_output(result.stdout)


def local(tag: str) -> str:
    return f"{{*}}{tag}"


def texts(root: etree._Element, path: str) -> list[str]:
    return [node.text or "" for node in root.iterfind(path)]


def text(root: etree._Element, path: str) -> str | None:
    node = root.find(path)
    return None if node is None else (node.text or "")


def keys_of(listing: etree._Element) -> list[str]:
    return texts(listing, f"{local('Contents')}/{local('Key')}")


def unique_bucket(stem: str = "testbucket") -> str:
    return f"{stem}-{uuid.uuid4().hex[:12]}"


def assert_error(response: CurlResponse, status: int, code: str, resource: str) -> None:
    assert response.status == status, response.raw
    assert response.header("content-type") == "application/xml"
    assert response.header("content-length") == str(len(response.body))
    root = response.xml()
    assert etree.QName(root).localname == "Error"
    assert text(root, "Code") == code
    assert text(root, "Message")
    assert text(root, "Resource") == resource
    assert text(root, "RequestId") == response.header("x-amz-request-id")


@pytest.fixture
def license_file(tmp_path: Path) -> Path:
    path = tmp_path / "LICENSE"
    path.write_bytes(os.urandom(LICENSE_SIZE))
    return path


def test_reference_walkthrough(fs_daemon: Daemon, license_file: Path) -> None:
    """Every bucket and object example of the page, in its order."""
    cwd = license_file.parent
    data = license_file.read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    name = unique_bucket()
    base = f"{fs_daemon.url}/{name}"
    seen: list[CurlResponse] = []

    def run(*args: str) -> CurlResponse:
        response = curl(*args, cwd=cwd)
        seen.append(response)
        return response

    # Create a bucket
    created = run("-X", "PUT", base)
    assert created.status == 200
    assert created.header("content-length") == "0"
    assert created.body == b""
    assert (fs_daemon.root / name).is_dir()  # type: ignore[attr-defined]

    # Get the bucket (listing objects): empty
    empty = run("-X", "GET", base)
    assert empty.status == 200
    assert empty.header("content-type") == "application/xml"
    assert empty.header("content-length") == str(len(empty.body))
    listing = empty.xml()
    assert etree.QName(listing).localname == "ListBucketResult"
    assert text(listing, local("Name")) == name
    assert text(listing, local("MaxKeys")) == "1000"
    assert text(listing, local("IsTruncated")) == "false"
    assert keys_of(listing) == []

    # Put an object
    put = run("-X", "PUT", "-T", "LICENSE", f"{base}/testobject")
    assert put.status == 200
    assert put.header("etag") == f'"{md5}"'
    assert put.header("content-length") == "0"
    assert (fs_daemon.root / name / "testobject").read_bytes() == data  # type: ignore[attr-defined]

    # Get the object
    got = run("-X", "GET", f"{base}/testobject")
    assert got.status == 200
    assert got.body == data
    assert got.header("content-length") == str(len(data))
    assert got.header("etag") == f'"{md5}"'
    assert got.header("last-modified")
    # curl -T sends no Content-Type: S3's default is stored.
    assert got.header("content-type") == "binary/octet-stream"

    # Listing a bucket with one object
    one = run("-X", "GET", base)
    assert one.status == 200
    listing = one.xml()
    assert keys_of(listing) == ["testobject"]
    assert text(listing, local("IsTruncated")) == "false"
    assert texts(listing, f"{local('Contents')}/{local('Size')}") == [str(len(data))]
    assert texts(listing, f"{local('Contents')}/{local('ETag')}") == [f'"{md5}"']
    assert texts(listing, f"{local('Contents')}/{local('StorageClass')}") == ["STANDARD"]
    one_v2 = run("-X", "GET", f"{base}?list-type=2").xml()
    assert text(one_v2, local("KeyCount")) == "1"
    assert keys_of(one_v2) == ["testobject"]

    # Listing a bucket with multiple objects
    for key in ("key1", "key2", "key3"):
        response = run("-X", "PUT", "-T", "LICENSE", f"{base}/{key}")
        assert response.status == 200
        assert response.header("etag") == f'"{md5}"'
    all_keys = sorted(["key1", "key2", "key3", "testobject"])

    # As written (a plain GET is ListObjects v1): the first page and a NextMarker.
    first = run("-X", "GET", f"{base}?max-keys=2")
    assert first.status == 200
    listing = first.xml()
    assert keys_of(listing) == all_keys[:2]
    assert text(listing, local("MaxKeys")) == "2"
    assert text(listing, local("IsTruncated")) == "true"
    assert text(listing, local("NextMarker")) == all_keys[1]
    # continuation-token is a ListObjectsV2 parameter: v1 ignores it, as S3 does, and
    # answers the first page again.
    ignored = run("-X", "GET", f"{base}?max-keys=2&continuation-token=key3").xml()
    assert keys_of(ignored) == all_keys[:2]
    assert text(ignored, local("IsTruncated")) == "true"
    # v1 pages with marker=NextMarker.
    second = run("-X", "GET", f"{base}?max-keys=2&marker={all_keys[1]}").xml()
    assert keys_of(second) == all_keys[2:]
    assert text(second, local("IsTruncated")) == "false"

    # The page's flow with ListObjectsV2: follow NextContinuationToken.
    v2_first = run("-X", "GET", f"{base}?list-type=2&max-keys=2").xml()
    assert keys_of(v2_first) == all_keys[:2]
    assert text(v2_first, local("KeyCount")) == "2"
    assert text(v2_first, local("MaxKeys")) == "2"
    assert text(v2_first, local("IsTruncated")) == "true"
    token = text(v2_first, local("NextContinuationToken"))
    assert token
    v2_second = run(
        "-X",
        "GET",
        "-G",
        base,
        "--data-urlencode",
        "list-type=2",
        "--data-urlencode",
        "max-keys=2",
        "--data-urlencode",
        f"continuation-token={token}",
    ).xml()
    assert keys_of(v2_second) == all_keys[2:]
    assert text(v2_second, local("ContinuationToken")) == token
    assert text(v2_second, local("KeyCount")) == "2"
    assert text(v2_second, local("IsTruncated")) == "false"
    assert v2_second.find(local("NextContinuationToken")) is None

    # Delete objects
    deleted = run("-X", "DELETE", f"{base}/key1")
    assert deleted.status == 204
    assert deleted.body == b""
    for key in ("key2", "key3", "testobject"):
        assert run("-X", "DELETE", f"{base}/{key}").status == 204
    assert keys_of(run("-X", "GET", base).xml()) == []

    # Delete an empty bucket
    gone = run("-X", "DELETE", base)
    assert gone.status == 204
    assert gone.body == b""
    assert not (fs_daemon.root / name).exists()  # type: ignore[attr-defined]
    assert_error(run("-X", "GET", base), 404, "NoSuchBucket", f"/{name}")

    # Every response carried its own request id.
    ids = [response.header("x-amz-request-id") for response in seen]
    assert all(ids), [r.raw[:300] for r in seen if not r.header("x-amz-request-id")]
    assert len(set(ids)) == len(ids)


def test_put_chunked_transfer_encoding(fs_daemon: Daemon, license_file: Path) -> None:
    name = unique_bucket()
    base = f"{fs_daemon.url}/{name}"
    assert curl("-X", "PUT", base).status == 200
    data = license_file.read_bytes()
    result = subprocess.run(
        [
            "curl",
            "-i",
            "-sS",
            "-v",
            "-H",
            "Transfer-Encoding: chunked",
            "-T",
            str(license_file),
            f"{base}/chunked",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # The request really went chunked, without a Content-Length.
    request_headers = [
        line[2:].lower()
        for line in result.stderr.decode("latin-1").splitlines()
        if line.startswith("> ")
    ]
    assert "transfer-encoding: chunked" in request_headers
    assert not any(h.startswith("content-length:") for h in request_headers)
    put = parse_curl_output(result.stdout)
    assert put.status == 200
    assert put.header("etag") == f'"{hashlib.md5(data).hexdigest()}"'
    got = curl(f"{base}/chunked")
    assert got.status == 200
    assert got.body == data
    assert got.header("content-length") == str(len(data))


def test_put_expect_100_continue(fs_daemon: Daemon, tmp_path: Path) -> None:
    name = unique_bucket()
    base = f"{fs_daemon.url}/{name}"
    assert curl("-X", "PUT", base).status == 200
    big = tmp_path / "big.data"
    data = os.urandom(3 * 1024 * 1024)  # curl sends Expect: 100-continue for large uploads
    big.write_bytes(data)
    put = curl("-X", "PUT", "-H", "Expect: 100-continue", "-T", str(big), f"{base}/big")
    assert b"HTTP/1.1 100 Continue" in put.raw
    assert put.informational == [100]
    assert put.status == 200
    assert put.header("etag") == f'"{hashlib.md5(data).hexdigest()}"'
    assert (fs_daemon.root / name / "big").read_bytes() == data  # type: ignore[attr-defined]
    got = curl(f"{base}/big")
    assert got.body == data


def test_put_form_urlencoded_body_stored_verbatim(fs_daemon: Daemon) -> None:
    name = unique_bucket()
    base = f"{fs_daemon.url}/{name}"
    assert curl("-X", "PUT", base).status == 200
    body = b"a=b&c=d"
    put = curl(
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/x-www-form-urlencoded",
        "--data-binary",
        body.decode(),
        f"{base}/form",
    )
    assert put.status == 200
    assert put.header("etag") == f'"{hashlib.md5(body).hexdigest()}"'
    got = curl(f"{base}/form")
    assert got.status == 200
    assert got.body == body
    assert got.header("content-type") == "application/x-www-form-urlencoded"
    assert got.header("content-length") == str(len(body))


def test_trailing_slash_on_bucket_url(fs_daemon: Daemon) -> None:
    name = unique_bucket()
    created = curl("-X", "PUT", f"{fs_daemon.url}/{name}/")
    assert created.status == 200
    assert curl("-I", f"{fs_daemon.url}/{name}").status == 200
    listing = curl(f"{fs_daemon.url}/{name}/")
    assert listing.status == 200
    assert text(listing.xml(), local("Name")) == name
    assert curl("-X", "DELETE", f"{fs_daemon.url}/{name}/").status == 204
    assert curl("-I", f"{fs_daemon.url}/{name}").status == 404


def test_errors_are_xml_documents(fs_daemon: Daemon, license_file: Path) -> None:
    name = unique_bucket()
    base = f"{fs_daemon.url}/{name}"
    missing_bucket = unique_bucket("nosuchbucket")
    assert_error(
        curl(f"{fs_daemon.url}/{missing_bucket}/x"), 404, "NoSuchBucket", f"/{missing_bucket}/x"
    )
    assert curl("-X", "PUT", base).status == 200
    assert_error(curl("-X", "PUT", base), 409, "BucketAlreadyOwnedByYou", f"/{name}")
    assert_error(curl(f"{base}/missing"), 404, "NoSuchKey", f"/{name}/missing")
    assert_error(
        curl("-X", "PUT", f"{fs_daemon.url}/Bad_Name"), 400, "InvalidBucketName", "/Bad_Name"
    )
    assert curl("-X", "PUT", "-T", str(license_file), f"{base}/obj").status == 200
    assert_error(curl("-X", "DELETE", base), 409, "BucketNotEmpty", f"/{name}")
    assert_error(
        curl("-H", "Range: bytes=999999-", f"{base}/obj"), 416, "InvalidRange", f"/{name}/obj"
    )


def test_root_path_serves_the_same_api(fs_daemon: Daemon, license_file: Path) -> None:
    name = unique_bucket()
    data = license_file.read_bytes()
    assert curl("-X", "PUT", f"{fs_daemon.url}/{name}").status == 200
    assert curl("-X", "PUT", "-T", str(license_file), f"{fs_daemon.url}/{name}/o").status == 200
    got = curl(f"{fs_daemon.endpoint}/{name}/o")
    assert got.status == 200
    assert got.body == data
