"""SigV2 verification, with boto 2.49 and botocore's HmacV1 signers as the oracle.

boto 2 is driven two ways: offline (its own ``HTTPRequest.authorize`` at a fixed Date)
and against a tiny ``http.server`` on 127.0.0.1 that records what boto 2 really puts on
the wire, which settles what it signs under ``path='/api/v1/s3'``.
"""

from __future__ import annotations

import dataclasses
import email.utils
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto.s3.connection
import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from s3proxy import errors
from s3proxy.auth import sigv2
from s3proxy.auth.credentials import User
from s3proxy.auth.sigv4 import SignedRequest, authenticate
from tests.unit.signing import ALICE, BOB, HOST, NOW, PREFIX, USERS, raises, with_headers

DATE = email.utils.formatdate(NOW, usegmt=True)
KEYS = [
    "plain.txt",
    "with space",
    "plus+sign",
    "100%",
    "tilde~",
    "caf\u00e9/\u00fcnicode/\u65e5\u672c",
    "trailing/",
    "q?uery&and=eq#hash",
    "every one/+%~\u00e9/x/",
]


# -- boto 2, offline -----------------------------------------------------------------


def connection(user: User = ALICE, path: str = PREFIX, port: int = 8000) -> Any:
    return boto.s3.connection.S3Connection(
        aws_access_key_id=user.access_key,
        aws_secret_access_key=user.secret_key,
        host="127.0.0.1",
        port=port,
        path=path,
        is_secure=False,
        calling_format=boto.s3.connection.OrdinaryCallingFormat(),
    )


def boto2_signed(
    method: str = "GET",
    bucket: str = "bucket",
    key: str = "",
    query: str = "",
    headers: dict[str, str] | None = None,
    user: User = ALICE,
    path: str = PREFIX,
) -> SignedRequest:
    """What ``S3Connection.make_request`` would send, signed by boto 2 at DATE."""
    conn = connection(user, path)
    target = conn.calling_format.build_path_base(bucket, key)
    auth_path = conn.calling_format.build_auth_path(bucket, key)
    if query:
        target += "?" + query
        auth_path += "?" + query
    request = conn.build_base_http_request(
        method, target, auth_path, headers={"Date": DATE, **(headers or {})}
    )
    request.authorize(connection=conn)
    raw_path, _, raw_query = request.path.partition("?")
    wire = {name.lower(): [str(value)] for name, value in request.headers.items()}
    wire["host"] = [HOST]
    return SignedRequest(method, raw_path.encode(), raw_query.encode(), wire, NOW)


@pytest.mark.parametrize("path", ["/", PREFIX])
@pytest.mark.parametrize("key", KEYS)
def test_boto2_keys(path: str, key: str) -> None:
    req = boto2_signed("PUT", key=key, path=path, headers={"Content-Type": "text/plain"})
    result = authenticate(req, USERS, prefix=PREFIX)
    assert result is not None
    assert (result.user, result.version, result.payload) == (ALICE, 2, "UNSIGNED-PAYLOAD")


@pytest.mark.parametrize(
    "query",
    [
        "acl",
        "uploads",
        "uploadId=a%2Fb%2Bc&partNumber=3",
        "versionId=",
        "delete",
        "prefix=x&delimiter=%2F&marker=a%20b",
        "response-content-disposition=attachment%3B%20filename%3D%22%C3%A9%22&x=1",
        "tagging&versionId=3",
    ],
)
def test_boto2_sub_resources(query: str) -> None:
    req = boto2_signed("GET", key="k", query=query)
    assert authenticate(req, USERS) is not None


def test_boto2_metadata_and_md5() -> None:
    headers = {
        "Content-MD5": "XUFAKrxLKna5cZ2REBfFkg==",
        "Content-Type": "text/plain",
        "x-amz-meta-colour": "blue",
        "x-amz-meta-note": "caf\u00e9",  # boto 2 percent-encodes it before signing
        "x-amz-acl": "private",
    }
    req = boto2_signed("PUT", key="k", headers=headers)
    assert req.header("x-amz-meta-note") == "caf%C3%A9"
    assert authenticate(req, USERS) is not None


def test_boto2_x_amz_date_blanks_the_date_line() -> None:
    req = boto2_signed(headers={"x-amz-date": DATE})
    assert authenticate(req, USERS) is not None
    # The Date header is not signed when x-amz-date is present.
    assert authenticate(with_headers(req, date="garbage"), USERS) is not None


def _put() -> SignedRequest:
    headers = {
        "Content-MD5": "XUFAKrxLKna5cZ2REBfFkg==",
        "Content-Type": "text/plain",
        "x-amz-meta-colour": "blue",
    }
    return boto2_signed("PUT", key="some key", query="uploadId=abc&partNumber=1", headers=headers)


