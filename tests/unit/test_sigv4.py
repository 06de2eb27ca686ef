"""SigV4 verification, with botocore's own signers as the oracle.

Each request is signed by botocore (``S3SigV4Auth``, ``S3SigV4QueryAuth``, or a boto3
client whose request is captured just before it would be sent) at a frozen time, then
handed to ``authenticate`` exactly as the server would see it on the wire. Chunk and
trailer signatures are checked against AWS's published streaming examples.
"""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import datetime
import hashlib
import importlib
import random
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode

from s3proxy import errors
from s3proxy.auth.credentials import User
from s3proxy.auth.sigv4 import AuthResult, ChunkVerifier, SignedRequest, authenticate
from s3proxy.auth.streaming import canonical_trailer
from tests.unit.signing import ALICE, BOB, HOST, NOW, PREFIX, USERS, raises, with_headers

SIGNED_AT = datetime.datetime(2026, 5, 1, 12, 0, 0)
assert float(calendar.timegm(SIGNED_AT.timetuple())) == NOW
SPECIAL_KEYS = [
    "plain.txt",
    "with space",
    "plus+sign",
    "100%",
    "tilde~",
    "caf\u00e9/\u00fcnicode/\u65e5\u672c",
    "double//slash",
    "trailing/",
    "q?uery&and=eq#hash",
    "every one/+%~\u00e9//x/",
]


def wire(prepared: AWSPreparedRequest, now: float = NOW) -> SignedRequest:
    """The request as the server sees it: raw path and query off the request line,
    headers (with the Host the HTTP client adds) as latin-1 text."""
    parts = urlsplit(prepared.url)
    headers: dict[str, list[str]] = {}
    for name, value in prepared.headers.items():
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        headers.setdefault(name.lower(), []).append(text)
    headers.setdefault("host", [parts.netloc])  # the awscrt signer sets it itself
    return SignedRequest(
        method=prepared.method,
        raw_path=parts.path.encode("ascii"),
        raw_query=parts.query.encode("ascii"),
        headers=headers,
        now=now,
    )


@contextlib.contextmanager
def frozen() -> Iterator[None]:
    """Botocore's signers, and the awscrt ones boto3 clients use when awscrt is
    installed (a second, independent oracle), sign at SIGNED_AT."""

    def now(remove_tzinfo: bool = True) -> datetime.datetime:
        return SIGNED_AT if remove_tzinfo else SIGNED_AT.replace(tzinfo=datetime.UTC)

    with contextlib.ExitStack() as stack:
        for module in ("botocore.auth", "botocore.crt.auth"):
            try:
                importlib.import_module(module)
            except ImportError:  # awscrt not installed
                continue
            stack.enter_context(mock.patch(f"{module}.get_current_datetime", now))
        yield


def sign(
    method: str = "GET",
    url: str = f"http://{HOST}/bucket/key",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    user: User = ALICE,
    signer: Callable[..., Any] = S3SigV4Auth,
    region: str = "us-east-1",
    prepare: Callable[[AWSRequest], None] | None = None,
) -> tuple[AWSRequest, SignedRequest]:
    request = AWSRequest(method=method, url=url, headers=headers or {}, data=body)
    if prepare is not None:
        prepare(request)
    with frozen():
        signer(Credentials(user.access_key, user.secret_key), "s3", region).add_auth(request)
    return request, wire(request.prepare())


def presign(
    url: str = f"http://{HOST}/bucket/key", expires: int = 3600, user: User = ALICE
) -> SignedRequest:
    request = AWSRequest(method="GET", url=url)
    with frozen():
        S3SigV4QueryAuth(
            Credentials(user.access_key, user.secret_key), "s3", "us-east-1", expires=expires
        ).add_auth(request)
    return wire(request.prepare())


def header(req: SignedRequest, name: str) -> str:
    value = req.header(name)
    assert value is not None
    return value


def flip(text: str, index: int = -1) -> str:
    """One byte changed."""
    chars = list(text)
    chars[index] = "0" if chars[index] != "0" else "1"
    return "".join(chars)


# -- boto3 clients, captured just before sending ------------------------------------


