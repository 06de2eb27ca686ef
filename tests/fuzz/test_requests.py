"""Whole requests, generated, through the in-process application.

The site is driven byte by byte as in tests/channel (HTTPChannel over a
StringTransport, a Clock for a reactor, MemoryStorage answering at once): arbitrary
methods, paths (percent-encoding good and bad, '//', '..', the API prefix or not),
queries (every sub-resource, listing and multipart parameters, junk values, huge
numbers), headers (ranges, conditions, copy sources, checksums, ACLs, tags, aws-chunked
framing, authorization) and small bodies (XML documents, aws-chunked, form data),
anonymous, signed with botocore, or in open mode. Every response must be a success or
a well-formed S3 XML error: never a 500, never a traceback, and nothing logged as an
error.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from lxml import etree
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from twisted.web import http
from zope.interface import implementer

from s3proxy.config import Settings
from s3proxy.model import ObjectAttributes
from s3proxy.observe.admin import admin_name
from s3proxy.storage.memory import MemoryStorage
from s3proxy.web.app import OPERATIONS, SUB_RESOURCES, S3Application
from s3proxy.web.request import make_site
from tests.channel.test_streaming_request import parse_responses, result_of
from tests.fuzz.conftest import scaled
from tests.fuzz.test_xml_bodies import VALID
from tests.unit.signing import ALICE, NOW, USERS
from tests.unit.test_sigv4 import frozen

BUCKET = "bkt"
PREFIX = Settings().prefix
SEEDED_UPLOAD: list[str] = []


class Errors:
    """What the application logs at error level (it logs every unexpected exception)."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def __call__(self, event: dict[str, Any]) -> None:
        if "log_failure" in event or event.get("log_level") in (LogLevel.error, LogLevel.critical):
            text = formatEvent(event)
            if "log_failure" in event:
                text += "\n" + event["log_failure"].getTraceback()
            self.found.append(text)


@pytest.fixture(scope="module")
def logged_errors() -> Iterator[Errors]:
    errors = Errors()
    observer = implementer(ILogObserver)(errors)
    globalLogPublisher.addObserver(observer)
    try:
        yield errors
    finally:
        globalLogPublisher.removeObserver(observer)


def seeded_storage() -> tuple[MemoryStorage, str]:
    """A bucket holding a few objects and an open multipart upload."""
    storage = MemoryStorage()
    result_of(storage.create_bucket(BUCKET))
    for key, data in (("obj", b"0123456789"), ("dir/a b", b"x"), ("empty", b"")):
        writer = result_of(storage.open_writer(BUCKET, key, ObjectAttributes(), None, None))
        writer.write(data)
        result_of(writer.finish())
    upload = result_of(storage.create_multipart_upload(BUCKET, "mp", ObjectAttributes()))
    writer = result_of(storage.open_part_writer(BUCKET, "mp", upload.upload_id, 1, None, None))
    writer.write(b"part")
    result_of(writer.finish())
    return storage, upload.upload_id


class SocketLikeTransport(StringTransport):
    """A StringTransport that, like a TCP transport, lets a producer be unregistered
    twice (HTTPChannel does, when one received chunk holds two malformed headers)."""

    def unregisterProducer(self) -> None:
        self.producer = None


def serve(storage: MemoryStorage, raw: bytes, method: str, signed_users: bool) -> list[Any]:
    """Feed one request's bytes to a fresh site over ``storage``; the parsed responses."""
    clock = Clock()
    clock.advance(NOW)
    app = S3Application(storage, Settings(), reactor=clock, users=USERS if signed_users else None)
    site = make_site(app.resource(), clock)
    protocol: http.HTTPChannel = site.buildProtocol(None)
    transport = SocketLikeTransport()
    protocol.makeConnection(transport)
    for start in range(0, len(raw), 97):  # in slices, as a socket delivers
        if transport.disconnecting:
            break  # a closing socket reads no more
        protocol.dataReceived(raw[start : start + 97])
    clock.advance(0)
    for _ in range(5):  # keep-alive spaces of a long CompleteMultipartUpload, if any
        clock.advance(5)
    return parse_responses(transport.value(), [method])