def _query(req: SignedRequest, old: bytes, new: bytes) -> SignedRequest:
    assert old in req.raw_query
    return dataclasses.replace(req, raw_query=req.raw_query.replace(old, new))


TAMPERING: list[tuple[str, Any, type[errors.S3Error]]] = [
    ("method", lambda r: dataclasses.replace(r, method="POST"), errors.SignatureDoesNotMatch),
    (
        "path",
        lambda r: dataclasses.replace(r, raw_path=r.raw_path.replace(b"key", b"kez")),
        errors.SignatureDoesNotMatch,
    ),
    ("sub-resource", lambda r: _query(r, b"=abc", b"=abd"), errors.SignatureDoesNotMatch),
    ("part number", lambda r: _query(r, b"ber=1", b"ber=2"), errors.SignatureDoesNotMatch),
    ("added sub-resource", lambda r: _query(r, b"abc", b"abc&acl"), errors.SignatureDoesNotMatch),
    (
        "content-md5",
        lambda r: with_headers(r, content_md5="XUFAKrxLKna5cZ2REBfFkh=="),
        errors.SignatureDoesNotMatch,
    ),
    (
        "content-type",
        lambda r: with_headers(r, content_type="text/plaim"),
        errors.SignatureDoesNotMatch,
    ),
    (
        "amz header",
        lambda r: with_headers(r, x_amz_meta_colour="blux"),
        errors.SignatureDoesNotMatch,
    ),
    (
        "added amz header",
        lambda r: with_headers(r, x_amz_acl="public-read"),
        errors.SignatureDoesNotMatch,
    ),
    (
        "date",
        lambda r: with_headers(r, date=email.utils.formatdate(NOW + 1, usegmt=True)),
        errors.SignatureDoesNotMatch,
    ),
    ("no date", lambda r: with_headers(r, date=None), errors.AccessDenied),
    ("bad date", lambda r: with_headers(r, date="yesterday"), errors.AccessDenied),
    ("skew", lambda r: dataclasses.replace(r, now=NOW + 901), errors.RequestTimeTooSkewed),
    (
        "access key",
        lambda r: with_headers(r, authorization=r.header("authorization").replace("LICE", "LICF")),
        errors.InvalidAccessKeyId,
    ),
    (
        "signature",
        lambda r: with_headers(r, authorization=r.header("authorization")[:-3] + "AA="),
        errors.SignatureDoesNotMatch,
    ),
]


def test_untampered_put_verifies() -> None:
    assert authenticate(_put(), USERS) is not None
    # V2 signs only the sub-resources: other query parameters may change (as on AWS).
    assert authenticate(_query(_put(), b"uploadId", b"x=1&uploadId"), USERS) is not None
    assert authenticate(dataclasses.replace(_put(), now=NOW - 900), USERS) is not None


@pytest.mark.parametrize(
    ("change", "error"), [t[1:] for t in TAMPERING], ids=[t[0] for t in TAMPERING]
)
def test_one_change_is_refused(change: Any, error: type[errors.S3Error]) -> None:
    raises(error, change(_put()))


def test_another_users_secret() -> None:
    req = boto2_signed("PUT", key="k", user=User(ALICE.access_key, BOB.secret_key, "x", "x"))
    error = raises(errors.SignatureDoesNotMatch, req)
    assert error.fields["StringToSign"] == f"PUT\n\n\n{DATE}\n{PREFIX}/bucket/k"
    assert error.fields["AWSAccessKeyId"] == ALICE.access_key
    assert req.header("authorization").endswith(error.fields["SignatureProvided"])  # type: ignore[union-attr]
    assert error.fields["StringToSignBytes"].startswith("50 55 54 0a")


# -- boto 2 on the wire ------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[SignedRequest] = []

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        raw_path, _, raw_query = self.path.partition("?")
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():  # decoded latin-1, as Twisted does
            headers.setdefault(name.lower(), []).append(value)
        req = SignedRequest(self.command, raw_path.encode("latin-1"), raw_query.encode(), headers)
        self.seen.append(req)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _record

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def recorder() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_boto2_signs_the_prefixed_path(recorder: int) -> None:
    """boto 2 with path='/api/v1/s3' sends and signs /api/v1/s3/bucket/key."""
    conn = connection(port=recorder)
    conn.make_request("PUT", "bucket", "a b+c~d/\u00e9/x/", data=b"hello")
    req = _Recorder.seen[-1]
    assert req.raw_path == b"/api/v1/s3/bucket/a%20b%2Bc~d/%C3%A9/x/"
    assert authenticate(req, USERS) is not None  # the raw path, no prefix configured
    assert authenticate(req, USERS, prefix=PREFIX) is not None
    provided = req.header("authorization").rpartition(":")[2]  # type: ignore[union-attr]
    date = req.header("date").encode()  # type: ignore[union-attr]
    unprefixed = sigv2.string_to_sign(req, date, b"/bucket/a%20b%2Bc~d/%C3%A9/x/", {})
    assert sigv2.sign(ALICE.secret_key, unprefixed) != provided


