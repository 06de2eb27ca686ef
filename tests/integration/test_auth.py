"""Authentication against the real daemon started with ``--credentials``.

botocore's signers are the oracle: what they sign verifies, and the same request with
one byte changed anywhere is refused with the error AWS sends, storing nothing. Then
the clients users run (boto3 in its three upload modes, presigned URLs through curl,
the aws CLI, boto 2 with SigV2 at the reference page's /api/v1/s3 and at the root),
SigV4 streaming uploads built by hand on a raw socket (chunk and trailer signatures
computed here from the AWS specification, not by the server's code), flexible
checksums, a table of malformed Authorization headers, and start-up checks.

Cross-user access and ACLs are in ``test_acl.py``, which shares the helpers below.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import hmac
import http.client
import importlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

import boto
import boto.connection
import boto.provider
import boto.pyami.config
import boto.s3.connection
import boto3
import pytest
import requests
from boto.exception import S3ResponseError
from botocore import UNSIGNED
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher

from s3proxy.auth.credentials import User
from s3proxy.tap import _is_loopback, warn_if_open
from tests.integration.daemon import PREFIX, Daemon, twistd_command

MiB = 1024 * 1024
REGION = "us-east-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
AWS = Path(sys.executable).with_name("aws")


def _user_id(name: str) -> str:
    return hashlib.sha256(f"s3proxy-test-user:{name}".encode()).hexdigest()


ALICE = User(
    access_key="AKIAALICE00000000001",
    secret_key="alice/Secret+Key/0123456789abcdefghijklmn",
    user_id=_user_id("alice"),
    display_name="alice",
)
BOB = User(
    access_key="AKIABOB0000000000002",
    secret_key="bob-secret-key-0123456789",
    user_id=_user_id("bob"),
    display_name="Bob Builder",
)
CAROL = User(
    access_key="AKIACAROL00000000003",
    secret_key="carol+secret/key",
    user_id=_user_id("carol"),
    display_name="carol",
    email="carol@example.org",
)
USERS = (ALICE, BOB, CAROL)


# -- the daemon ----------------------------------------------------------------------


def credentials_toml(users: tuple[User, ...]) -> str:
    """A credentials file as a user writes it (json.dumps quotes like a TOML basic
    string for this ASCII text)."""
    tables = []
    for user in users:
        lines = ["[[users]]"]
        for name in ("access_key", "secret_key", "user_id", "display_name", "email"):
            value = getattr(user, name)
            if value is not None:
                lines.append(f"{name} = {json.dumps(value)}")
        tables.append("\n".join(lines))
    return "\n\n".join(tables) + "\n"


def start_auth_daemon(workdir: Path, users: tuple[User, ...] = USERS) -> Daemon:
    """``twistd -n s3proxy --backend file:... --credentials users.toml`` on loopback:
    what ``make_daemon(None, "--credentials", path)`` starts, for a whole module."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "users.toml"
    path.write_text(credentials_toml(users))
    daemon = Daemon(
        backend=f"file:{workdir / 'data'}",
        workdir=workdir,
        extra_args=["--no-fsync", "--credentials", str(path)],
    )
    return daemon.start()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    started = start_auth_daemon(tmp_path_factory.mktemp("auth-daemon"))
    yield started
    started.stop()


def client(
    daemon: Daemon,
    user: User | None,
    endpoint: str | None = None,
    s3: dict[str, Any] | None = None,
    secret: str | None = None,
    **config: Any,
) -> Any:
    """A boto3 client for ``user`` (None: unsigned, anonymous requests)."""
    options: dict[str, Any] = {"retries": {"max_attempts": 1}, **config}
    if user is None:
        options["signature_version"] = UNSIGNED
    return boto3.client(
        "s3",
        endpoint_url=endpoint or daemon.endpoint,
        aws_access_key_id=user.access_key if user else "unused",
        aws_secret_access_key=(secret or user.secret_key) if user else "unused",
        region_name=REGION,
        config=Config(s3={"addressing_style": "path", **(s3 or {})}, **options),
    )


def unique(stem: str = "auth") -> str:
    return f"{stem}-{uuid.uuid4().hex[:16]}"


def signed_daemon(workdir: Path) -> Daemon:
    """A filesystem daemon in ``workdir`` that requires the signatures of USERS."""
    users = workdir / "users.toml"
    users.write_text(credentials_toml(USERS))
    return Daemon(
        backend=f"file:{workdir / 'data'}",
        workdir=workdir,
        extra_args=["--no-fsync", "--credentials", str(users)],
    ).start()


def scratch_bucket(s3: Any, prefix: str) -> Iterator[str]:
    """A new bucket for one test, emptied and removed after it."""
    name = f"{prefix}-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    empty_and_delete(s3, name)


def empty_and_delete(s3: Any, bucket: str) -> None:
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        s3.delete_bucket(Bucket=bucket)
    except ClientError:
        pass  # a test may have removed it already


@pytest.fixture
def bucket(daemon: Daemon) -> Iterator[str]:
    """A fresh private bucket of alice's, emptied and removed afterwards."""
    s3 = client(daemon, ALICE)
    name = unique()
    s3.create_bucket(Bucket=name)
    yield name
    empty_and_delete(s3, name)


@pytest.fixture(scope="module")
def shared_bucket(daemon: Daemon) -> Iterator[str]:
    """One bucket of alice's for the table-driven tests (every case uses its own key)."""
    s3 = client(daemon, ALICE)
    name = unique("shared")
    s3.create_bucket(Bucket=name)
    yield name
    empty_and_delete(s3, name)


def stored(daemon: Daemon, bucket: str, key: str) -> bool:
    """Whether alice (who owns every test bucket) can HEAD the key."""
    try:
        client(daemon, ALICE).head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e.response
        return False
    return True


def error_code(e: ClientError) -> str:
    code: str = e.response["Error"]["Code"]
    return code


# -- raw HTTP ------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def __str__(self) -> str:
        return f"{self.status} {self.body[:400]!r}"

    def error(self) -> dict[str, str]:
        """The fields of the S3 <Error> document this reply must carry."""
        assert self.headers.get("content-type", "").startswith("application/xml"), str(self)
        root = ET.fromstring(self.body)
        assert root.tag == "Error", str(self)
        fields = {child.tag: child.text or "" for child in root}
        assert fields.get("Code"), str(self)
        assert fields.get("RequestId") == self.headers.get("x-amz-request-id"), str(self)
        return fields

    @property
    def code(self) -> str:
        return self.error()["Code"]