# -- the generated requests -----------------------------------------------------------------

methods = st.sampled_from(
    ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "get", "TRACE", "M-SEARCH"]
)
path_pieces = st.sampled_from(
    [
        BUCKET,
        "obj",
        "dir",
        "a b",
        "mp",
        "empty",
        "nobucket",
        "..",
        ".",
        "",
        "%2F",
        "%2f",
        "%00",
        "%zz",
        "%c3",
        "%C3%A9",
        "%E2%80%AE",
        "caf\u00e9",
        "-",
        "UPPER",
        "a" * 70,
        "x" * 1100,
        "%0A",
        "~",
        "+",
        "?",
        ";",
        "%25",
        "-/health",
        "-",
    ]
)
paths = st.builds(
    lambda prefix, pieces: (PREFIX if prefix else "") + "/" + "/".join(pieces),
    st.booleans(),
    st.lists(path_pieces, max_size=4),
)
numbers = st.sampled_from(
    [
        "0",
        "1",
        "-1",
        "2",
        "1000",
        "1001",
        "10000",
        "10001",
        "99999999999999999999999",
        "1" * 5000,
        "",
        "x",
        "\u00b2",
        " 3",
        "1.5",
        "0x10",
    ]
)
# The query parameters of the operations, besides their sub-resources.
PLAIN_QUERY_NAMES = [
    "list-type",
    "max-keys",
    "prefix",
    "delimiter",
    "marker",
    "start-after",
    "encoding-type",
    "continuation-token",
    "fetch-owner",
    "max-parts",
    "part-number-marker",
    "max-uploads",
    "key-marker",
    "upload-id-marker",
    "response-content-type",
    "response-expires",
    "x-id",
]
query_names = st.sampled_from(
    [
        *SUB_RESOURCES,
        *PLAIN_QUERY_NAMES,
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "AWSAccessKeyId",
        "Signature",
        "Expires",
        "%zz",
        "a%00",
    ]
)
query_values = st.one_of(
    st.none(),
    numbers,
    st.sampled_from(
        [
            "url",
            "2",
            "true",
            "/",
            "%2F",
            "%zz",
            "%c3",
            "AWS4-HMAC-SHA256",
            "mp",
            "UPLOAD",
            "AKIDALICE/20260501/us-east-1/s3/aws4_request",
            "host",
            "20260501T120000Z",
            "dir/",
            "\u00e9",
        ]
    ),
)


def query_text(pairs: list[tuple[str, str | None]]) -> str:
    return "&".join(n if v is None else f"{n}={v}" for n, v in pairs)


queries = st.lists(st.tuples(query_names, query_values), max_size=4).map(query_text)
chaos = st.tuples(methods, paths, queries)

# Requests shaped like the operations the server knows, so that most reach a handler.
UPLOAD = "UPLOAD-ID"  # replaced by the seeded upload's ID
plain_query_names = st.sampled_from(PLAIN_QUERY_NAMES)
bucket_names = st.sampled_from([BUCKET, BUCKET, BUCKET, "nobucket", "newbkt", "Bad_Name", "a"])
object_keys = st.sampled_from(
    [
        "obj",
        "obj",
        "mp",
        "empty",
        "dir/a%20b",
        "dir/",
        "missing",
        "a%2Fb",
        "%c3",
        "%00",
        "x" * 1100,
        "a//b",
        "../obj",
        "caf%C3%A9",
    ]
)


@st.composite
def operation_requests(draw: st.DrawFn) -> tuple[str, str, str]:
    level, method, sub = draw(st.sampled_from(sorted(OPERATIONS)))
    path = "/"
    if level != "service":
        path += draw(bucket_names)
    if level == "object":
        path += "/" + draw(object_keys)
    if draw(st.booleans()):
        path = PREFIX + path
    pairs: list[tuple[str, str | None]] = []
    if sub:
        ids = st.sampled_from([UPLOAD, UPLOAD, "", "nope", "1"]) | numbers
        pairs.append((sub, draw(ids) if sub in ("uploadId", "partNumber", "versionId") else None))
    if sub == "uploadId" and method == "PUT":
        pairs.append(("partNumber", draw(numbers | st.just("2"))))
    pairs += draw(st.lists(st.tuples(plain_query_names, query_values), max_size=3))
    return method, path, query_text(draw(st.permutations(pairs)))


