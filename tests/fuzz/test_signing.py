"""SigV4 and SigV2 against botocore, for generated requests.

Methods, keys with odd characters, queries with repeated, empty, valueless and
non-ASCII parameters, headers with runs of spaces and mixed case: botocore signs
(``S3SigV4Auth``, ``S3SigV4QueryAuth``, ``HmacV1Auth``, ``HmacV1QueryAuth``), our
canonical request gives the very same signature, and ``authenticate`` accepts the
request. Then one byte of the request is changed: it is refused with an S3Error
unless the change names the very same request (hex digits in another case, a space
that canonicalisation trims), and nothing but an S3Error ever comes out.
"""

from __future__ import annotations

import dataclasses
import hmac
from urllib.parse import quote, unquote_to_bytes, urlencode

from botocore.auth import HmacV1Auth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import assume, given
from hypothesis import strategies as st

from s3proxy.auth import canonical, sigv2
from s3proxy.auth.request import wire_bytes
from s3proxy.auth.sigv4 import SignedRequest, authenticate
from s3proxy.errors import S3Error
from tests.unit.signing import ALICE, HOST, PREFIX, USERS
from tests.unit.test_sigv2 import FixedHmacV1Auth, FixedHmacV1QueryAuth
from tests.unit.test_sigv4 import frozen, wire

METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD"]
buckets = st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True)
# Keys: anything, '/' runs, dots, percent signs, unicode; no surrogates (not UTF-8).
keys = st.text(st.characters(blacklist_categories=("Cs",)) | st.sampled_from("/./%+~ ?#&=")).filter(
    lambda k: len(k.encode()) <= 1024
)
param_names = st.sampled_from(
    [
        "prefix",
        "marker",
        "x-id",
        "uploads",
        "acl",
        "tagging",
        "uploadId",
        "partNumber",
        "versionId",
        "list-type",
        "a b",
        "\u00fc",
        "response-content-type",
        "Z",
        "a",
    ]
) | st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
param_values = st.none() | st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
queries = st.lists(st.tuples(param_names, param_values), max_size=6)
# Header values: printable ASCII with runs of spaces and tabs. Not Latin-1: botocore
# hashes a header's text as UTF-8 but http.client sends it as Latin-1, so no server
# (AWS included) can verify such a signature (a known botocore limitation).
header_text = st.builds(
    lambda lead, visible, middle, trail: lead + visible + middle + trail,
    st.sampled_from(["", " ", "  ", "\t"]),
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"), max_size=20),
    st.sampled_from(["", " ", "\t "]),
)
header_names = st.sampled_from(
    [
        "Content-Type",
        "x-amz-meta-Colour",
        "X-Amz-Meta-note",
        "x-amz-acl",
        "Content-MD5",
        "x-amz-tagging",
        "X-Custom",
        "Cache-Control",
    ]
)
headers = st.dictionaries(header_names, header_text, max_size=4)


def params(req: SignedRequest) -> dict[str, str]:
    """The raw (still encoded) query parameters, the first value of each."""
    out: dict[str, str] = {}
    for piece in req.raw_query.decode().split("&"):
        name, _, value = piece.partition("=")
        out.setdefault(name, value)
    return out


def encode(text: str) -> str:
    return quote(text.encode("utf-8"), safe="-_.~")


def url_of(bucket: str, key: str, query: list[tuple[str, str | None]], prefix: bool) -> str:
    path = (PREFIX if prefix else "") + "/" + bucket + "/" + quote(key.encode(), safe="/~")
    pieces = [encode(n) if v is None else f"{encode(n)}={encode(v)}" for n, v in query]
    return f"http://{HOST}{path}" + ("?" + "&".join(pieces) if pieces else "")


def sigv4_signed(
    method: str, url: str, hdrs: dict[str, str], presigned: bool
) -> tuple[SignedRequest, str]:
    """What botocore sends, and the signature it computed."""
    request = AWSRequest(method=method, url=url, headers=dict(hdrs))
    credentials = Credentials(ALICE.access_key, ALICE.secret_key)
    with frozen():
        if presigned:
            S3SigV4QueryAuth(credentials, "s3", "us-east-1", expires=3600).add_auth(request)
        else:
            request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
            S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
    req = wire(request.prepare())
    if presigned:
        signature = params(req)["X-Amz-Signature"]
    else:
        signature = (req.header("authorization") or "").rsplit("Signature=", 1)[1]
    return req, signature


