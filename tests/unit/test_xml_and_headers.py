"""Pure functions of the web layer: XML, headers, request targets, bucket names."""

from __future__ import annotations

import base64
import calendar
import hashlib
import time

import pytest
from lxml import etree

from s3proxy.errors import (
    InvalidDigest,
    InvalidRange,
    InvalidURI,
    MalformedXML,
    MetadataTooLarge,
    NotModified,
    PreconditionFailed,
    S3Error,
)
from s3proxy.model import DEFAULT_CONTENT_TYPE, ByteRange, ObjectAttributes, ObjectInfo
from s3proxy.names import is_valid_bucket_name
from s3proxy.web import xml
from s3proxy.web.app import parse_query, split_target
from s3proxy.web.headers import (
    MAX_METADATA_BYTES,
    Headers,
    check_preconditions,
    content_md5,
    http_date,
    object_attributes,
    parse_range,
)

# -- xml.parse ---------------------------------------------------------------------------

DELETE_BODY = b"<Delete><Object><Key>a</Key></Object></Delete>"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n",
        b"not xml at all",
        b'{"Delete": []}',
        b"<Delete><Object></Delete>",
        b"<Delete>",
        b"<?xml version='1.0'?>",
        DELETE_BODY + b"<Delete/>",
        b"\xff\xfe<Delete/>",
    ],
)
def test_parse_rejects_non_xml(body: bytes) -> None:
    with pytest.raises(MalformedXML):
        xml.parse(body, "Delete")