class Captured:
    def __init__(self, endpoint: str) -> None:
        self.requests: list[AWSPreparedRequest] = []
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=ALICE.access_key,
            aws_secret_access_key=ALICE.secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        self.client.meta.events.register("before-send", self._grab)

    def _grab(self, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse:
        self.requests.append(request)
        return AWSResponse(request.url, 200, {}, _EmptyRaw())

    def call(self, operation: str, **params: Any) -> SignedRequest:
        with frozen():
            try:
                getattr(self.client, operation)(**params)
            except Exception:  # the empty 200 may not parse; the request was captured
                pass
        return wire(self.requests[-1])


class _EmptyRaw:
    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        return iter([b""])


@pytest.fixture(params=["", PREFIX], ids=["root", "prefixed"])
def client(request: pytest.FixtureRequest) -> Captured:
    return Captured(f"http://{HOST}{request.param}")


# -- valid requests ------------------------------------------------------------------


def test_header_signed_request_verifies() -> None:
    _, req = sign()
    result = authenticate(req, USERS)
    assert isinstance(result, AuthResult)
    assert result.user == ALICE
    assert result.payload == hashlib.sha256(b"").hexdigest()
    assert result.scope == "20260501/us-east-1/s3/aws4_request"
    assert result.amz_date == "20260501T120000Z"
    assert result.seed_signature in req.header("authorization")  # type: ignore[operator]
    assert len(result.signing_key) == 32
    assert (result.version, result.presigned) == (4, False)


def test_no_credentials_is_anonymous() -> None:
    req = SignedRequest("GET", b"/bucket/key", b"prefix=a", {"host": [HOST]}, NOW)
    assert authenticate(req, USERS) is None


def test_headers_class_is_accepted() -> None:
    from s3proxy.web.headers import Headers

    _, req = sign()
    raw = {name: req.header_values(name) for name in req.header_names()}
    assert authenticate(dataclasses.replace(req, headers=Headers(raw)), USERS) is not None


def test_body_and_metadata_headers_verify() -> None:
    headers = {"x-amz-meta-colour": "  blue   and  green ", "Content-Type": "text/plain"}
    _, req = sign("PUT", body=b"hello", headers=headers)
    result = authenticate(req, USERS)
    assert result is not None
    assert result.payload == hashlib.sha256(b"hello").hexdigest()


def test_repeated_header_values_are_joined() -> None:
    request = AWSRequest(method="GET", url=f"http://{HOST}/bucket/key")
    request.headers.add_header("x-amz-meta-tag", "one")
    request.headers.add_header("x-amz-meta-tag", "two")
    with frozen():
        S3SigV4Auth(Credentials(ALICE.access_key, ALICE.secret_key), "s3", "us-east-1").add_auth(
            request
        )
    req = wire(request.prepare())
    # The prepared request keeps one value per name; the wire carries both lines.
    headers: dict[str, list[str]] = {"host": [HOST]}
    for name, value in request.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    req = dataclasses.replace(req, headers=headers)
    assert req.header_values("x-amz-meta-tag") == ["one", "two"]
    assert authenticate(req, USERS) is not None


def test_unsigned_payload_verifies() -> None:
    def unsigned(request: AWSRequest) -> None:
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})

    _, req = sign("PUT", body=b"data", url=f"https://{HOST}/b/k", prepare=unsigned)
    result = authenticate(req, USERS)
    assert result is not None and result.payload == "UNSIGNED-PAYLOAD"


def test_date_header_instead_of_x_amz_date() -> None:
    _, req = sign(headers={"Date": "placeholder"})
    assert req.header("x-amz-date") is None and req.header("date")
    assert authenticate(req, USERS) is not None


@pytest.mark.parametrize("prefix", ["", PREFIX])
@pytest.mark.parametrize("key", SPECIAL_KEYS)
def test_special_keys_signed_by_botocore(prefix: str, key: str) -> None:
    url = f"http://{HOST}{prefix}/bucket/{percent_encode(key, safe='/~')}"
    _, req = sign("PUT", url=url, body=b"x")
    result = authenticate(req, USERS, prefix=PREFIX)
    assert result is not None and result.user == ALICE


@pytest.mark.parametrize("key", SPECIAL_KEYS)
def test_special_keys_from_boto3_client(client: Captured, key: str) -> None:
    put = client.call("put_object", Bucket="bucket", Key=key, Body=b"hello")
    get = client.call("get_object", Bucket="bucket", Key=key)
    for req in (put, get):
        assert authenticate(req, USERS, prefix=PREFIX) is not None
        assert authenticate(req, USERS) is not None  # the raw path alone suffices


@pytest.mark.parametrize(
    ("operation", "params", "query"),
    [
        ("create_multipart_upload", {"Key": "k"}, b"uploads"),
        ("get_object_acl", {"Key": "k"}, b"acl"),
        ("list_objects_v2", {"Prefix": "a b+c/~\u00e9", "Delimiter": "/"}, b"list-type=2"),
        ("list_objects", {"Prefix": "", "Marker": "m&n=o"}, b"marker=m%26n%3Do"),
        ("upload_part", {"Key": "k", "UploadId": "a/b+c=", "PartNumber": 2}, b"uploadId="),
        ("delete_objects", {"Delete": {"Objects": [{"Key": "k"}]}}, b"delete"),
    ],
)
def test_queries_from_boto3_client(
    client: Captured, operation: str, params: dict[str, Any], query: bytes
) -> None:
    req = client.call(operation, Bucket="bucket", **params)
    assert query in req.raw_query
    assert authenticate(req, USERS) is not None