header_values: dict[str, Any] = {
    "Range": st.sampled_from(
        [
            "bytes=0-1",
            "bytes=-3",
            "bytes=5-",
            "bytes=9-2",
            "bytes=0-1,3-4",
            "bytes=" + "9" * 30 + "-",
            "bytes=-" + "1" * 5000,
            "bytes=x",
            "items=0-1",
            "bytes=99-",
        ]
    ),
    "If-Match": st.sampled_from(["*", '"x"', "", ","]),
    "If-None-Match": st.sampled_from(["*", '"x"', 'W/"y"']),
    "If-Modified-Since": st.sampled_from(["Sat, 01 Jan 2000 00:00:00 GMT", "junk", "", "-1"]),
    "If-Unmodified-Since": st.sampled_from(["Sat, 01 Jan 2000 00:00:00 GMT", "Mon, 99 Foo 1"]),
    "x-amz-copy-source": st.sampled_from(
        [
            f"{BUCKET}/obj",
            f"/{BUCKET}/obj",
            f"{BUCKET}/missing",
            "nobucket/obj",
            f"{BUCKET}/",
            "%zz",
            f"{BUCKET}/obj?versionId=3",
            f"{BUCKET}/%c3",
            f"{BUCKET}/a%00b",
            "/",
            f"{BUCKET}/mp",
            "a%00b/obj",
            f"{BUCKET}/dir/a%20b",
        ]
    ),
    "x-amz-copy-source-range": st.sampled_from(
        ["bytes=0-1", "bytes=-1", "bytes=5-", "nope", "bytes=0-" + "9" * 40]
    ),
    "x-amz-metadata-directive": st.sampled_from(["COPY", "REPLACE", "bogus"]),
    "x-amz-tagging-directive": st.sampled_from(["COPY", "REPLACE", "x"]),
    "Content-MD5": st.sampled_from(["", "abc", "1B2M2Y8AsgTpgAmY7PhCfg==", "!!!!", "AAAA"]),
    "Content-Type": st.sampled_from(
        [
            "text/plain",
            "application/xml",
            "multipart/form-data; boundary=XyZ",
            "multipart/form-data",
            "application/x-www-form-urlencoded",
            "",
        ]
    ),
    "Content-Encoding": st.sampled_from(["aws-chunked", "gzip", "aws-chunked,gzip"]),
    "x-amz-content-sha256": st.sampled_from(
        [
            "UNSIGNED-PAYLOAD",
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
            "0" * 64,
            "zz",
            hashlib.sha256(b"").hexdigest(),
        ]
    ),
    "x-amz-decoded-content-length": numbers,
    "x-amz-trailer": st.sampled_from(["x-amz-checksum-crc32", "x-amz-checksum-bogus", ""]),
    "x-amz-checksum-crc32": st.sampled_from(["AAAAAA==", "bad", ""]),
    "x-amz-checksum-sha256": st.sampled_from(["AAAA", base64.b64encode(b"x" * 32).decode()]),
    "x-amz-checksum-algorithm": st.sampled_from(["CRC32", "SHA1", "MD5", "crc64nvme", ""]),
    "x-amz-sdk-checksum-algorithm": st.sampled_from(["CRC32", "NOPE"]),
    "x-amz-checksum-mode": st.sampled_from(["ENABLED", "x"]),
    "x-amz-tagging": st.sampled_from(
        ["a=b", "a=b&a=c", "=", "%zz", "aws:x=1", "&&", "k=" + "v" * 300]
    ),
    "x-amz-acl": st.sampled_from(["private", "public-read", "bogus", "bucket-owner-full-control"]),
    "x-amz-grant-read": st.sampled_from(
        [
            'id="abc"',
            'uri="http://acs.amazonaws.com/groups/global/AllUsers"',
            "junk",
            'emailAddress="x@y"',
            "id=",
        ]
    ),
    "x-amz-meta-note": st.sampled_from(["x", "y" * 3000, "\u00e9"]),
    "x-amz-object-attributes": st.sampled_from(["ETag,ObjectSize", "Bogus", "", "ObjectParts"]),
    "x-amz-max-parts": numbers,
    "x-amz-part-number-marker": numbers,
    "Origin": st.sampled_from(["http://example.com", "null", ""]),
    "Access-Control-Request-Method": st.sampled_from(["GET", "PUT", "BREW"]),
    "Access-Control-Request-Headers": st.sampled_from(["x-amz-date", "a,,b"]),
    "Authorization": st.sampled_from(
        [
            "AWS AKIDALICE:abc",
            "AWS nocolon",
            "AWS4-HMAC-SHA256 Credential=x",
            "Bearer x",
            "AWS4-HMAC-SHA256 Credential=AKIDALICE/20260501/us-east-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=00",
            "AWS AKIDBOB:" + "A" * 28,
            "",
        ]
    ),
    "x-amz-date": st.sampled_from(["20260501T120000Z", "junk", "19700101T000000Z"]),
    "Date": st.sampled_from(["Fri, 01 May 2026 12:00:00 GMT", "yesterday"]),
    "Host": st.sampled_from([f"{BUCKET}.s3.example.com", "127.0.0.1", "", "UPPER.example.com"]),
    "Expect": st.sampled_from(["100-continue"]),
    "x-amz-expected-bucket-owner": st.sampled_from(["123", "0" * 64]),
}
headers = st.dictionaries(st.sampled_from(sorted(header_values)), st.none(), max_size=4).flatmap(
    lambda chosen: st.fixed_dictionaries({name: header_values[name] for name in chosen})
)