def our_sigv4(req: SignedRequest, presigned: bool) -> str:
    """The signature our canonicalisation gives the request, the path as sent."""
    if presigned:
        signed_headers = unquote_to_bytes(params(req)["X-Amz-SignedHeaders"]).decode()
        amz_date = params(req)["X-Amz-Date"]
        payload = "UNSIGNED-PAYLOAD"
    else:
        authorization = req.header("authorization") or ""
        signed_headers = authorization.split("SignedHeaders=")[1].split(",")[0]
        amz_date = req.header("x-amz-date") or ""
        payload = req.header("x-amz-content-sha256") or ""
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    header_lines = [
        (name, canonical.canonical_header_value(wire_bytes(v) for v in req.header_values(name)))
        for name in signed_headers.split(";")
    ]
    exclude = frozenset({"X-Amz-Signature"}) if presigned else frozenset()
    request = canonical.canonical_request(
        req.method,
        req.raw_path,
        canonical.canonical_query(req.raw_query, exclude),
        header_lines,
        signed_headers,
        payload,
    )
    key = canonical.signing_key(ALICE.secret_key, amz_date[:8], "us-east-1", "s3")
    return canonical.sign(key, canonical.string_to_sign(amz_date, scope, request))


def sigv2_signed(
    method: str, url: str, hdrs: dict[str, str], presigned: bool
) -> tuple[SignedRequest, str]:
    request = AWSRequest(method=method, url=url, headers=dict(hdrs))
    credentials = Credentials(ALICE.access_key, ALICE.secret_key)
    signer: HmacV1Auth = (
        FixedHmacV1QueryAuth(credentials) if presigned else FixedHmacV1Auth(credentials)
    )
    signer.add_auth(request)
    req = wire(request.prepare())
    if presigned:
        signature = unquote_to_bytes(params(req)["Signature"]).decode()
    else:
        signature = (req.header("authorization") or "").rsplit(":", 1)[1]
    return req, signature


# A presigned URL's own parameters are the signer's; a query naming them already is
# not something a client can presign. Nor are x-amz-*, Content-Type and Content-MD5
# parameters: a presigned SigV2 URL carries signed headers that way (S3, and we, sign
# them as headers; botocore, which moves headers there itself, does not expect any).
AUTH_PARAMS = {"expires", "signature", "awsaccesskeyid", "content-type", "content-md5"}


def without_auth_params(case: tuple) -> tuple:
    method, bucket, key, query, hdrs, presigned, prefix = case
    if presigned:
        query = [
            (n, v)
            for n, v in query
            if n.lower() not in AUTH_PARAMS and not n.lower().startswith("x-amz-")
        ]
    return method, bucket, key, query, hdrs, presigned, prefix


requests = st.tuples(
    st.sampled_from(METHODS), buckets, keys, queries, headers, st.booleans(), st.booleans()
).map(without_auth_params)


@given(requests)
def test_sigv4_equals_botocore_and_is_accepted(case: tuple) -> None:
    method, bucket, key, query, hdrs, presigned, prefix = case
    req, signature = sigv4_signed(method, url_of(bucket, key, query, prefix), hdrs, presigned)
    assert our_sigv4(req, presigned) == signature
    result = authenticate(req, USERS, prefix=PREFIX)
    assert result is not None and result.user == ALICE and result.version == 4


@given(requests)
def test_sigv2_equals_botocore_and_is_accepted(case: tuple) -> None:
    method, bucket, key, query, hdrs, presigned, prefix = case
    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "x-amz-tagging"} if presigned else hdrs
    req, signature = sigv2_signed(method, url_of(bucket, key, query, prefix), hdrs, presigned)
    date = params(req)["Expires"].encode() if presigned else wire_bytes(req.header("date") or "")
    moved = (
        {}
        if not presigned
        else {
            unquote_to_bytes(n).decode().lower(): unquote_to_bytes(v).decode()
            for n, _, v in (p.partition("=") for p in req.raw_query.decode().split("&"))
            if unquote_to_bytes(n).decode().lower().startswith("x-amz-")
            or unquote_to_bytes(n).decode().lower() in ("content-type", "content-md5")
        }
    )
    text = sigv2.string_to_sign(
        req, date, sigv2.canonical_resource(req.raw_path, req.raw_query), moved
    )
    assert hmac.compare_digest(sigv2.sign(ALICE.secret_key, text), signature)
    result = authenticate(req, USERS, prefix=PREFIX)
    assert result is not None and result.user == ALICE and result.version == 2