@pytest.mark.parametrize("path", ["/", PREFIX])
@pytest.mark.parametrize("key", KEYS)
def test_boto2_on_the_wire(recorder: int, path: str, key: str) -> None:
    conn = connection(port=recorder, path=path)
    conn.make_request("PUT", "bucket", key, data=b"x", headers={"x-amz-meta-a": "b"})
    conn.make_request("GET", "bucket", key, query_args="acl")
    for req in _Recorder.seen[-2:]:
        assert authenticate(req, USERS, prefix=PREFIX) is not None


def test_boto2_with_empty_keys(recorder: int) -> None:
    """The reference's boto 2 example connects with '' keys: it signs 'AWS :<sig>'."""
    conn = connection(User("", "", "", ""), port=recorder)
    conn.make_request("GET", "bucket")
    req = _Recorder.seen[-1]
    assert req.header("authorization").startswith("AWS :")  # type: ignore[union-attr]
    error = raises(errors.InvalidAccessKeyId, req)
    assert error.fields == {"AWSAccessKeyId": ""}


# -- boto 2 presigned ------------------------------------------------------------------


def boto2_url(key: str = "key", expires: int = int(NOW) + 3600, **kwargs: Any) -> SignedRequest:
    url = connection().generate_url(
        expires, "GET", "bucket", key, expires_in_absolute=True, **kwargs
    )
    parts = urlsplit(url)
    return SignedRequest("GET", parts.path.encode(), parts.query.encode(), {"host": [HOST]}, NOW)


@pytest.mark.parametrize("key", KEYS)
def test_boto2_presigned(key: str) -> None:
    req = boto2_url(key, response_headers={"response-content-type": "text/plain; charset=x"})
    result = authenticate(req, USERS, prefix=PREFIX)
    assert result is not None and result.presigned and result.version == 2


def test_boto2_presigned_version() -> None:
    assert authenticate(boto2_url(version_id="3/4+5"), USERS) is not None


def test_presigned_expired() -> None:
    req = boto2_url(expires=int(NOW) + 60)
    assert authenticate(dataclasses.replace(req, now=NOW + 60), USERS) is not None
    error = raises(errors.AccessDenied, dataclasses.replace(req, now=NOW + 61))
    assert error.message == "Request has expired"
    assert error.fields == {"Expires": "2026-05-01T12:01:00Z", "ServerTime": "2026-05-01T12:01:01Z"}