def aws_chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n" % (len(payload), payload)


form = (
    b'--XyZ\r\nContent-Disposition: form-data; name="key"\r\n\r\nup/${filename}\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n"
)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    st.sampled_from(sorted(VALID.values())),
    st.sampled_from(sorted(VALID.values())).map(lambda b: b[: len(b) // 2]),
    st.binary(max_size=40).map(aws_chunked),
    st.just(form),
    st.just(form[:50]),
    st.just(b"<Delete>" + b"<Object><Key>obj</Key></Object>" * 3 + b"</Delete>"),
    st.just(
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part>"
        b"</CompleteMultipartUpload>"
    ),
)


def request_bytes(method: str, target: str, hdrs: dict[str, str], body: bytes) -> bytes:
    hdrs = dict(hdrs)
    hdrs.setdefault("Host", "127.0.0.1")
    hdrs["Content-Length"] = str(len(body))
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in hdrs.items())]
    return "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + body


def signed(method: str, target: str, hdrs: dict[str, str], body: bytes) -> dict[str, str]:
    """``hdrs`` plus botocore's SigV4 Authorization (as Alice, at NOW) for this request."""
    hdrs = {k: v for k, v in hdrs.items() if k not in ("Authorization", "x-amz-date", "Host")}
    hdrs.setdefault("x-amz-content-sha256", hashlib.sha256(body).hexdigest())
    request = AWSRequest(method=method, url="http://127.0.0.1" + target, headers=hdrs, data=body)
    with frozen():
        S3SigV4Auth(Credentials(ALICE.access_key, ALICE.secret_key), "s3", "us-east-1").add_auth(
            request
        )
    out = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
    out["Host"] = "127.0.0.1"
    return out