@dataclass(frozen=True)
class RawRequest:
    """A request exactly as it goes on the wire (headers in order, values as sent)."""

    method: str
    target: str  # path and query, as on the request line
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def header(self, name: str) -> str:
        return next(v for n, v in self.headers if n.lower() == name.lower())

    def replace_header(self, name: str, value: str) -> RawRequest:
        assert any(n.lower() == name.lower() for n, _ in self.headers), name
        headers = tuple((n, value if n.lower() == name.lower() else v) for n, v in self.headers)
        return dataclasses.replace(self, headers=headers)

    def add_header(self, name: str, value: str) -> RawRequest:
        return dataclasses.replace(self, headers=(*self.headers, (name, value)))


def send(daemon: Daemon, request: RawRequest, timeout: float = 15.0) -> Reply:
    """One request on a new connection, path and headers sent byte for byte. A Host
    header is added only if the request has none; Content-Length always matches."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=timeout)
    try:
        conn.putrequest(request.method, request.target, skip_host=True, skip_accept_encoding=True)
        names = {n.lower() for n, _ in request.headers}
        if "host" not in names:
            conn.putheader("Host", f"127.0.0.1:{daemon.port}")
        for name, value in request.headers:
            if name.lower() != "content-length":
                conn.putheader(name, value.encode("latin-1", "strict"))
        if request.body or request.method in ("PUT", "POST"):
            conn.putheader("Content-Length", str(len(request.body)))
        conn.endheaders(request.body or None)
        response = conn.getresponse()
        data = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, headers, data)
    finally:
        conn.close()


def sign(
    daemon: Daemon,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    user: User = ALICE,
    secret: str | None = None,
    signer: Callable[[Credentials], Any] | None = None,
) -> RawRequest:
    """The request as botocore signs it (S3SigV4Auth unless ``signer`` says otherwise)."""
    credentials = Credentials(user.access_key, secret or user.secret_key)
    request = AWSRequest(
        method=method, url=daemon.endpoint + target, data=body, headers=dict(headers or {})
    )
    auth = signer(credentials) if signer else S3SigV4Auth(credentials, "s3", REGION)
    auth.add_auth(request)
    prepared = request.prepare()
    # The Host botocore signed (from the URL), sent as the HTTP client would add it.
    sent = (("Host", urlsplit(prepared.url).netloc),) + tuple(
        (name, text(value)) for name, value in prepared.headers.items()
    )
    return RawRequest(method, urlsplit(prepared.url).path + _query(prepared.url), sent, body)


def text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _query(url: str) -> str:
    query = urlsplit(url).query
    return f"?{query}" if query else ""


def flip(text: str, index: int = -1) -> str:
    """``text`` with the character at ``index`` changed (to another of its class)."""
    char = text[index]
    if char.isdigit():
        new = str((int(char) + 1) % 10)
    elif char in "abcdef":
        new = "0"
    else:
        new = "x" if char != "x" else "y"
    position = index % len(text)
    return text[:position] + new + text[position + 1 :]


# -- botocore's signer as the oracle ---------------------------------------------------


def test_signed_requests_verify_at_root_and_under_prefix(daemon: Daemon, bucket: str) -> None:
    data = os.urandom(3000)
    for base in ("", PREFIX):
        key = f"signed{'-prefixed' if base else ''}/a b+c~d.bin"
        target = f"{base}/{bucket}/" + key.replace(" ", "%20").replace("+", "%2B")
        put = send(
            daemon,
            sign(daemon, "PUT", target + "?note=one", data, {"x-amz-meta-color": "blue"}),
        )
        assert put.status == 200, str(put)
        assert put.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
        got = send(daemon, sign(daemon, "GET", target))
        assert got.status == 200, str(got)
        assert got.body == data
        assert got.headers["x-amz-meta-color"] == "blue"
        # SigV2 as botocore signs it verifies too.
        v2 = send(daemon, sign(daemon, "GET", target, signer=HmacV1Auth))
        assert v2.status == 200, str(v2)
        assert v2.body == data
        head = client(daemon, ALICE).head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == len(data)
    # Signed for the root path, sent under the prefix: the same resource, accepted.
    request = sign(daemon, "PUT", f"/{bucket}/moved", b"m")
    reply = send(daemon, dataclasses.replace(request, target=PREFIX + request.target))
    assert reply.status == 200, str(reply)
    assert client(daemon, ALICE).get_object(Bucket=bucket, Key="moved")["Body"].read() == b"m"


# A change to a signed request; TAMPERS maps it to the status and code S3 answers.
Tamper = Callable[[RawRequest], RawRequest]


def _tamper_target(path: Callable[[str], str]) -> Tamper:
    def change(request: RawRequest) -> RawRequest:
        target_path, _, query = request.target.partition("?")
        target = path(target_path) + (f"?{query}" if query else "")
        return dataclasses.replace(request, target=target)

    return change


def _tamper_query(request: RawRequest) -> RawRequest:
    path, _, query = request.target.partition("?")
    return dataclasses.replace(request, target=f"{path}?{flip(query)}")


def _tamper_authorization(component: str, change: Callable[[str], str]) -> Tamper:
    def tamper(request: RawRequest) -> RawRequest:
        parts = []
        for part in request.header("Authorization").split(", "):
            name, _, value = part.partition("=")
            parts.append(f"{name}={change(value)}" if name.endswith(component) else part)
        return request.replace_header("Authorization", ", ".join(parts))

    return tamper


def _tamper_header(name: str, index: int = -1) -> Tamper:
    return lambda r: r.replace_header(name, flip(r.header(name), index))


def _tamper_body(request: RawRequest) -> RawRequest:
    body = bytearray(request.body)
    body[len(body) // 2] ^= 0x01
    return dataclasses.replace(request, body=bytes(body))


def _scope_region(credential: str) -> str:
    return credential.replace("/us-east-1/", "/us-east-2/")


TAMPERS: dict[str, tuple[Tamper, int, str]] = {
    "method": (lambda r: dataclasses.replace(r, method="POST"), 403, "SignatureDoesNotMatch"),
    "path": (_tamper_target(flip), 403, "SignatureDoesNotMatch"),
    "query": (_tamper_query, 403, "SignatureDoesNotMatch"),
    "query-added": (
        lambda r: dataclasses.replace(r, target=r.target + "&extra=1"),
        403,
        "SignatureDoesNotMatch",
    ),
    "metadata-header": (_tamper_header("x-amz-meta-color"), 403, "SignatureDoesNotMatch"),
    "content-type": (_tamper_header("Content-Type"), 403, "SignatureDoesNotMatch"),
    "host": (_tamper_header("Host", 8), 403, "SignatureDoesNotMatch"),
    "date": (_tamper_header("X-Amz-Date", -2), 403, "SignatureDoesNotMatch"),
    "content-sha256": (_tamper_header("X-Amz-Content-SHA256", 0), 403, "SignatureDoesNotMatch"),
    "body": (_tamper_body, 400, "XAmzContentSHA256Mismatch"),
    "signature": (_tamper_authorization("Signature", flip), 403, "SignatureDoesNotMatch"),
    "access-key": (
        _tamper_authorization("Credential", lambda c: flip(c, c.index("/") - 1)),
        403,
        "InvalidAccessKeyId",
    ),
    "scope-region": (
        _tamper_authorization("Credential", _scope_region),
        403,
        "SignatureDoesNotMatch",
    ),
    "signed-headers": (
        _tamper_authorization("SignedHeaders", lambda s: s.replace("content-type;", "")),
        403,
        "SignatureDoesNotMatch",
    ),
    "unsigned-amz-header": (
        lambda r: r.add_header("x-amz-meta-extra", "sneaked in"),
        403,
        "AccessDenied",
    ),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_one_changed_byte_is_refused_and_stores_nothing(
    daemon: Daemon, shared_bucket: str, name: str
) -> None:
    transform, status, code = TAMPERS[name]
    key = f"tamper-{name}"
    body = b"the quick brown fox jumps over the lazy dog " * 20
    original = sign(
        daemon,
        "PUT",
        f"/{shared_bucket}/{key}?note=one",
        body,
        {"x-amz-meta-color": "blue", "Content-Type": "text/plain"},
    )
    tampered = transform(original)
    assert tampered != original
    reply = send(daemon, tampered)
    assert reply.status == status, f"{name}: {reply}"
    fields = reply.error()
    assert fields["Code"] == code, f"{name}: {reply}"
    if code == "SignatureDoesNotMatch":
        assert fields["AWSAccessKeyId"] == ALICE.access_key
        assert fields["SignatureProvided"] in tampered.header("Authorization")
        assert ALICE.secret_key not in reply.body.decode()
    assert not stored(daemon, shared_bucket, key)
    tampered_path = tampered.target.partition("?")[0]
    if tampered_path.startswith(f"/{shared_bucket}/"):
        assert not stored(daemon, shared_bucket, tampered_path.split("/", 2)[2])
    # The untouched request still verifies (so the refusal was the byte, not the clock).
    assert send(daemon, original).status == 200
    assert client(daemon, ALICE).get_object(Bucket=shared_bucket, Key=key)["Body"].read() == body


def test_signed_with_a_secret_one_byte_off_is_refused(daemon: Daemon, shared_bucket: str) -> None:
    key = "wrong-secret"
    request = sign(daemon, "PUT", f"/{shared_bucket}/{key}", b"x", secret=flip(ALICE.secret_key))
    reply = send(daemon, request)
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch"), str(reply)
    assert not stored(daemon, shared_bucket, key)
    v2 = sign(
        daemon,
        "PUT",
        f"/{shared_bucket}/{key}",
        b"x",
        secret=flip(ALICE.secret_key),
        signer=HmacV1Auth,
    )
    reply = send(daemon, v2)
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch"), str(reply)
    assert not stored(daemon, shared_bucket, key)


@pytest.mark.parametrize(
    "tamper", ["path", "date", "content-type", "signature", "access-key"], ids=str
)
def test_sigv2_one_changed_byte_is_refused(daemon: Daemon, shared_bucket: str, tamper: str) -> None:
    key = f"v2-tamper-{tamper}"
    request = sign(
        daemon,
        "PUT",
        f"/{shared_bucket}/{key}",
        b"payload",
        {"Content-Type": "text/plain"},
        signer=HmacV1Auth,
    )
    auth = request.header("Authorization")  # "AWS <key>:<signature>"
    if tamper == "path":
        changed = _tamper_target(flip)(request)
    elif tamper == "date":
        changed = request.replace_header("Date", flip(request.header("Date"), -5))
    elif tamper == "content-type":
        changed = _tamper_header("Content-Type")(request)
    elif tamper == "signature":
        changed = request.replace_header("Authorization", flip(auth, -3))
    else:
        changed = request.replace_header("Authorization", flip(auth, auth.index(":") - 1))
    reply = send(daemon, changed)
    expected = "InvalidAccessKeyId" if tamper == "access-key" else "SignatureDoesNotMatch"
    assert (reply.status, reply.code) == (403, expected), str(reply)
    assert not stored(daemon, shared_bucket, key)
    assert send(daemon, request).status == 200


def test_presigned_query_one_changed_byte_is_refused(daemon: Daemon, shared_bucket: str) -> None:
    key = "presigned-tamper"
    client(daemon, ALICE).put_object(Bucket=shared_bucket, Key=key, Body=b"secret data")
    request = AWSRequest(method="GET", url=f"{daemon.endpoint}/{shared_bucket}/{key}")
    S3SigV4QueryAuth(
        Credentials(ALICE.access_key, ALICE.secret_key), "s3", REGION, expires=300
    ).add_auth(request)
    url = request.prepare().url
    assert requests.get(url, timeout=10).content == b"secret data"
    parts = urlsplit(url)
    params = parts.query.split("&")
    for index, param in enumerate(params):
        name, _, value = param.partition("=")
        if name in ("X-Amz-Algorithm", "X-Amz-SignedHeaders"):
            continue  # their changed forms are malformed, tested elsewhere
        changed = [*params]
        changed[index] = f"{name}={flip(value)}"
        reply = requests.get(urlunsplit(parts._replace(query="&".join(changed))), timeout=10)
        assert reply.status_code in (400, 403), f"{name}: {reply.status_code} {reply.text}"
        assert b"secret data" not in reply.content, name
        assert ET.fromstring(reply.content).tag == "Error"
    other_key = requests.get(urlunsplit(parts._replace(path=flip(parts.path))), timeout=10)
    assert other_key.status_code == 403
    assert ET.fromstring(other_key.content).findtext("Code") == "SignatureDoesNotMatch"


# -- the clients users run -----------------------------------------------------------


BOTO3_MODES: dict[str, dict[str, Any]] = {
    "default": {},
    "when-required": {"request_checksum_calculation": "when_required"},
    "payload-signing": {"s3": {"payload_signing_enabled": True}},
}


@pytest.mark.parametrize("mode", sorted(BOTO3_MODES))
def test_boto3_modes_with_real_keys(daemon: Daemon, bucket: str, mode: str) -> None:
    s3 = client(daemon, ALICE, **BOTO3_MODES[mode])
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append({k.lower(): text(v) for k, v in request.headers.items()})

    s3.meta.events.register("before-send.s3.PutObject", record)
    small = os.urandom(10_000)
    s3.put_object(Bucket=bucket, Key="small.bin", Body=small)
    headers = sent[-1]
    assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ALICE.access_key}/")
    if mode == "when-required":
        assert not any(h.startswith("x-amz-checksum-") for h in headers), headers
    else:
        assert any(h.startswith("x-amz-checksum-") for h in headers), headers
    if mode == "payload-signing":
        assert headers["x-amz-content-sha256"] == hashlib.sha256(small).hexdigest()
    assert s3.get_object(Bucket=bucket, Key="small.bin")["Body"].read() == small
    large = os.urandom(9 * MiB)  # over boto3's 8 MiB threshold: a signed multipart upload
    s3.upload_fileobj(io.BytesIO(large), bucket, "large.bin")
    head = s3.head_object(Bucket=bucket, Key="large.bin")
    assert head["ContentLength"] == len(large)
    assert head["ETag"].endswith('-2"')
    out = io.BytesIO()
    s3.download_fileobj(bucket, "large.bin", out)
    assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(large).digest()
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["large.bin", "small.bin"]
    s3.delete_object(Bucket=bucket, Key="small.bin")
    assert not stored(daemon, bucket, "small.bin")


def test_boto3_wrong_secret_and_unknown_key(daemon: Daemon, bucket: str) -> None:
    for user, secret, code in [
        (ALICE, ALICE.secret_key + "x", "SignatureDoesNotMatch"),
        (dataclasses.replace(ALICE, access_key="AKIANOBODY0000000000"), None, "InvalidAccessKeyId"),
    ]:
        s3 = client(daemon, user, secret=secret)
        with pytest.raises(ClientError) as info:
            s3.put_object(Bucket=bucket, Key="denied", Body=b"nope")
        assert error_code(info.value) == code
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        with pytest.raises(ClientError) as info:
            s3.list_objects_v2(Bucket=bucket)
        assert error_code(info.value) == code
    assert not stored(daemon, bucket, "denied")


def curl(*args: str) -> tuple[int, bytes]:
    """(HTTP status, body) of one curl run."""
    result = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True,
        timeout=30,
        check=True,
    )
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status), body


@pytest.mark.parametrize("version", ["s3", "s3v4"], ids=["sigv2", "sigv4"])
def test_presigned_get_and_put_with_curl(
    daemon: Daemon, bucket: str, tmp_path: Path, version: str
) -> None:
    for endpoint in (daemon.endpoint, daemon.url):
        s3 = client(daemon, ALICE, endpoint=endpoint, signature_version=version)
        data = os.urandom(200_000)
        upload = tmp_path / "upload.bin"
        upload.write_bytes(data)
        key = f"presigned/{'prefixed' if endpoint == daemon.url else 'root'} file.bin"
        put_url = s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
        )
        assert urlsplit(put_url).path.startswith(urlsplit(endpoint).path + f"/{bucket}/")
        assert ("X-Amz-Signature=" in put_url) == (version == "s3v4"), put_url
        status, body = curl("-T", str(upload), put_url)
        assert status == 200, body
        get_url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
        )
        status, body = curl(get_url)
        assert status == 200
        assert body == data
        # The URL signs one key: used for another it is refused and writes nothing.
        other = put_url.replace("file.bin", "file.bix")
        status, body = curl("-T", str(upload), other)
        assert status == 403
        assert ET.fromstring(body).findtext("Code") == "SignatureDoesNotMatch"
        assert not stored(daemon, bucket, key.replace("file.bin", "file.bix"))
        # Without the signature it is an anonymous request for private data.
        status, body = curl(get_url.partition("?")[0])
        assert status == 403
        assert ET.fromstring(body).findtext("Code") == "AccessDenied"


def _signing_clock(offset: float) -> Callable[..., datetime.datetime]:
    def now(remove_tzinfo: bool = True) -> datetime.datetime:
        moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
        return moment.replace(tzinfo=None) if remove_tzinfo else moment

    return now


def expired_url(daemon: Daemon, bucket: str, key: str, version: str) -> str:
    """A URL presigned by botocore ten minutes ago, valid for one minute."""
    if version == "s3":
        # SigV2's Expires is "now + expires" (time.time()): a negative one is in the past.
        request = AWSRequest(method="GET", url=f"{daemon.endpoint}/{bucket}/{key}")
        HmacV1QueryAuth(Credentials(ALICE.access_key, ALICE.secret_key), expires=-540).add_auth(
            request
        )
        return str(request.prepare().url)
    with ExitStack() as stack:
        for module in ("botocore.auth", "botocore.crt.auth"):
            try:
                importlib.import_module(module)
            except ImportError:
                continue
            stack.enter_context(mock.patch(f"{module}.get_current_datetime", _signing_clock(-600)))
        url: str = client(daemon, ALICE, signature_version=version).generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60
        )
    return url


@pytest.mark.parametrize("version", ["s3", "s3v4"], ids=["sigv2", "sigv4"])
def test_expired_presigned_url(daemon: Daemon, bucket: str, version: str) -> None:
    client(daemon, ALICE).put_object(Bucket=bucket, Key="old", Body=b"stale")
    url = expired_url(daemon, bucket, "old", version)
    assert ("X-Amz-Signature=" in url) == (version == "s3v4"), url
    status, body = curl(url)
    assert status == 403
    root = ET.fromstring(body)
    assert root.findtext("Code") == "AccessDenied"
    assert root.findtext("Message") == "Request has expired"
    assert b"stale" not in body


@pytest.fixture(scope="module")
def aws_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME with empty aws config and credentials files (no user settings)."""
    home = tmp_path_factory.mktemp("aws-home")
    (home / "config").write_text("")
    (home / "credentials").write_text("")
    return home