@pytest.mark.parametrize("query", ["uploads", "acl=", "acl", "versionId=&x=", "a=1&a=0&b="])
def test_query_params_with_empty_values(query: str) -> None:
    _, req = sign(url=f"http://{HOST}/bucket/key?{query}")
    assert req.raw_query == query.encode()
    assert authenticate(req, USERS) is not None


def test_path_sent_with_another_percent_encoding() -> None:
    """Signed as AWS encodes (upper-case hex), sent with lower-case hex and a literal
    '~' spelt %7E: the same resource, so it verifies."""
    _, req = sign(url=f"http://{HOST}/bucket/caf%C3%A9~x")
    sent = dataclasses.replace(req, raw_path=b"/bucket/caf%c3%a9%7Ex")
    assert authenticate(sent, USERS) is not None


def test_query_sent_with_plus_for_space() -> None:
    _, req = sign(url=f"http://{HOST}/bucket?prefix=a%20b")
    sent = dataclasses.replace(req, raw_query=b"prefix=a+b")
    assert authenticate(sent, USERS) is not None


def test_path_signed_without_the_prefix() -> None:
    """A client (or a proxy adding the prefix) that signed /bucket/key."""
    _, req = sign(url=f"http://{HOST}/bucket/key")
    sent = dataclasses.replace(req, raw_path=PREFIX.encode() + b"/bucket/key")
    assert authenticate(sent, USERS, prefix=PREFIX) is not None
    raises(errors.SignatureDoesNotMatch, sent)


def test_any_region_unless_checked() -> None:
    _, req = sign(region="eu-west-1")
    assert authenticate(req, USERS) is not None
    error = raises(errors.AuthorizationHeaderMalformed, req, region_check=True)
    assert error.fields["Region"] == "us-east-1"
    assert "eu-west-1" in error.message
    assert authenticate(req, USERS, region_check=True, region="eu-west-1") is not None


# -- one byte changed ----------------------------------------------------------------


def _put() -> SignedRequest:
    url = f"http://{HOST}{PREFIX}/bucket/some%20key?partNumber=1&uploadId=abc"
    return sign("PUT", url=url, body=b"payload", headers={"x-amz-meta-colour": "blue"})[1]


TAMPERING: list[tuple[str, Callable[[SignedRequest], SignedRequest], type[errors.S3Error]]] = [
    ("method", lambda r: dataclasses.replace(r, method="POST"), errors.SignatureDoesNotMatch),
    (
        "path",
        lambda r: dataclasses.replace(r, raw_path=r.raw_path.replace(b"key", b"kez")),
        errors.SignatureDoesNotMatch,
    ),
    (
        "prefix",
        lambda r: dataclasses.replace(r, raw_path=r.raw_path.replace(b"/v1/", b"/v2/")),
        errors.SignatureDoesNotMatch,
    ),
    (
        "query",
        lambda r: dataclasses.replace(r, raw_query=r.raw_query.replace(b"=1", b"=2")),
        errors.SignatureDoesNotMatch,
    ),
    (
        "added query",
        lambda r: dataclasses.replace(r, raw_query=r.raw_query + b"&x=1"),
        errors.SignatureDoesNotMatch,
    ),
    (
        "signed header",
        lambda r: with_headers(r, x_amz_meta_colour="blux"),
        errors.SignatureDoesNotMatch,
    ),
    (
        "host",
        lambda r: with_headers(r, host="127.0.0.1:8001"),
        errors.SignatureDoesNotMatch,
    ),
    (
        "content sha256",
        lambda r: with_headers(r, x_amz_content_sha256=flip(header(r, "x-amz-content-sha256"))),
        errors.SignatureDoesNotMatch,
    ),
    (
        "time",
        lambda r: with_headers(r, x_amz_date="20260501T120001Z"),
        errors.SignatureDoesNotMatch,
    ),
    (
        "date",
        lambda r: with_headers(r, x_amz_date="20260502T120000Z"),
        errors.AuthorizationHeaderMalformed,
    ),
    (
        "access key",
        lambda r: with_headers(
            r, authorization=header(r, "authorization").replace("AKIDALICE", "AKIDALICF")
        ),
        errors.InvalidAccessKeyId,
    ),
    (
        "signature",
        lambda r: with_headers(r, authorization=flip(header(r, "authorization"))),
        errors.SignatureDoesNotMatch,
    ),
    (
        "unsigned x-amz header added",
        lambda r: with_headers(r, x_amz_acl="public-read"),
        errors.AccessDenied,
    ),
    (
        "clock skew",
        lambda r: dataclasses.replace(r, now=r.now + 15 * 60 + 1),
        errors.RequestTimeTooSkewed,
    ),
    (
        "clock skew behind",
        lambda r: dataclasses.replace(r, now=r.now - 15 * 60 - 1),
        errors.RequestTimeTooSkewed,
    ),
]