# -- one byte changed ---------------------------------------------------------------------


def meaning(req: SignedRequest, version: int) -> tuple:
    """What a request asks for, as far as its signature covers it: the method, the
    resource decoded, the decoded query, and every header the signature can cover in
    canonical form. Two requests with the same meaning may share a signature."""
    pairs = sorted(
        (unquote_to_bytes(n), unquote_to_bytes(v))
        for n, _, v in (p.partition(b"=") for p in req.raw_query.split(b"&") if p)
    )
    authorization = req.header("authorization") or ""
    if version == 4:
        listed = authorization.partition("SignedHeaders=")[2].partition(",")[0] or (
            unquote_to_bytes(params(req).get("X-Amz-SignedHeaders", "")).decode()
        )
        covered = {name.strip().lower() for name in listed.split(";")}
    else:
        covered = {"content-md5", "content-type", "date"}
    header_view = sorted(
        (name, canonical.canonical_header_value(wire_bytes(v) for v in req.header_values(name)))
        for name in req.header_names()
        if name in covered or name.startswith("x-amz-")
    )
    components = sorted(
        (part.strip().partition("=")[0], part.strip().partition("=")[2].strip())
        for part in authorization.partition(" ")[2].split(",")
    )
    return (
        req.method.upper(),
        unquote_to_bytes(req.raw_path),
        pairs,
        header_view,
        authorization.strip().partition(" ")[0],
        components if version == 4 else authorization.strip(),
    )


def changed(req: SignedRequest, where: str, index: int, byte: int) -> SignedRequest | None:
    if where == "method":
        text = bytearray(req.method.encode())
        text[index % len(text)] = byte
        return dataclasses.replace(req, method=text.decode("latin-1"))
    if where in ("path", "query"):
        raw = bytearray(req.raw_path if where == "path" else req.raw_query)
        if not raw or byte in b"?# \r\n":
            return None
        raw[index % len(raw)] = byte
        return dataclasses.replace(req, **{f"raw_{where}": bytes(raw)})
    names = req.header_names()
    name = names[index % len(names)]
    value = bytearray(wire_bytes(req.header(name) or "x"))
    if not value or byte in b"\r\n":
        return None
    value[(index // len(names)) % len(value)] = byte
    new_headers = {n: list(req.header_values(n)) for n in names}
    new_headers[name] = [value.decode("latin-1")]
    return dataclasses.replace(req, headers=new_headers)


@given(
    requests,
    st.sampled_from([2, 4]),
    st.sampled_from(["method", "path", "query", "header"]),
    st.integers(0, 10_000),
    st.integers(0x20, 0xFF),
)
def test_changed_byte_is_refused(
    case: tuple, version: int, where: str, index: int, byte: int
) -> None:
    method, bucket, key, query, hdrs, presigned, prefix = case
    signer = sigv4_signed if version == 4 else sigv2_signed
    if version == 2 and presigned:
        hdrs = {k: v for k, v in hdrs.items() if k.lower() != "x-amz-tagging"}
    req, _ = signer(method, url_of(bucket, key, query, prefix), hdrs, presigned)
    other = changed(req, where, index, byte)
    assume(other is not None and other != req)
    assert other is not None
    try:
        result = authenticate(other, USERS, prefix=PREFIX)
    except S3Error as e:
        assert e.status in (400, 403), repr(e)
        return
    if result is None:
        return  # no credentials left at all: an anonymous request, not Alice's
    # Accepted as Alice's: then it asks for exactly what was signed.
    if version == 2 and where == "method":
        assert other.method.upper() == req.method.upper()
        return
    original, new = meaning(req, version), meaning(other, version)
    if new != original and where == "query" and b"+" in other.raw_query:
        plus = dataclasses.replace(other, raw_query=other.raw_query.replace(b"+", b"%20"))
        new = meaning(plus, version)
    if new != original and version == 2:
        # SigV2 signs only the sub-resource parameters and a few headers.
        assert where in ("query", "header"), (where, new, original)
        return
    assert new == original, (where, other)


def test_urlencode_matches_the_encoding_used_here() -> None:
    """The generated queries are encoded as botocore encodes params (sanity check)."""
    assert url_of("b", "k", [("a b", "\u00fc"), ("x", None)], False).endswith(
        "?" + urlencode([("a b", "\u00fc")], quote_via=quote, safe="-_.~") + "&x"
    )