@pytest.mark.parametrize(
    "body",
    [
        b"<CreateBucketConfiguration/>",
        b"<delete/>",
        b"<Deleted/>",
        b'<x:Other xmlns:x="http://s3.amazonaws.com/doc/2006-03-01/"/>',
    ],
)
def test_parse_rejects_wrong_root(body: bytes) -> None:
    with pytest.raises(MalformedXML):
        xml.parse(body, "Delete")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Delete><Object><Key>&lol9;</Key></Object></Delete>"""


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE Delete><Delete/>",
        b'<!DOCTYPE Delete SYSTEM "http://127.0.0.1:1/x.dtd"><Delete/>',
        BILLION_LAUGHS,
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<Delete><Object><Key>&e;</Key></Object></Delete>",
        b'<!DOCTYPE d [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p.dtd"> %p;]><Delete/>',
        b'<!DOCTYPE d [<!ENTITY e "x">]><Delete/>',
    ],
    ids=[
        "doctype",
        "external-dtd",
        "billion-laughs",
        "external-entity",
        "parameter-entity",
        "unused-entity",
    ],
)
def test_parse_rejects_dtds_and_entities(body: bytes) -> None:
    with pytest.raises(MalformedXML):
        xml.parse(body, "Delete")


@pytest.mark.parametrize(
    "body",
    [
        DELETE_BODY,
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + DELETE_BODY,
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Object><Key>a</Key></Object></Delete>",
        b'<s3:Delete xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<s3:Object><s3:Key>a</s3:Key></s3:Object></s3:Delete>",
        b"<!-- a comment --><Delete><?pi x?><Object><Key>a</Key></Object></Delete>",
    ],
    ids=["plain", "declaration", "default-namespace", "prefixed-namespace", "comment-and-pi"],
)
def test_parse_accepts_namespaced_and_plain_roots(body: bytes) -> None:
    root = xml.parse(body, "Delete")
    assert xml.local_name(root) == "Delete"
    [entry] = xml.children(root, "Object")
    assert xml.child_text(entry, "Key") == "a"
    assert xml.child_text(entry, "VersionId") is None


def test_child_text_of_empty_element_is_empty_string() -> None:
    root = xml.parse(b"<Delete><Quiet/></Delete>", "Delete")
    assert xml.child_text(root, "Quiet") == ""


# -- xml.document ------------------------------------------------------------------------


def test_document_has_s3_namespace_and_declaration() -> None:
    body = xml.document(
        "ListAllMyBucketsResult",
        xml.element("Owner", ("ID", "me"), ("DisplayName", None)),
        ("Flag", True),
        ("Count", 3),
        [("Name", "a&<b>")],
    )
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = etree.fromstring(body)
    assert root.tag == f"{{{xml.S3_NS}}}ListAllMyBucketsResult"
    assert root.nsmap == {None: xml.S3_NS}
    # Children share the default namespace.
    assert [c.tag for c in root] == [
        f"{{{xml.S3_NS}}}Owner",
        f"{{{xml.S3_NS}}}Flag",
        f"{{{xml.S3_NS}}}Count",
        f"{{{xml.S3_NS}}}Name",
    ]
    assert root.findtext(f"{{{xml.S3_NS}}}Flag") == "true"
    assert root.findtext(f"{{{xml.S3_NS}}}Count") == "3"
    assert root.findtext(f"{{{xml.S3_NS}}}Name") == "a&<b>"
    owner = root.find(f"{{{xml.S3_NS}}}Owner")
    assert owner is not None
    assert [c.tag for c in owner] == [f"{{{xml.S3_NS}}}ID"]  # None text is skipped


def test_document_without_namespace() -> None:
    body = xml.document("Error", ("Code", "NoSuchKey"), namespace=False)
    root = etree.fromstring(body)
    assert root.tag == "Error"
    assert root.nsmap == {}
    assert root.findtext("Code") == "NoSuchKey"


def test_document_with_text() -> None:
    root = etree.fromstring(xml.document("LocationConstraint", text="eu-west-1"))
    assert root.text == "eu-west-1"
    assert root.tag == f"{{{xml.S3_NS}}}LocationConstraint"


# -- xml.iso8601 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1504020963.613, "2017-08-29T15:36:03.613Z"),
        (1504020963.0, "2017-08-29T15:36:03.000Z"),
        (1504020963.5, "2017-08-29T15:36:03.500Z"),
        (1504020963.25, "2017-08-29T15:36:03.250Z"),
    ],
)
def test_iso8601(timestamp: float, expected: str) -> None:
    assert xml.iso8601(timestamp) == expected


def _parse_iso8601(text: str) -> float:
    assert len(text) == len("2017-08-29T15:36:03.613Z") and text.endswith("Z"), text
    whole, _, fraction = text[:-1].partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(fraction) / 1000


@pytest.mark.parametrize("timestamp", [1.9996, 1504020959.9999, 1504020959.9995, 59.99999])
def test_iso8601_seconds_and_millis_agree(timestamp: float) -> None:
    """Near a second boundary the milliseconds and the seconds must not disagree
    (rounding .9996 to .000 without carrying would be almost a second off)."""
    assert abs(_parse_iso8601(xml.iso8601(timestamp)) - timestamp) < 0.001


def test_iso8601_round_trips_within_a_millisecond() -> None:
    for timestamp in (1700000000.0 + n * 0.0123457 for n in range(2000)):
        text = xml.iso8601(timestamp)
        assert abs(_parse_iso8601(text) - timestamp) < 0.001, (timestamp, text)


# -- headers.parse_range -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        (None, 100, None),
        ("", 100, None),
        ("bytes=0-9", 100, ByteRange(0, 9)),
        ("bytes=0-0", 100, ByteRange(0, 0)),
        ("bytes=10-99", 100, ByteRange(10, 99)),
        (" bytes=5-6 ", 100, ByteRange(5, 6)),
        # open-ended
        ("bytes=10-", 100, ByteRange(10, 99)),
        ("bytes=0-", 100, ByteRange(0, 99)),
        ("bytes=99-", 100, ByteRange(99, 99)),
        # suffix
        ("bytes=-10", 100, ByteRange(90, 99)),
        ("bytes=-1", 100, ByteRange(99, 99)),
        ("bytes=-100", 100, ByteRange(0, 99)),
        ("bytes=-500", 100, ByteRange(0, 99)),
        # last beyond the end is clipped
        ("bytes=90-200", 100, ByteRange(90, 99)),
        ("bytes=0-100", 100, ByteRange(0, 99)),
        # malformed: ignored, the whole object is served
        ("bytes=a-b", 100, None),
        ("bytes=-", 100, None),
        ("bytes=5-1", 100, None),
        ("bytes 0-1", 100, None),
        ("items=0-1", 100, None),
        ("bytes=0x1-2", 100, None),
        ("bytes=1.5-2", 100, None),
        # multiple ranges: ignored
        ("bytes=0-1,5-6", 100, None),
        ("bytes=0-1, 5-6", 100, None),
        ("bytes=-1,-2", 100, None),
    ],
)
def test_parse_range(value: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(value, size) == expected


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=100-200", 100),
        ("bytes=1000-1001", 100),
        ("bytes=-0", 100),
        # empty object: no range is satisfiable
        ("bytes=0-", 0),
        ("bytes=0-0", 0),
        ("bytes=-1", 0),
        ("bytes=-10", 0),
    ],
)
def test_parse_range_unsatisfiable(value: str, size: int) -> None:
    with pytest.raises(InvalidRange) as info:
        parse_range(value, size)
    assert info.value.status == 416
    assert info.value.fields == {"RangeRequested": value, "ActualObjectSize": str(size)}


def test_parse_range_on_empty_object_without_range() -> None:
    assert parse_range(None, 0) is None
    assert parse_range("bytes=5-1", 0) is None


# -- headers.check_preconditions ---------------------------------------------------------

ETAG = "9a0364b9e99bb480dd25e1f0284c8555"
MODIFIED = 1_700_000_000.75  # compared at one-second resolution, like HTTP dates
INFO = ObjectInfo(key="k", size=3, etag=ETAG, last_modified=MODIFIED)
SAME = http_date(1_700_000_000)
BEFORE = http_date(1_700_000_000 - 1)
AFTER = http_date(1_700_000_000 + 1)
QUOTED = f'"{ETAG}"'
OTHER = '"0123456789abcdef0123456789abcdef"'

PASS = None


@pytest.mark.parametrize(
    ("headers", "outcome"),
    [
        ({}, PASS),
        # If-Match
        ({"If-Match": QUOTED}, PASS),
        ({"If-Match": ETAG}, PASS),
        ({"If-Match": "*"}, PASS),
        ({"If-Match": f"{OTHER}, {QUOTED}"}, PASS),
        ({"If-Match": f"{OTHER},{QUOTED}"}, PASS),
        ({"If-Match": OTHER}, PreconditionFailed),
        ({"If-Match": f"{OTHER}, {OTHER}"}, PreconditionFailed),
        # If-None-Match
        ({"If-None-Match": QUOTED}, NotModified),
        ({"If-None-Match": "*"}, NotModified),
        ({"If-None-Match": f"W/{QUOTED}"}, NotModified),
        ({"If-None-Match": f"{OTHER}, W/{QUOTED}"}, NotModified),
        ({"If-None-Match": OTHER}, PASS),
        ({"If-None-Match": f"W/{OTHER}, {OTHER}"}, PASS),
        # If-Modified-Since
        ({"If-Modified-Since": BEFORE}, PASS),
        ({"If-Modified-Since": SAME}, NotModified),
        ({"If-Modified-Since": AFTER}, NotModified),
        ({"If-Modified-Since": "not a date"}, PASS),
        # If-Unmodified-Since
        ({"If-Unmodified-Since": BEFORE}, PreconditionFailed),
        ({"If-Unmodified-Since": SAME}, PASS),
        ({"If-Unmodified-Since": AFTER}, PASS),
        ({"If-Unmodified-Since": "yesterday"}, PASS),
        # RFC 7232 section 6: If-Match present -> If-Unmodified-Since is ignored
        ({"If-Match": QUOTED, "If-Unmodified-Since": BEFORE}, PASS),
        ({"If-Match": OTHER, "If-Unmodified-Since": AFTER}, PreconditionFailed),
        # If-None-Match present -> If-Modified-Since is ignored
        ({"If-None-Match": OTHER, "If-Modified-Since": AFTER}, PASS),
        ({"If-None-Match": QUOTED, "If-Modified-Since": BEFORE}, NotModified),
        # 412 conditions are evaluated before 304 ones
        ({"If-Match": OTHER, "If-None-Match": QUOTED}, PreconditionFailed),
        ({"If-Unmodified-Since": BEFORE, "If-Modified-Since": AFTER}, PreconditionFailed),
        ({"If-Match": QUOTED, "If-None-Match": QUOTED}, NotModified),
        ({"If-Match": QUOTED, "If-Modified-Since": SAME}, NotModified),
        ({"If-Unmodified-Since": AFTER, "If-Modified-Since": BEFORE}, PASS),
        # header names are case-insensitive
        ({"if-none-match": QUOTED}, NotModified),
        # the copy-source variants are not looked at on GET
        ({"x-amz-copy-source-if-match": OTHER}, PASS),
    ],
)
def test_check_preconditions(headers: dict[str, str], outcome: type[S3Error] | None) -> None:
    h = Headers({k: [v] for k, v in headers.items()})
    if outcome is None:
        check_preconditions(h, INFO)
    else:
        with pytest.raises(outcome) as info:
            check_preconditions(h, INFO)
        assert type(info.value) is outcome


COPY = "x-amz-copy-source-"


@pytest.mark.parametrize(
    ("headers", "condition"),
    [
        ({COPY + "if-match": OTHER}, "x-amz-copy-source-If-Match"),
        ({COPY + "if-unmodified-since": BEFORE}, "x-amz-copy-source-If-Unmodified-Since"),
        ({COPY + "if-none-match": QUOTED}, "x-amz-copy-source-If-None-Match"),
        ({COPY + "if-none-match": "*"}, "x-amz-copy-source-If-None-Match"),
        ({COPY + "if-modified-since": SAME}, "x-amz-copy-source-If-Modified-Since"),
        ({COPY + "if-modified-since": AFTER}, "x-amz-copy-source-If-Modified-Since"),
    ],
)
def test_copy_source_preconditions_fail_with_412(headers: dict[str, str], condition: str) -> None:
    h = Headers({k: [v] for k, v in headers.items()})
    with pytest.raises(PreconditionFailed) as info:
        check_preconditions(h, INFO, prefix=COPY)
    assert info.value.status == 412
    assert info.value.fields == {"Condition": condition}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {COPY + "if-match": QUOTED},
        {COPY + "if-none-match": OTHER},
        {COPY + "if-modified-since": BEFORE},
        {COPY + "if-unmodified-since": SAME},
        {COPY + "if-match": QUOTED, COPY + "if-unmodified-since": BEFORE},
        {COPY + "if-none-match": OTHER, COPY + "if-modified-since": AFTER},
        # the destination's own conditions are not the source's
        {"If-Match": OTHER, "If-None-Match": QUOTED},
    ],
)
def test_copy_source_preconditions_pass(headers: dict[str, str]) -> None:
    check_preconditions(Headers({k: [v] for k, v in headers.items()}), INFO, prefix=COPY)


# -- headers.content_md5 -----------------------------------------------------------------


def test_content_md5_valid() -> None:
    digest = hashlib.md5(b"hello").digest()
    value = base64.b64encode(digest).decode()
    assert content_md5(Headers({"Content-MD5": [value]})) == digest
    assert content_md5(Headers({})) is None


@pytest.mark.parametrize(
    "value",
    [
        "not base64!",
        "XrY7u+Ae7tCTyyK7j1rNww",  # missing padding
        base64.b64encode(b"x" * 15).decode(),
        base64.b64encode(b"x" * 17).decode(),
        base64.b64encode(hashlib.md5(b"x").hexdigest().encode()).decode(),
        "",
    ],
)
def test_content_md5_invalid(value: str) -> None:
    with pytest.raises(InvalidDigest) as info:
        content_md5(Headers({"Content-MD5": [value]}))
    assert info.value.status == 400
    assert info.value.fields == {"Content-MD5": value}


# -- headers.object_attributes -----------------------------------------------------------


def test_object_attributes_stored_headers_and_metadata() -> None:
    attributes = object_attributes(
        Headers(
            {
                "Content-Type": ["text/plain; charset=utf-8"],
                "Cache-Control": ["no-cache"],
                "Content-Disposition": ['attachment; filename="a.txt"'],
                "Content-Language": ["de"],
                "Expires": ["Thu, 01 Dec 2094 16:00:00 GMT"],
                "Content-Encoding": ["gzip"],
                "X-Amz-Meta-Color": ["blue"],
                "x-amz-meta-multi": ["1", "2"],
                "Content-Length": ["5"],
                "x-amz-storage-class": ["STANDARD"],
                "Host": ["example.com"],
            }
        )
    )
    assert attributes == ObjectAttributes(
        content_type="text/plain; charset=utf-8",
        headers={
            "Cache-Control": "no-cache",
            "Content-Disposition": 'attachment; filename="a.txt"',
            "Content-Language": "de",
            "Expires": "Thu, 01 Dec 2094 16:00:00 GMT",
            "Content-Encoding": "gzip",
        },
        metadata={"color": "blue", "multi": "1,2"},
    )


def test_object_attributes_defaults() -> None:
    assert object_attributes(Headers({})) == ObjectAttributes(DEFAULT_CONTENT_TYPE, {}, {})


@pytest.mark.parametrize(
    ("encoding", "stored"),
    [
        ("aws-chunked", None),
        ("AWS-Chunked", None),
        ("aws-chunked,gzip", "gzip"),
        ("aws-chunked, gzip", "gzip"),
        ("gzip, aws-chunked", "gzip"),
        ("gzip,br", "gzip,br"),
    ],
)
def test_object_attributes_strips_aws_chunked(encoding: str, stored: str | None) -> None:
    attributes = object_attributes(Headers({"Content-Encoding": [encoding]}))
    assert attributes.headers.get("Content-Encoding") == stored


def test_object_attributes_metadata_limit() -> None:
    # Names (without x-amz-meta-) and values count; exactly the limit is allowed.
    value = "v" * (MAX_METADATA_BYTES - len("name"))
    assert object_attributes(Headers({"x-amz-meta-name": [value]})).metadata == {"name": value}
    with pytest.raises(MetadataTooLarge) as info:
        object_attributes(Headers({"x-amz-meta-name": [value + "v"]}))
    assert info.value.status == 400
    many = {f"x-amz-meta-k{n:03d}": ["x" * 20] for n in range(100)}
    with pytest.raises(MetadataTooLarge):
        object_attributes(Headers(many))
    # UTF-8 bytes, not characters, count.
    wide = "\u00e9" * (MAX_METADATA_BYTES // 2)
    with pytest.raises(MetadataTooLarge):
        object_attributes(Headers({"x-amz-meta-n": [wide]}))


# -- app.split_target and app.parse_query ------------------------------------------------

PREFIX = "/api/v1/s3"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (b"/", (None, None)),
        (b"/api/v1/s3", (None, None)),
        (b"/api/v1/s3/", (None, None)),
        (b"/bucket", ("bucket", None)),
        (b"/bucket/", ("bucket", None)),
        (b"/api/v1/s3/bucket", ("bucket", None)),
        (b"/api/v1/s3/bucket/", ("bucket", None)),
        (b"/bucket/key", ("bucket", "key")),
        (b"/api/v1/s3/bucket/key", ("bucket", "key")),
        (b"/api/v1/s3/bucket/dir/sub/file.txt", ("bucket", "dir/sub/file.txt")),
        # %2F stays inside the key; + is not a space in a path
        (b"/bucket/a%2Fb", ("bucket", "a/b")),
        (b"/api/v1/s3/bucket/a%2Fb%2F", ("bucket", "a/b/")),
        (b"/bucket/a+b%20c", ("bucket", "a+b c")),
        (b"/bucket/%C3%A9t%C3%A9", ("bucket", "\u00e9t\u00e9")),
        (b"/bucket/%25", ("bucket", "%")),
        # slashes are never merged
        (b"/bucket//", ("bucket", "/")),
        (b"/bucket//key", ("bucket", "/key")),
        (b"/bucket/a//b///", ("bucket", "a//b///")),
        (b"/api/v1/s3/bucket//a//b", ("bucket", "/a//b")),
        # the prefix only counts as a whole path segment
        (b"/api/v1/s3x/key", ("api", "v1/s3x/key")),
        (b"/api/v1", ("api", "v1")),
        (b"/api", ("api", None)),
        # an empty bucket part names no bucket
        (b"//key", (None, None)),
    ],
)
def test_split_target(path: bytes, expected: tuple[str | None, str | None]) -> None:
    assert split_target(path, PREFIX) == expected


@pytest.mark.parametrize("prefix", ["", "/"])
def test_split_target_without_prefix(prefix: str) -> None:
    assert split_target(b"/api/v1/s3/b/k", prefix) == ("api", "v1/s3/b/k")
    assert split_target(b"/b/k", prefix) == ("b", "k")
    assert split_target(b"/", prefix) == (None, None)


def test_split_target_prefix_with_trailing_slash() -> None:
    assert split_target(b"/api/v1/s3/b/k", PREFIX + "/") == ("b", "k")


@pytest.mark.parametrize(
    "path",
    [b"/bucket/%FF", b"/bucket/%C3", b"/%FF/key", b"/api/v1/s3/b/%ED%A0%80", b"*", b"bucket/k"],
)
def test_split_target_invalid(path: bytes) -> None:
    with pytest.raises(InvalidURI) as info:
        split_target(path, PREFIX)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (b"/bucket", {}),
        (b"/bucket?", {}),
        (b"/bucket?uploads", {"uploads": ""}),
        (b"/bucket?delete=", {"delete": ""}),
        (
            b"/bucket?list-type=2&prefix=a%2Fb&delimiter=%2F&max-keys=5",
            {"list-type": "2", "prefix": "a/b", "delimiter": "/", "max-keys": "5"},
        ),
        (b"/bucket/key?x-id=GetObject&partNumber=1", {"x-id": "GetObject", "partNumber": "1"}),
        (b"/b?prefix=%C3%A9", {"prefix": "\u00e9"}),
        (b"/b?a=1&a=2", {"a": "2"}),
    ],
)
def test_parse_query(uri: bytes, expected: dict[str, str]) -> None:
    assert parse_query(uri) == expected


def test_parse_query_invalid_utf8() -> None:
    with pytest.raises(InvalidURI):
        parse_query(b"/b?prefix=%FF")


# -- names.is_valid_bucket_name ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("abc", True),
        ("my-bucket", True),
        ("my.bucket.name", True),
        ("123", True),
        ("a1b2-c3.d4", True),
        ("a" * 63, True),
        ("", False),
        ("a", False),
        ("ab", False),
        ("a" * 64, False),
        ("MyBucket", False),
        ("my_bucket", False),
        ("my bucket", False),
        ("-bucket", False),
        ("bucket-", False),
        (".bucket", False),
        ("bucket.", False),
        ("my..bucket", False),
        ("my.-bucket", False),
        ("my-.bucket", False),
        ("192.168.5.4", False),
        ("1.2.3.4", False),
        ("1.2.3.4a", True),
        ("xn--bucket", False),
        ("sthree-bucket", False),
        ("bucket-s3alias", False),
        ("bucket--ol-s3", False),
        ("b\u00e9cket", False),
        ("bucket/key", False),
    ],
)
def test_is_valid_bucket_name(name: str, valid: bool) -> None:
    assert is_valid_bucket_name(name) is valid