def aws(daemon: Daemon, user: User, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert AWS.exists(), f"the aws CLI is not installed next to {sys.executable}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=user.access_key,
        AWS_SECRET_ACCESS_KEY=user.secret_key,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(home / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_PAGER="",
        HOME=str(home),
    )
    return subprocess.run(
        [str(AWS), "--endpoint-url", daemon.endpoint, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_aws_cli_cp_ls_rm_with_real_keys(
    daemon: Daemon, bucket: str, tmp_path: Path, aws_home: Path
) -> None:
    data = os.urandom(300_000)
    source = tmp_path / "report.bin"
    source.write_bytes(data)
    uri = f"s3://{bucket}/cli/report.bin"
    done = aws(daemon, ALICE, aws_home, "s3", "cp", str(source), uri)
    assert done.returncode == 0, done.stderr
    listed = aws(daemon, ALICE, aws_home, "s3", "ls", f"s3://{bucket}/cli/")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[-2:] == [str(len(data)), "report.bin"]
    back = tmp_path / "back.bin"
    done = aws(daemon, ALICE, aws_home, "s3", "cp", uri, str(back))
    assert done.returncode == 0, done.stderr
    assert back.read_bytes() == data
    # Bob's keys work, but not on alice's bucket; his bucket list does not show it.
    denied = aws(daemon, BOB, aws_home, "s3", "ls", f"s3://{bucket}/")
    assert denied.returncode != 0
    assert "AccessDenied" in denied.stderr
    mine = aws(daemon, BOB, aws_home, "s3", "ls")
    assert mine.returncode == 0, mine.stderr
    assert bucket not in mine.stdout
    denied = aws(daemon, BOB, aws_home, "s3", "rm", uri)
    assert denied.returncode != 0
    assert "AccessDenied" in denied.stderr
    assert stored(daemon, bucket, "cli/report.bin")
    done = aws(daemon, ALICE, aws_home, "s3", "rm", uri)
    assert done.returncode == 0, done.stderr
    assert not stored(daemon, bucket, "cli/report.bin")


@pytest.fixture
def boto2_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user boto config in the way (boto read it at import)."""
    config = tmp_path / "boto.cfg"
    config.write_text("")
    monkeypatch.setenv("BOTO_CONFIG", str(config))
    monkeypatch.setenv("BOTO_PATH", str(config))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    empty = boto.pyami.config.Config(path=str(config))
    for module in (boto, boto.connection, boto.provider):
        monkeypatch.setattr(module, "config", empty)


def boto2(daemon: Daemon, user: User, path: str, secret: str | None = None) -> Any:
    """The reference page's "Create a connection", with real keys."""
    return boto.connect_s3(
        aws_access_key_id=user.access_key,
        aws_secret_access_key=secret or user.secret_key,
        host="127.0.0.1",
        port=daemon.port,
        path=path,
        is_secure=False,
        calling_format=boto.s3.connection.OrdinaryCallingFormat(),
    )


@pytest.mark.parametrize("path", [PREFIX, "/"], ids=["prefix", "root"])
@pytest.mark.usefixtures("boto2_env")
def test_boto2_sigv2_with_real_keys(daemon: Daemon, path: str) -> None:
    conn = boto2(daemon, ALICE, path)
    name = unique("boto2")
    bucket = conn.create_bucket(name)
    try:
        content = "Hello World!"
        key = bucket.new_key("small.txt")
        key.set_contents_from_string(content)
        assert key.get_contents_as_string().decode() == content
        assert [k.name for k in bucket.list()] == ["small.txt"]
        assert name in [b.name for b in conn.get_all_buckets()]
        url = key.generate_url(300)
        assert (PREFIX in url) == (path == PREFIX)
        assert "Signature=" in url and f"AWSAccessKeyId={ALICE.access_key}" in url
        fetched = requests.get(url, timeout=10)
        assert fetched.status_code == 200
        assert fetched.text == content
        forged = requests.get(url.replace("small.txt", "small.txu"), timeout=10)
        assert forged.status_code == 403
        assert ET.fromstring(forged.content).findtext("Code") == "SignatureDoesNotMatch"
        # A wrong secret, and another user, are refused.
        wrong = boto2(daemon, ALICE, path, secret=flip(ALICE.secret_key))
        with pytest.raises(S3ResponseError) as info:
            wrong.get_bucket(name, validate=False).get_key("small.txt")
        assert info.value.status == 403
        with pytest.raises(S3ResponseError) as info:
            wrong.get_bucket(name, validate=False).new_key("x").set_contents_from_string("x")
        assert (info.value.status, info.value.error_code) == (403, "SignatureDoesNotMatch")
        other = boto2(daemon, BOB, path).get_bucket(name, validate=False)
        with pytest.raises(S3ResponseError) as info:
            other.new_key("small.txt").get_contents_as_string()
        assert (info.value.status, info.value.error_code) == (403, "AccessDenied")
        assert name not in [b.name for b in boto2(daemon, BOB, path).get_all_buckets()]
        bucket.delete_key("small.txt")
        assert list(bucket.list()) == []
    finally:
        for leftover in bucket.list():
            bucket.delete_key(leftover.name)
        conn.delete_bucket(name)


# -- SigV4 streaming uploads, by hand on a raw socket -----------------------------------


def signing_key(secret: str, date: str, region: str = REGION) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class StreamingSigner(S3SigV4Auth):
    """botocore's S3 SigV4 with x-amz-content-sha256 set to a streaming value."""

    def __init__(self, credentials: Credentials, payload: str) -> None:
        super().__init__(credentials, "s3", REGION)
        self._payload = payload

    def payload(self, request: Any) -> str:
        return self._payload


@dataclass
class StreamingUpload:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] request and its body."""

    head: bytes
    body: bytes


def streaming_upload(
    daemon: Daemon,
    target: str,
    data: bytes,
    chunk_size: int = 64 * 1024,
    user: User = ALICE,
    trailer: tuple[str, str] | None = None,
    corrupt_chunk: int | None = None,
    corrupt_trailer_signature: bool = False,
    content_length: int | None = None,
) -> StreamingUpload:
    """Seed signature by botocore; chunk (and trailer) signatures as the AWS
    specification defines them, with the signing key derived here."""
    payload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    sizes = [min(chunk_size, len(data) - i) for i in range(0, len(data), chunk_size)]
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]

    def frame_length(size: int) -> int:
        return len(f"{size:x};chunk-signature=".encode()) + 64 + 2 + size + 2

    length = sum(frame_length(s) for s in sizes) + len("0;chunk-signature=") + 64 + 2
    trailer_lines = b""
    if trailer:
        name, value = trailer
        trailer_lines = f"{name}:{value}\r\n".encode()
        length += len(trailer_lines) + len("x-amz-trailer-signature:") + 64 + 2
    length += 2
    headers = {
        "Content-Encoding": "aws-chunked",
        "Content-Length": str(length if content_length is None else content_length),
        "x-amz-decoded-content-length": str(len(data)),
        "Content-Type": "application/octet-stream",
    }
    if trailer:
        headers["x-amz-trailer"] = trailer[0]
    request = AWSRequest(method="PUT", url=daemon.endpoint + target, headers=headers)
    StreamingSigner(Credentials(user.access_key, user.secret_key), payload).add_auth(request)
    amz_date = request.headers["X-Amz-Date"]
    assert request.headers["X-Amz-Content-SHA256"] == payload
    authorization = request.headers["Authorization"]
    seed = authorization.rpartition("Signature=")[2]
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    assert f"Credential={user.access_key}/{scope}," in authorization
    key = signing_key(user.secret_key, amz_date[:8])

    def chunk_signature(previous: str, chunk: bytes) -> str:
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                previous,
                EMPTY_SHA256,
                hashlib.sha256(chunk).hexdigest(),
            ]
        )
        return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()

    body = bytearray()
    previous = seed
    for index, chunk in enumerate([*chunks, b""]):
        signature = chunk_signature(previous, chunk)
        previous = signature
        if index == corrupt_chunk:
            signature = flip(signature)
        body += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + chunk
        if chunk:
            body += b"\r\n"
    if trailer:
        body += trailer_lines
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                amz_date,
                scope,
                previous,
                hashlib.sha256(trailer_lines.replace(b"\r\n", b"\n")).hexdigest(),
            ]
        )
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if corrupt_trailer_signature:
            signature = flip(signature)
        body += f"x-amz-trailer-signature:{signature}\r\n".encode()
    body += b"\r\n"
    assert len(body) == length
    lines = [f"PUT {target} HTTP/1.1", f"Host: 127.0.0.1:{daemon.port}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return StreamingUpload(head, bytes(body))


@dataclass
class SocketOutcome:
    """What came back on a raw connection: a response (or None if the connection
    closed first) and whether the server then closed the connection."""

    reply: Reply | None
    closed: bool
    send_error: str | None = None
    extra: bytes = b""


@dataclass
class _Sender:
    sock: socket.socket
    pieces: list[bytes]
    error: str | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for piece in self.pieces:
                self.sock.sendall(piece)
        except OSError as e:  # the server may close once it has answered
            self.error = repr(e)


def exchange(
    daemon: Daemon, pieces: list[bytes], until_closed: bool = False, timeout: float = 10.0
) -> SocketOutcome:
    """Send ``pieces`` (from a thread, so a server that stops reading cannot block
    the test) and read one response; with ``until_closed``, then wait for the server
    to close the connection (``closed`` stays False if it has not within ``timeout``)."""
    sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=timeout)
    try:
        sender = _Sender(sock, pieces)
        received = b""
        reply: Reply | None = None
        closed = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (reply is None or until_closed):
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            except TimeoutError:
                break
            if not data:
                closed = True
                break
            received += data
            if reply is None:
                reply, received = _parse_response(received)
        sender.thread.join(timeout)
        return SocketOutcome(reply, closed, sender.error, received)
    finally:
        sock.close()


def _parse_response(data: bytes) -> tuple[Reply | None, bytes]:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None, data
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if len(rest) < length:
        return None, data
    return Reply(status, headers, rest[:length]), rest[length:]


def pieces_of(upload: StreamingUpload, size: int = 64 * 1024) -> list[bytes]:
    return [upload.head] + [upload.body[i : i + size] for i in range(0, len(upload.body), size)]


STREAM_DATA_SIZE = MiB + 12_345  # 16 full 64 KiB chunks and a short one


def test_signed_streaming_upload(daemon: Daemon, bucket: str) -> None:
    data = os.urandom(STREAM_DATA_SIZE)
    upload = streaming_upload(daemon, f"/{bucket}/streamed.bin", data)
    outcome = exchange(daemon, pieces_of(upload))
    assert outcome.reply is not None, outcome
    assert outcome.reply.status == 200, str(outcome.reply)
    assert outcome.reply.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = client(daemon, ALICE).get_object(Bucket=bucket, Key="streamed.bin")
    assert got["ContentLength"] == len(data)
    assert got["Body"].read() == data


@pytest.mark.parametrize("corrupt", [0, 8, 17], ids=["first", "middle", "final-empty"])
def test_signed_streaming_bad_chunk_signature(daemon: Daemon, bucket: str, corrupt: int) -> None:
    data = os.urandom(STREAM_DATA_SIZE)
    upload = streaming_upload(daemon, f"/{bucket}/forged.bin", data, corrupt_chunk=corrupt)
    started = time.monotonic()
    outcome = exchange(daemon, pieces_of(upload), until_closed=True)
    assert time.monotonic() - started < 9, f"hung: {outcome}"
    if outcome.reply is not None:  # else the connection closed before the answer was read
        assert outcome.reply.status == 403, str(outcome.reply)
        assert outcome.reply.code == "SignatureDoesNotMatch", str(outcome.reply)
    assert outcome.closed, f"connection left open after the refusal: {outcome}"
    assert not stored(daemon, bucket, "forged.bin")


def test_signed_streaming_truncated_body(daemon: Daemon, bucket: str) -> None:
    data = os.urandom(STREAM_DATA_SIZE)
    # The HTTP framing ends cleanly (the signed Content-Length says so), the aws-chunked
    # frames do not: the body stops in the middle of a chunk.
    cut = len(streaming_upload(daemon, f"/{bucket}/short.bin", data).body) // 2
    short = streaming_upload(daemon, f"/{bucket}/short.bin", data, content_length=cut)
    assert f"Content-Length: {cut}\r\n".encode() in short.head
    outcome = exchange(daemon, [short.head, short.body[:cut]])
    assert outcome.reply is not None, outcome
    assert outcome.reply.status == 400, str(outcome.reply)
    assert outcome.reply.code == "IncompleteBody", str(outcome.reply)
    assert not stored(daemon, bucket, "short.bin")
    # The client goes away mid-body.
    upload = streaming_upload(daemon, f"/{bucket}/gone.bin", data)
    sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    sock.sendall(upload.head + upload.body[: len(upload.body) // 3])
    sock.close()
    # The partial upload's temporary file goes once the server noticed.
    temporary = daemon.workdir / "data" / ".s3proxy" / "tmp"
    deadline = time.monotonic() + 5
    while any(temporary.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(temporary.iterdir())
    assert not stored(daemon, bucket, "gone.bin")


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_signed_streaming_with_checksum_trailer(daemon: Daemon, bucket: str) -> None:
    data = os.urandom(STREAM_DATA_SIZE)
    trailer = ("x-amz-checksum-crc32", crc32_b64(data))
    upload = streaming_upload(daemon, f"/{bucket}/trailed.bin", data, trailer=trailer)
    outcome = exchange(daemon, pieces_of(upload))
    assert outcome.reply is not None, outcome
    assert outcome.reply.status == 200, str(outcome.reply)
    s3 = client(daemon, ALICE)
    head = s3.head_object(Bucket=bucket, Key="trailed.bin", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc32_b64(data)
    assert s3.get_object(Bucket=bucket, Key="trailed.bin")["Body"].read() == data


def test_signed_streaming_with_wrong_trailer_checksum(daemon: Daemon, bucket: str) -> None:
    data = os.urandom(STREAM_DATA_SIZE)
    wrong = ("x-amz-checksum-crc32", crc32_b64(data + b"!"))
    upload = streaming_upload(daemon, f"/{bucket}/bad-crc.bin", data, trailer=wrong)
    outcome = exchange(daemon, pieces_of(upload))
    assert outcome.reply is not None, outcome
    assert (outcome.reply.status, outcome.reply.code) == (400, "BadDigest"), str(outcome.reply)
    assert not stored(daemon, bucket, "bad-crc.bin")
    # The right checksum under a forged trailer signature.
    right = ("x-amz-checksum-crc32", crc32_b64(data))
    upload = streaming_upload(
        daemon, f"/{bucket}/bad-sig.bin", data, trailer=right, corrupt_trailer_signature=True
    )
    outcome = exchange(daemon, pieces_of(upload), until_closed=True)
    if outcome.reply is not None:
        assert (outcome.reply.status, outcome.reply.code) == (403, "SignatureDoesNotMatch")
    else:
        assert outcome.closed, outcome
    assert not stored(daemon, bucket, "bad-sig.bin")


# -- flexible checksums ----------------------------------------------------------------


def _crc_table(polynomial: int) -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ polynomial if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc_table(0x82F63B78)
_CRC64NVME = _crc_table(0x9A6C9329AC4BC9B5)


def _reflected_crc(data: bytes, table: list[int], mask: int) -> int:
    crc = mask
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


def checksum(algorithm: str, data: bytes) -> str:
    """The base64 value of an S3 flexible checksum, computed here from its definition."""
    if algorithm == "crc32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm == "crc32c":
        raw = _reflected_crc(data, _CRC32C, 0xFFFFFFFF).to_bytes(4, "big")
    elif algorithm == "crc64nvme":
        raw = _reflected_crc(data, _CRC64NVME, (1 << 64) - 1).to_bytes(8, "big")
    else:
        raw = hashlib.new(algorithm, data).digest()
    return base64.b64encode(raw).decode()


ALGORITHMS = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"]
_BOTO_NAME = {"crc32": "CRC32", "crc32c": "CRC32C", "crc64nvme": "CRC64NVME"}


def boto_name(algorithm: str) -> str:
    return _BOTO_NAME.get(algorithm, algorithm.upper())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_flexible_checksum_headers(daemon: Daemon, shared_bucket: str, algorithm: str) -> None:
    s3 = client(daemon, ALICE)
    data = os.urandom(5000)
    key = f"checksum-{algorithm}"
    put = s3.put_object(
        Bucket=shared_bucket, Key=key, Body=data, ChecksumAlgorithm=boto_name(algorithm)
    )
    field_name = "Checksum" + boto_name(algorithm)
    assert put[field_name] == checksum(algorithm, data)
    head = s3.head_object(Bucket=shared_bucket, Key=key, ChecksumMode="ENABLED")
    assert head[field_name] == checksum(algorithm, data)
    # A value that belongs to other bytes: BadDigest, nothing stored.
    bad_key = f"checksum-{algorithm}-wrong"
    with pytest.raises(ClientError) as info:
        s3.put_object(
            Bucket=shared_bucket,
            Key=bad_key,
            Body=data,
            **{field_name: checksum(algorithm, data[:-1])},
        )
    assert error_code(info.value) == "BadDigest"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert not stored(daemon, shared_bucket, bad_key)
    # The same over raw HTTP, signed by botocore with the header among the signed ones.
    raw = sign(
        daemon,
        "PUT",
        f"/{shared_bucket}/{bad_key}",
        data,
        {f"x-amz-checksum-{algorithm}": checksum(algorithm, data + b"x")},
    )
    reply = send(daemon, raw)
    assert (reply.status, reply.code) == (400, "BadDigest"), str(reply)
    assert not stored(daemon, shared_bucket, bad_key)


def test_payload_sha256_mismatch(daemon: Daemon, shared_bucket: str) -> None:
    data = os.urandom(70_000)
    request = sign(daemon, "PUT", f"/{shared_bucket}/sha-mismatch", data)
    assert request.header("X-Amz-Content-SHA256") == hashlib.sha256(data).hexdigest()
    altered = dataclasses.replace(request, body=data[:-1] + bytes([data[-1] ^ 0xFF]))
    reply = send(daemon, altered)
    assert (reply.status, reply.code) == (400, "XAmzContentSHA256Mismatch"), str(reply)
    fields = reply.error()
    assert fields["ClientComputedContentSHA256"] == hashlib.sha256(data).hexdigest()
    assert fields["S3ComputedContentSHA256"] == hashlib.sha256(altered.body).hexdigest()
    assert not stored(daemon, shared_bucket, "sha-mismatch")


# -- malformed Authorization headers ---------------------------------------------------


def _v4(credential: str, signed: str = "host;x-amz-content-sha256;x-amz-date") -> str:
    return f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={'0' * 64}"


def _malformed_cases(date: str) -> list[tuple[str, str | bytes, int, str]]:
    """(id, Authorization value, status, code) for a request dated ``date``."""
    scope = f"{date[:8]}/{REGION}/s3/aws4_request"
    good = f"{ALICE.access_key}/{scope}"
    malformed = "AuthorizationHeaderMalformed"
    return [
        ("empty", "", 400, "InvalidArgument"),
        ("bearer", "Bearer abc.def.ghi", 400, "InvalidArgument"),
        ("algorithm-only", "AWS4-HMAC-SHA256", 400, malformed),
        ("algorithm-space", "AWS4-HMAC-SHA256 ", 400, malformed),
        ("other-algorithm", _v4(good).replace("SHA256", "SHA512", 1), 400, "InvalidArgument"),
        ("lowercase-algorithm", _v4(good).lower(), 400, "InvalidArgument"),
        ("credential-empty", "AWS4-HMAC-SHA256 Credential=", 400, malformed),
        (
            "two-components",
            f"AWS4-HMAC-SHA256 Credential={good}, SignedHeaders=host",
            400,
            malformed,
        ),
        ("commas-only", "AWS4-HMAC-SHA256 ,,,,", 400, malformed),
        ("unknown-component", _v4(good) + ", Foo=bar", 400, malformed),
        ("repeated-component", _v4(good) + f", Credential={good}", 400, malformed),
        ("no-equals", _v4(good).replace("Signature=", "Signature"), 400, malformed),
        ("credential-three-parts", _v4(f"{ALICE.access_key}/{date[:8]}/s3"), 400, malformed),
        ("credential-date-letters", _v4(good.replace(date[:8], "2026AB01")), 400, malformed),
        ("credential-date-mismatch", _v4(good.replace(date[:8], "20000101")), 400, malformed),
        ("credential-service", _v4(good.replace("/s3/", "/ec2/")), 400, malformed),
        ("credential-terminal", _v4(good.replace("aws4_request", "aws5_request")), 400, malformed),
        ("signed-headers-empty-name", _v4(good, "host;;x-amz-date"), 400, malformed),
        (
            "signed-headers-without-host",
            _v4(good, "x-amz-content-sha256;x-amz-date"),
            403,
            "AccessDenied",
        ),
        ("unknown-access-key", _v4(good.replace("ALICE", "NOONE")), 403, "InvalidAccessKeyId"),
        ("bad-signature", _v4(good), 403, "SignatureDoesNotMatch"),
        ("signature-not-hex", _v4(good).replace("0" * 64, "zz"), 403, "SignatureDoesNotMatch"),
        ("non-ascii", _v4(good).encode() + b"\xff\xfe\xe9", 403, "SignatureDoesNotMatch"),
        ("very-long", _v4("A" * 6000 + f"/{scope}"), 403, "InvalidAccessKeyId"),
        ("v2-empty", "AWS ", 400, "InvalidArgument"),
        ("v2-no-colon", f"AWS {ALICE.access_key}", 400, "InvalidArgument"),
        ("v2-empty-signature", f"AWS {ALICE.access_key}:", 400, "InvalidArgument"),
        ("v2-empty-key", "AWS :c2lnbmF0dXJl", 403, "InvalidAccessKeyId"),
        ("v2-unknown-key", "AWS AKIANOBODY:c2lnbmF0dXJl", 403, "InvalidAccessKeyId"),
        ("v2-bad-signature", f"AWS {ALICE.access_key}:c2lnbmF0dXJl", 403, "SignatureDoesNotMatch"),
    ]


_CASE_IDS = [case[0] for case in _malformed_cases("20260101T000000Z")]


@pytest.mark.parametrize("case", _CASE_IDS)
def test_malformed_authorization_header(daemon: Daemon, shared_bucket: str, case: str) -> None:
    now = time.time()
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    _, authorization, status, code = next(c for c in _malformed_cases(date) if c[0] == case)
    body = b"must not be stored"
    key = f"malformed-{case}"
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=15)
    try:
        conn.putrequest("PUT", f"/{shared_bucket}/{key}", skip_accept_encoding=True)
        conn.putheader("Authorization", authorization)
        if not isinstance(authorization, str) or not authorization.startswith("AWS "):
            conn.putheader("x-amz-date", date)  # SigV2 would read it instead of Date
        conn.putheader("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)))
        conn.putheader("x-amz-content-sha256", hashlib.sha256(body).hexdigest())
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        reply = Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()
    assert 400 <= reply.status < 500, str(reply)
    assert (reply.status, reply.code) == (status, code), str(reply)
    assert not stored(daemon, shared_bucket, key)


def test_malformed_table_is_large_enough() -> None:
    assert len(_CASE_IDS) >= 20
    assert len(set(_CASE_IDS)) == len(_CASE_IDS)


# -- start-up --------------------------------------------------------------------------


def start_with_credentials(tmp_path: Path, path: Path) -> subprocess.CompletedProcess[str]:
    """``twistd -n s3proxy --credentials PATH`` as a user runs it (it should not start)."""
    return subprocess.run(
        [
            *twistd_command(),
            "-n",
            "--pidfile=",
            "--logfile",
            str(tmp_path / "daemon.log"),
            "s3proxy",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--backend",
            f"file:{tmp_path / 'data'}",
            "--credentials",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )


BAD_CREDENTIALS: dict[str, tuple[str | bytes | None, str]] = {
    "not-toml": ('[[users]\naccess_key = "A"\n', "not valid TOML"),
    "duplicate-access-key": (
        credentials_toml((ALICE, dataclasses.replace(BOB, access_key=ALICE.access_key))),
        f"users[1] repeats access_key {ALICE.access_key!r}",
    ),
    "missing-secret": (
        '[[users]]\naccess_key = "AKIA1"\nuser_id = "u"\ndisplay_name = "d"\n',
        "users[0] is missing 'secret_key'",
    ),
    "no-users": ("# nobody\n", "expected one or more [[users]] tables"),
    "not-utf8": (b'[[users]]\naccess_key = "\xff"\n', "not UTF-8"),
    "missing-file": (None, "cannot read credentials"),
}


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
def test_bad_credentials_file_stops_start_up(tmp_path: Path, case: str) -> None:
    text, problem = BAD_CREDENTIALS[case]
    path = tmp_path / "users.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    result = start_with_credentials(tmp_path, path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    about = [line for line in output.splitlines() if str(path) in line]
    assert len(about) == 1, output
    assert problem in about[0], about[0]
    assert not (tmp_path / "data").exists()


def test_open_mode_warns_in_the_log(make_daemon: Callable[..., Daemon]) -> None:
    open_daemon = make_daemon("memory:")
    deadline = time.monotonic() + 10
    while "open mode" not in open_daemon.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = open_daemon.log_text()
    assert "no --credentials: open mode" in log
    assert "WARNING: open mode on a non-loopback address" not in log


def test_credentials_mode_does_not_warn(daemon: Daemon) -> None:
    assert "s3proxy serving" in daemon.log_text()
    assert "open mode" not in daemon.log_text()
    assert ALICE.secret_key not in daemon.log_text()


@pytest.mark.parametrize(
    ("description", "loopback"),
    [
        ("tcp:39999:interface=127.0.0.1", True),
        ("tcp:port=39999:interface=127.0.0.1", True),
        ("tcp:39999:interface=127.1.2.3", True),
        ("tcp:39999:interface=localhost", True),
        (r"tcp6:39999:interface=\:\:1", True),
        ("unix:/run/s3proxy.sock", True),
        ("tcp:39999", False),
        ("tcp:0:interface=0.0.0.0", False),
        ("tcp:39999:interface=192.168.1.10", False),
        (r"tcp6:39999:interface=\:\:", False),
        ("systemd:domain=INET:index=0", False),
    ],
)
def test_is_loopback(description: str, loopback: bool) -> None:
    assert _is_loopback(description) is loopback


def test_warn_if_open(capsys: pytest.CaptureFixture[str]) -> None:
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    try:
        warn_if_open({"AKIA": ALICE}, ["tcp:0:interface=0.0.0.0"])
        assert len(observer) == 0
        assert capsys.readouterr().err == ""
        warn_if_open(None, ["tcp:39999:interface=127.0.0.1"])
        assert [e["log_level"].name for e in observer] == ["warn"]
        assert capsys.readouterr().err == ""
        warn_if_open(None, ["tcp:39999:interface=127.0.0.1", "tcp:0:interface=0.0.0.0"])
        levels = [e["log_level"].name for e in list(observer)[1:]]
        assert levels == ["warn", "critical"]
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "tcp:0:interface=0.0.0.0" in err and "127.0.0.1" not in err
        assert err.startswith("s3proxy: WARNING: open mode on a non-loopback address")
    finally:
        globalLogPublisher.removeObserver(observer)