def check_response(response: Any, method: str, raw: bytes) -> None:
    what = raw[:300]
    assert response.status < 500 or response.status == 501, (response.status, response.body, what)
    assert b"Traceback" not in response.body, what
    assert response.header("content-type") != "text/html", (response.body, what)
    target = raw.split(b" ", 2)[1]
    if admin_name(target.partition(b"?")[0], PREFIX) is not None:
        return  # /-/health, /-/ready, /-/metrics: plain-text admin endpoints, not S3
    if response.status >= 300 and response.status != 304:
        assert response.header("content-type") == "application/xml", (response.headers, what)
        if method == "HEAD":
            return
        assert response.header("content-length") == str(len(response.body)), what
        root = etree.fromstring(response.body)
        assert root.tag == "Error", (response.body, what)
        assert root.findtext("Code"), (response.body, what)
        assert root.findtext("RequestId") == response.header("x-amz-request-id")
    elif response.header("content-type") == "application/xml" and response.body.strip():
        etree.fromstring(response.body.strip())  # a well-formed document


@settings(max_examples=scaled(300))
@given(
    request=st.one_of(operation_requests(), operation_requests(), chaos),
    hdrs=headers,
    body=bodies,
    auth=st.sampled_from(["open", "anonymous", "signed"]),
)
def test_any_request_gets_an_s3_answer(
    logged_errors: Errors,
    request: tuple[str, str, str],
    hdrs: dict[str, str],
    body: bytes,
    auth: str,
) -> None:
    method, path, query = request
    storage, upload_id = seeded_storage()
    query = query.replace(UPLOAD, upload_id)
    # On the wire: non-ASCII and spaces percent-encoded, any '%' (valid or not) as is.
    target = quote(path, safe="/%~+?;=&-") + ("?" + quote(query, safe="/%~+?;=&-") if query else "")
    # Twisted itself refuses a request line or header section over 16 KiB (a bare
    # "400 Bad Request", or a closed connection) before any S3 code sees it.
    assume(len(target) + sum(len(k) + len(v) + 4 for k, v in hdrs.items()) < 15_000)
    if auth == "signed":
        try:
            hdrs = signed(method, target, hdrs, body)
        except (UnicodeError, ValueError):
            return  # botocore cannot sign this target; nothing to send
    raw = request_bytes(method, target, hdrs, body)
    logged_errors.found.clear()
    responses = [r for r in serve(storage, raw, method, auth != "open") if r.status >= 200]
    assert logged_errors.found == [], (logged_errors.found, raw[:300])
    assert len(responses) == 1, (responses, raw[:300])
    event(f"{auth} {responses[0].status}")  # shown by --hypothesis-show-statistics
    check_response(responses[0], method.upper(), raw)


@settings(max_examples=scaled(150))
@given(
    path=paths,
    query=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30),
    names=st.lists(
        st.text(
            st.characters(min_codepoint=0x21, max_codepoint=0x7E).filter(lambda c: c != ":"),
            min_size=1,
            max_size=12,
        ),
        max_size=4,
    ),
    values=st.lists(
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=20), max_size=4
    ),
    body=st.binary(max_size=40),
    method=methods,
)
def test_arbitrary_header_names_and_queries(
    logged_errors: Errors,
    path: str,
    query: str,
    names: list[str],
    values: list[str],
    body: bytes,
    method: str,
) -> None:
    """Free-form header names and values and raw query text, not from any vocabulary."""
    hdrs = {n: v.strip() for n, v in zip(names, values, strict=False)}
    hdrs = {
        n: v
        for n, v in hdrs.items()
        if n.lower() not in ("content-length", "transfer-encoding", "host")
    }
    target = quote(path, safe="/%~+") + "?" + query
    head, _, _ = request_bytes(method, target, hdrs, b"").partition(b"\r\n\r\n")
    raw = head.decode("utf-8").encode("latin-1", "replace") + b"\r\n\r\n" + body
    raw = raw.replace(b"Content-Length: 0", b"Content-Length: %d" % len(body), 1)
    logged_errors.found.clear()
    responses = [r for r in serve(seeded_storage()[0], raw, method, False) if r.status >= 200]
    assert logged_errors.found == [], (logged_errors.found, raw[:300])
    for response in responses:
        if (response.status, response.headers, response.body) == (400, {}, b""):
            # Twisted's HTTP parser refused a malformed header line before any S3 code
            # ran ("HTTP/1.1 400 Bad Request", then it closes the connection).
            event("bare 400 from twisted.web")
            continue
        check_response(response, method.upper(), raw)