def test_untampered_put_verifies() -> None:
    assert authenticate(_put(), USERS, prefix=PREFIX) is not None
    ok = dataclasses.replace(_put(), now=NOW + 15 * 60)
    assert authenticate(ok, USERS) is not None


@pytest.mark.parametrize(
    ("change", "error"), [(t[1], t[2]) for t in TAMPERING], ids=[t[0] for t in TAMPERING]
)
def test_one_change_is_refused(
    change: Callable[[SignedRequest], SignedRequest], error: type[errors.S3Error]
) -> None:
    raises(error, change(_put()), prefix=PREFIX)


def test_another_users_secret_reports_what_aws_reports() -> None:
    impostor = User(ALICE.access_key, BOB.secret_key, "x", "x")
    request, req = sign("PUT", body=b"payload", user=impostor)
    error = raises(errors.SignatureDoesNotMatch, req)
    assert error.status == 403
    # The fields of AWS's error document, and botocore agrees with our canonical form.
    signer = S3SigV4Auth(Credentials(ALICE.access_key, ALICE.secret_key), "s3", "us-east-1")
    del request.headers["Authorization"]
    canonical = signer.canonical_request(request)
    assert error.fields["CanonicalRequest"] == canonical
    assert error.fields["StringToSign"] == signer.string_to_sign(request, canonical)
    assert error.fields["AWSAccessKeyId"] == ALICE.access_key
    assert error.fields["SignatureProvided"] in req.header("authorization")  # type: ignore[operator]
    assert error.fields["CanonicalRequestBytes"].startswith("50 55 54 0a")  # "PUT\n"


def test_missing_content_sha256() -> None:
    _, req = sign(signer=SigV4Auth)  # the generic signer does not add the header
    error = raises(errors.InvalidRequest, req)
    assert error.message == "Missing required header for this request: x-amz-content-sha256"


def test_invalid_content_sha256() -> None:
    _, req = sign(headers={"x-amz-content-sha256": "not-a-digest"})
    req = with_headers(req, x_amz_content_sha256="not-a-digest")
    raises(errors.InvalidArgument, req)


def test_missing_date() -> None:
    _, req = sign()
    headers = {n: req.header_values(n) for n in req.header_names() if n != "x-amz-date"}
    error = raises(errors.AccessDenied, dataclasses.replace(req, headers=headers))
    assert "Date or x-amz-date" in error.message


def test_skew_error_fields() -> None:
    _, req = sign()
    error = raises(errors.RequestTimeTooSkewed, dataclasses.replace(req, now=NOW + 3600))
    assert error.fields == {
        "RequestTime": "20260501T120000Z",
        "ServerTime": "2026-05-01T13:00:00Z",
        "MaxAllowedSkewMilliseconds": "900000",
    }


def test_both_header_and_query_auth() -> None:
    _, header_signed = sign()
    query_signed = presign()
    both = dataclasses.replace(
        header_signed, raw_query=query_signed.raw_query, raw_path=query_signed.raw_path
    )
    raises(errors.InvalidArgument, both)


# -- presigned ------------------------------------------------------------------------


def test_presigned_verifies() -> None:
    req = presign()
    result = authenticate(req, USERS)
    assert result is not None
    assert (result.user, result.payload, result.presigned) == (ALICE, "UNSIGNED-PAYLOAD", True)


@pytest.mark.parametrize("prefix", ["", PREFIX])
@pytest.mark.parametrize("key", SPECIAL_KEYS)
def test_presigned_special_keys_from_boto3(prefix: str, key: str) -> None:
    client = Captured(f"http://{HOST}{prefix}").client
    with frozen():
        url = client.generate_presigned_url(
            "get_object",
            Params={"Bucket": "bucket", "Key": key, "ResponseContentDisposition": "a; b=\u00e9"},
            ExpiresIn=600,
        )
    parts = urlsplit(url)
    req = SignedRequest(
        "GET", parts.path.encode(), parts.query.encode(), {"host": [parts.netloc]}, NOW + 599
    )
    assert authenticate(req, USERS, prefix=PREFIX) is not None
    raises(errors.AccessDenied, dataclasses.replace(req, now=NOW + 601))