PRESIGNED_TAMPERING = [
    ("expires", b"Expires=", b"Expires=1", errors.SignatureDoesNotMatch),
    ("key", b"AWSAccessKeyId=AKIDALICE", b"AWSAccessKeyId=AKIDALICF", errors.InvalidAccessKeyId),
    ("no key", b"AWSAccessKeyId=AKIDALICE", b"", errors.AccessDenied),
    ("no expires", b"Expires=", b"Expire=", errors.AccessDenied),
    ("bad expires", b"Expires=", b"Expires=x", errors.AccessDenied),
    ("signature", b"Signature=", b"Signature=A", errors.SignatureDoesNotMatch),
    (
        "v4 too",
        b"Signature=",
        b"X-Amz-Algorithm=AWS4-HMAC-SHA256&Signature=",
        errors.InvalidArgument,
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [t[1:] for t in PRESIGNED_TAMPERING],
    ids=[t[0] for t in PRESIGNED_TAMPERING],
)
def test_presigned_change_is_refused(old: bytes, new: bytes, error: type[errors.S3Error]) -> None:
    req = boto2_url()
    assert old in req.raw_query
    raises(error, dataclasses.replace(req, raw_query=req.raw_query.replace(old, new)))


def test_presigned_path_and_method_changes_are_refused() -> None:
    req = boto2_url()
    raises(errors.SignatureDoesNotMatch, dataclasses.replace(req, raw_path=b"/bucket/kez"))
    raises(errors.SignatureDoesNotMatch, dataclasses.replace(req, method="PUT"))


def test_presigned_and_header_together() -> None:
    req = with_headers(boto2_url(), authorization="AWS AKIDALICE:abc=")
    raises(errors.InvalidArgument, req)


# -- botocore's HmacV1 signers -----------------------------------------------------------


class FixedHmacV1Auth(HmacV1Auth):
    def _get_date(self) -> str:
        return DATE


class FixedHmacV1QueryAuth(HmacV1QueryAuth):
    def _get_date(self) -> str:
        return str(int(NOW) + 300)


def botocore_signed(
    method: str = "GET",
    url: str = f"http://{HOST}/bucket/key",
    headers: dict[str, str] | None = None,
    user: User = ALICE,
    auth_path: str | None = None,
    query: bool = False,
) -> SignedRequest:
    request = AWSRequest(method=method, url=url, headers=headers or {})
    request.auth_path = auth_path
    credentials = Credentials(user.access_key, user.secret_key)
    signer = FixedHmacV1QueryAuth(credentials) if query else FixedHmacV1Auth(credentials)
    signer.add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    wire: dict[str, list[str]] = {"host": [parts.netloc]}
    for name, value in prepared.headers.items():
        wire.setdefault(name.lower(), []).append(value)
    return SignedRequest(method, parts.path.encode(), parts.query.encode(), wire, NOW)


@pytest.mark.parametrize(
    "url",
    [
        f"http://{HOST}/bucket/key",
        f"http://{HOST}/bucket/a%20b%2Bc~d/%C3%A9//x/",
        f"http://{HOST}{PREFIX}/bucket/key?acl",
        f"http://{HOST}/bucket/key?uploadId=x%2By&partNumber=2&list-type=2",
        f"http://{HOST}/bucket/key?response-content-disposition=a%3B%20b&versionId=",
        f"http://{HOST}/bucket?delete",
        f"http://{HOST}/",
    ],
)
@pytest.mark.parametrize("query", [False, True], ids=["header", "presigned"])
def test_botocore_hmacv1(url: str, query: bool) -> None:
    headers = {"x-amz-meta-a": "  b ", "Content-Type": "text/plain"}
    req = botocore_signed("PUT", url, headers=headers, query=query)
    result = authenticate(req, USERS)
    assert result is not None and result.presigned is query


def test_botocore_hmacv1_with_other_secret() -> None:
    req = botocore_signed(user=User(ALICE.access_key, BOB.secret_key, "x", "x"))
    raises(errors.SignatureDoesNotMatch, req)
    req = botocore_signed(user=User(ALICE.access_key, BOB.secret_key, "x", "x"), query=True)
    raises(errors.SignatureDoesNotMatch, req)


def test_botocore_security_token_moved_to_query() -> None:
    request = AWSRequest(method="GET", url=f"http://{HOST}/bucket/key")
    credentials = Credentials(ALICE.access_key, ALICE.secret_key, token="tok en")
    FixedHmacV1QueryAuth(credentials).add_auth(request)
    parts = urlsplit(request.prepare().url)
    assert "x-amz-security-token" in parts.query
    req = SignedRequest("GET", parts.path.encode(), parts.query.encode(), {"host": [HOST]}, NOW)
    assert authenticate(req, USERS) is not None


def test_signed_without_the_prefix() -> None:
    """A client that signs /bucket/key but sends /api/v1/s3/bucket/key."""
    url = f"http://{HOST}{PREFIX}/bucket/key"
    req = botocore_signed(url=url, auth_path="/bucket/key")
    assert authenticate(req, USERS, prefix=PREFIX) is not None
    assert authenticate(req, USERS, prefix=PREFIX + "/") is not None
    raises(errors.SignatureDoesNotMatch, req)


def test_canonical_resource() -> None:
    resource = sigv2.canonical_resource(
        b"/b/k%20y", b"versionId=1&prefix=p&acl&response-expires=a%2Cb&uploads="
    )
    assert resource == b"/b/k%20y?acl&response-expires=a,b&uploads=&versionId=1"


@pytest.mark.parametrize(
    "value", ["Fri, 01 May 2026 12:00:00 GMT", "Fri, 01 May 2026 12:00:00 -0000"]
)
def test_date_forms(value: str) -> None:
    text = f"GET\n\n\n{value}\n/bucket/key".encode()
    signature = sigv2.sign(ALICE.secret_key, text)
    headers = {"date": [value], "authorization": [f"AWS {ALICE.access_key}:{signature}"]}
    req = SignedRequest("GET", b"/bucket/key", b"", headers, time.time())
    raises(errors.RequestTimeTooSkewed, req)
    assert authenticate(dataclasses.replace(req, now=NOW), USERS) is not None