def test_presigned_expired() -> None:
    req = presign(expires=60)
    assert authenticate(dataclasses.replace(req, now=NOW + 60), USERS) is not None
    error = raises(errors.AccessDenied, dataclasses.replace(req, now=NOW + 61))
    assert error.message == "Request has expired"
    assert error.fields == {
        "X-Amz-Expires": "60",
        "Expires": "2026-05-01T12:01:00Z",
        "ServerTime": "2026-05-01T12:01:01Z",
    }


def test_presigned_for_a_week_at_most() -> None:
    assert authenticate(presign(expires=604800), USERS) is not None
    error = raises(errors.AuthorizationQueryParametersError, presign(expires=604801))
    assert "604800" in error.message


def test_presigned_not_yet_valid() -> None:
    raises(errors.AccessDenied, dataclasses.replace(presign(), now=NOW - 3600))


def test_presigned_with_content_sha256_header() -> None:
    req = with_headers(presign(), x_amz_content_sha256=hashlib.sha256(b"").hexdigest())
    result = authenticate(req, USERS)
    assert result is not None and result.payload == "UNSIGNED-PAYLOAD"


def _replace_query(req: SignedRequest, old: bytes, new: bytes) -> SignedRequest:
    assert old in req.raw_query
    return dataclasses.replace(req, raw_query=req.raw_query.replace(old, new))


PRESIGNED_TAMPERING: list[tuple[str, bytes, bytes, type[errors.S3Error]]] = [
    ("operation param", b"x=1", b"x=2", errors.SignatureDoesNotMatch),
    ("expires", b"X-Amz-Expires=3600", b"X-Amz-Expires=3601", errors.SignatureDoesNotMatch),
    ("time", b"T120000Z", b"T120001Z", errors.SignatureDoesNotMatch),
    (
        "date",
        b"X-Amz-Date=20260501",
        b"X-Amz-Date=20260502",
        errors.AuthorizationQueryParametersError,
    ),
    ("access key", b"AKIDALICE", b"AKIDALICF", errors.InvalidAccessKeyId),
    (
        "algorithm",
        b"AWS4-HMAC-SHA256",
        b"AWS4-HMAC-SHA512",
        errors.AuthorizationQueryParametersError,
    ),
    ("credential", b"%2Fs3%2F", b"%2Fec2%2F", errors.AuthorizationQueryParametersError),
    ("credential form", b"%2Faws4_request", b"", errors.AuthorizationQueryParametersError),
    ("signed headers", b"SignedHeaders=host", b"SignedHeaders=range", errors.AccessDenied),
    ("missing date", b"X-Amz-Date=", b"X-Amz-Datum=", errors.AuthorizationQueryParametersError),
    ("bad date", b"T120000Z", b"T1200Z", errors.AuthorizationQueryParametersError),
    (
        "bad expires",
        b"X-Amz-Expires=3600",
        b"X-Amz-Expires=ab",
        errors.AuthorizationQueryParametersError,
    ),
    (
        "negative",
        b"X-Amz-Expires=3600",
        b"X-Amz-Expires=-1",
        errors.AuthorizationQueryParametersError,
    ),
    (
        "empty signature",
        b"X-Amz-Signature=",
        b"X-Amz-Signature=&x=",
        errors.AuthorizationQueryParametersError,
    ),
    ("v2 signature too", b"x=1", b"Signature=abc", errors.InvalidArgument),
]


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [t[1:] for t in PRESIGNED_TAMPERING],
    ids=[t[0] for t in PRESIGNED_TAMPERING],
)
def test_presigned_change_is_refused(old: bytes, new: bytes, error: type[errors.S3Error]) -> None:
    req = presign(url=f"http://{HOST}/bucket/key?x=1")
    assert authenticate(req, USERS) is not None
    if new == b"X-Amz-Signature=&x=":  # drop the signature's value
        start = req.raw_query.index(b"X-Amz-Signature=")
        req = dataclasses.replace(req, raw_query=req.raw_query[:start] + b"X-Amz-Signature=")
    else:
        req = _replace_query(req, old, new)
    raises(error, req)


def test_presigned_path_change_is_refused() -> None:
    req = presign()
    raises(errors.SignatureDoesNotMatch, dataclasses.replace(req, raw_path=b"/bucket/kez"))
    raises(errors.SignatureDoesNotMatch, dataclasses.replace(req, method="DELETE"))


def test_presigned_with_another_users_secret() -> None:
    req = presign(user=User(ALICE.access_key, BOB.secret_key, "x", "x"))
    error = raises(errors.SignatureDoesNotMatch, req)
    assert "X-Amz-Signature" not in error.fields["CanonicalRequest"]
    assert error.fields["CanonicalRequest"].endswith("\nhost\nUNSIGNED-PAYLOAD")


# -- malformed Authorization headers -------------------------------------------------

GOOD_CREDENTIAL = "AKIDALICE/20260501/us-east-1/s3/aws4_request"
GOOD_SIGNED = "host;x-amz-content-sha256;x-amz-date"
SIG = "a" * 64


def _v4(credential: str = GOOD_CREDENTIAL, signed: str = GOOD_SIGNED, sig: str = SIG) -> str:
    return f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={sig}"


MALFORMED: list[tuple[str, type[errors.S3Error]]] = [
    ("AWS4-HMAC-SHA256", errors.AuthorizationHeaderMalformed),
    ("AWS4-HMAC-SHA256 ", errors.AuthorizationHeaderMalformed),
    ("AWS4-HMAC-SHA256 ,,,", errors.AuthorizationHeaderMalformed),
    (
        f"AWS4-HMAC-SHA256 Credential={GOOD_CREDENTIAL}, SignedHeaders={GOOD_SIGNED}",
        errors.AuthorizationHeaderMalformed,
    ),
    (
        f"AWS4-HMAC-SHA256 SignedHeaders={GOOD_SIGNED}, Signature={SIG}",
        errors.AuthorizationHeaderMalformed,
    ),
    (
        f"AWS4-HMAC-SHA256 Credential={GOOD_CREDENTIAL}, Signature={SIG}",
        errors.AuthorizationHeaderMalformed,
    ),
    (_v4(sig=""), errors.AuthorizationHeaderMalformed),
    (_v4(signed=""), errors.AuthorizationHeaderMalformed),
    (_v4(signed="host;;x-amz-date"), errors.AuthorizationHeaderMalformed),
    (_v4() + ", Foo=bar", errors.AuthorizationHeaderMalformed),
    (_v4() + f", Signature={SIG}", errors.AuthorizationHeaderMalformed),
    (_v4().replace("Credential=", "Credential "), errors.AuthorizationHeaderMalformed),
    (_v4().replace("Credential", "Cr\u00e9dential"), errors.AuthorizationHeaderMalformed),
    (_v4(credential="AKIDALICE/20260501/us-east-1/s3"), errors.AuthorizationHeaderMalformed),
    (_v4(credential="AKIDALICE"), errors.AuthorizationHeaderMalformed),
    (_v4(credential="/20260501/us-east-1/s3/aws4_request"), errors.AuthorizationHeaderMalformed),
    (
        _v4(credential="AKIDALICE/2026051/us-east-1/s3/aws4_request"),
        errors.AuthorizationHeaderMalformed,
    ),
    (
        _v4(credential="AKIDALICE/20260502/us-east-1/s3/aws4_request"),
        errors.AuthorizationHeaderMalformed,
    ),
    (_v4(credential="AKIDALICE/20260501//s3/aws4_request"), errors.AuthorizationHeaderMalformed),
    (
        _v4(credential="AKIDALICE/20260501/us-east-1/ec2/aws4_request"),
        errors.AuthorizationHeaderMalformed,
    ),
    (
        _v4(credential="AKIDALICE/20260501/us-east-1/s3/aws4_requesT"),
        errors.AuthorizationHeaderMalformed,
    ),
    (_v4(credential="a/b/c/d/e"), errors.AuthorizationHeaderMalformed),
    (_v4(signed="x-amz-content-sha256;x-amz-date"), errors.AccessDenied),
    (_v4(signed="host"), errors.SignatureDoesNotMatch),  # x-amz-date, sha256: signed anyway
    (_v4(signed="host;x-amz-date"), errors.SignatureDoesNotMatch),
    (_v4(signed="h\u00f4st;host"), errors.SignatureDoesNotMatch),
    (_v4(credential="NOBODY/20260501/us-east-1/s3/aws4_request"), errors.InvalidAccessKeyId),
    (_v4(sig="not hex at all"), errors.SignatureDoesNotMatch),
    (_v4(sig=SIG.upper()), errors.SignatureDoesNotMatch),
    (_v4().replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"), errors.InvalidArgument),
    (_v4().replace("AWS4-HMAC-SHA256", "aws4-hmac-sha256"), errors.InvalidArgument),
    (_v4().replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"), errors.InvalidArgument),
    ("", errors.InvalidArgument),
    ("   ", errors.InvalidArgument),
    ("Bearer abc.def", errors.InvalidArgument),
    ("garbage", errors.InvalidArgument),
    ("\x00\xff\x7f", errors.InvalidArgument),
    ("AWS", errors.InvalidArgument),
    ("AWS AKIDALICE", errors.InvalidArgument),
    ("AWS AKIDALICE:", errors.InvalidArgument),
    ("AWS :c2lnbmF0dXJl", errors.InvalidAccessKeyId),  # boto 2 with empty keys
    ("AWS NOBODY:c2lnbmF0dXJl", errors.InvalidAccessKeyId),
]


@pytest.mark.parametrize(("authorization", "error"), MALFORMED)
def test_malformed_authorization(authorization: str, error: type[errors.S3Error]) -> None:
    headers = {
        "host": [HOST],
        "x-amz-date": ["20260501T120000Z"],
        "date": ["Fri, 01 May 2026 12:00:00 GMT"],
        "x-amz-content-sha256": [hashlib.sha256(b"").hexdigest()],
        "authorization": [authorization],
    }
    raises(error, SignedRequest("GET", b"/bucket/key", b"", headers, NOW))


def test_malformed_messages_are_aws_messages() -> None:
    def message(authorization: str) -> str:
        headers = {"host": [HOST], "x-amz-date": ["20260501T120000Z"]}
        headers["authorization"] = [authorization]
        with pytest.raises(errors.S3Error) as info:
            authenticate(SignedRequest("GET", b"/b", b"", headers, NOW), USERS)
        return info.value.message

    assert message("AWS4-HMAC-SHA256") == (
        "The authorization header is malformed; the authorization header requires three "
        "components: Credential, SignedHeaders, and Signature."
    )
    assert message(_v4(credential="AKIDALICE/20260502/us-east-1/s3/aws4_request")) == (
        'The authorization header is malformed; Invalid credential date "20260502". '
        'This date is not the same as X-Amz-Date: "20260501".'
    )
    assert message("Bearer x") == "Unsupported Authorization Type"


# -- streaming: AWS's published example ----------------------------------------------

AWS_KEY = User("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws", "aws")
AWS_NOW = float(calendar.timegm((2013, 5, 24, 0, 0, 0)))
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNKS = [
    (65536, b"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
    (1024, b"0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
    (0, b"b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
]
TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
TRAILER_CHUNKS = [
    (65536, b"b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2"),
    (1024, b"1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7"),
    (0, b"2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"),
]
TRAILER = b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
TRAILER_SIGNATURE = b"d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"


def aws_streaming_put() -> AuthResult:
    """AWS's example PUT of 66560 'a's in 64 KiB chunks, authenticated by us."""
    signed = (
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class"
    )
    headers = {
        "host": ["s3.amazonaws.com"],
        "x-amz-date": ["20130524T000000Z"],
        "x-amz-storage-class": ["REDUCED_REDUNDANCY"],
        "authorization": [
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            f"aws4_request,SignedHeaders={signed},Signature={SEED}"
        ],
        "x-amz-content-sha256": ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD"],
        "content-encoding": ["aws-chunked"],
        "x-amz-decoded-content-length": ["66560"],
        "content-length": ["66824"],
    }
    req = SignedRequest("PUT", b"/examplebucket/chunkObject.txt", b"", headers, AWS_NOW)
    result = authenticate(req, {AWS_KEY.access_key: AWS_KEY})
    assert result is not None
    return result


def digest(size: int, fill: bytes = b"a") -> str:
    return hashlib.sha256(fill * size).hexdigest()


def test_published_seed_signature_verifies() -> None:
    result = aws_streaming_put()
    assert result.payload == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    assert result.seed_signature == SEED
    assert result.scope == "20130524/us-east-1/s3/aws4_request"


def test_published_chunk_signatures_verify() -> None:
    verifier = ChunkVerifier(aws_streaming_put())
    for size, signature in CHUNKS:
        verifier.verify_chunk(signature, digest(size))


def test_a_modified_chunk_is_refused() -> None:
    verifier = ChunkVerifier(aws_streaming_put())
    verifier.verify_chunk(CHUNKS[0][1], digest(CHUNKS[0][0]))
    modified = hashlib.sha256(b"a" * 1023 + b"b").hexdigest()
    with pytest.raises(errors.SignatureDoesNotMatch):
        verifier.verify_chunk(CHUNKS[1][1], modified)


@pytest.mark.parametrize(
    "order",
    [[1, 0, 2], [0, 2], [0, 0, 1, 2]],
    ids=["reordered", "dropped", "repeated"],
)
def test_chunks_out_of_sequence_are_refused(order: list[int]) -> None:
    verifier = ChunkVerifier(aws_streaming_put())
    with pytest.raises(errors.SignatureDoesNotMatch):
        for index in order:
            size, signature = CHUNKS[index]
            verifier.verify_chunk(signature, digest(size))


def test_a_modified_chunk_signature_is_refused() -> None:
    verifier = ChunkVerifier(aws_streaming_put())
    with pytest.raises(errors.SignatureDoesNotMatch):
        verifier.verify_chunk(flip(CHUNKS[0][1].decode()).encode(), digest(65536))


def test_a_chunk_under_another_seed_is_refused() -> None:
    result = dataclasses.replace(aws_streaming_put(), seed_signature=TRAILER_SEED)
    with pytest.raises(errors.SignatureDoesNotMatch):
        ChunkVerifier(result).verify_chunk(CHUNKS[0][1], digest(65536))


def _trailer_verifier() -> ChunkVerifier:
    result = dataclasses.replace(
        aws_streaming_put(),
        payload="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        seed_signature=TRAILER_SEED,
    )
    verifier = ChunkVerifier(result)
    for size, signature in TRAILER_CHUNKS:
        verifier.verify_chunk(signature, digest(size))
    return verifier


def test_published_trailer_signature_verifies() -> None:
    _trailer_verifier().verify_trailer(TRAILER, TRAILER_SIGNATURE)
    # The signature line itself may be passed along; it is not part of what is signed.
    _trailer_verifier().verify_trailer(
        TRAILER + b"x-amz-trailer-signature:" + TRAILER_SIGNATURE + b"\r\n", TRAILER_SIGNATURE
    )
    _trailer_verifier().verify_trailer(b"X-Amz-Checksum-Crc32c: sOO8/Q==\n", TRAILER_SIGNATURE)


def test_a_modified_trailer_is_refused() -> None:
    with pytest.raises(errors.SignatureDoesNotMatch):
        _trailer_verifier().verify_trailer(TRAILER.replace(b"Q==", b"R=="), TRAILER_SIGNATURE)


def test_canonical_trailer() -> None:
    text = b"x-amz-checksum-crc32:AAAAAA==\r\nX-Amz-Meta-A:  b \r\n\r\n"
    assert canonical_trailer(text) == b"x-amz-checksum-crc32:AAAAAA==\nx-amz-meta-a:b\n"


def test_chunk_verifier_needs_a_sigv4_result() -> None:
    with pytest.raises(ValueError):
        ChunkVerifier(AuthResult(user=ALICE, payload="UNSIGNED-PAYLOAD", version=2))


# -- hostile input: an S3 error or a result, never another exception -----------------


def _mutations(rng: random.Random, data: bytes) -> bytes:
    alphabet = b"=&;,/%+ :\x00\xff\xc3\xa9aZ09-_.~\t"
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        position = rng.randint(0, len(out))
        action = rng.choice(["insert", "delete", "replace"])
        if action == "insert" or not out:
            out[position:position] = bytes([rng.choice(alphabet)])
        elif action == "delete":
            del out[min(position, len(out) - 1)]
        else:
            out[min(position, len(out) - 1)] = rng.choice(alphabet)
    return bytes(out)


def test_hostile_input_raises_only_s3_errors() -> None:
    from tests.unit.test_sigv2 import boto2_signed, boto2_url

    rng = random.Random(1234)
    samples = [_put(), presign(url=f"http://{HOST}/bucket/key?x=1"), boto2_signed(), boto2_url()]
    for _ in range(3000):
        req = rng.choice(samples)
        target = rng.choice(["authorization", "query", "path", "date", "sha256", "method"])
        if target == "query":
            req = dataclasses.replace(req, raw_query=_mutations(rng, req.raw_query))
        elif target == "path":
            req = dataclasses.replace(req, raw_path=_mutations(rng, req.raw_path))
        elif target == "method":
            method = _mutations(rng, req.method.encode()).decode("latin-1")
            req = dataclasses.replace(req, method=method)
        else:
            name = {"date": "x-amz-date", "sha256": "x-amz-content-sha256"}.get(target, target)
            value = (req.header(name) or "").encode("latin-1")
            req = with_headers(
                req, **{name.replace("-", "_"): _mutations(rng, value).decode("latin-1")}
            )
        try:
            result = authenticate(req, USERS, prefix=PREFIX)
        except errors.S3Error as error:
            assert 400 <= error.status < 600
            assert all(isinstance(v, str) for v in error.fields.values())
        else:
            assert result is None or result.user in (ALICE, BOB)
