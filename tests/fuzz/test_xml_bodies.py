"""The parsers of the XML bodies clients send (CompleteMultipartUpload, Delete,
Tagging, AccessControlPolicy, CORSConfiguration, CreateBucketConfiguration).

Whatever the bytes, a parser either returns or raises the 4xx S3Error AWS sends for a
bad document (MalformedXML, MalformedACLError, InvalidArgument, InvalidRequest,
InvalidTag, BadRequest...), never an InternalError or any other exception. Inputs are
arbitrary bytes, documents generated from each format's own vocabulary (so that the
field checks, not only the XML syntax, are reached), and valid documents with bytes
changed, inserted, removed or cut off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from lxml import etree

from s3proxy.acl import AccessControl, check_grants
from s3proxy.errors import S3Error
from s3proxy.names import is_xml_safe
from s3proxy.web import xml
from s3proxy.web.acl_ops import XSI, parse_policy
from s3proxy.web.cors_ops import parse_rules
from s3proxy.web.multipart_ops import _requested_parts
from s3proxy.web.tagging import MAX_BUCKET_TAGS, MAX_OBJECT_TAGS, parse_tagging
from tests.fuzz.guard import time_limit

OWNER = AccessControl("owner-id", "owner")


def create_bucket_configuration(body: bytes) -> object:
    config = xml.parse(body, "CreateBucketConfiguration")
    return xml.child_text(config, "LocationConstraint")


def delete_keys(body: bytes) -> object:
    root = xml.parse(body, "Delete")
    return [xml.child_text(entry, "Key") for entry in xml.children(root, "Object")]


def access_control_policy(body: bytes) -> object:
    acl = parse_policy(body, OWNER)
    check_grants(acl.grants, {"someone@example.com"})
    return acl


PARSERS: dict[str, Callable[[bytes], object]] = {
    "CompleteMultipartUpload": _requested_parts,
    "Delete": delete_keys,
    "Tagging": lambda body: parse_tagging(body, MAX_OBJECT_TAGS),
    "BucketTagging": lambda body: parse_tagging(body, MAX_BUCKET_TAGS),
    "AccessControlPolicy": access_control_policy,
    "CORSConfiguration": parse_rules,
    "CreateBucketConfiguration": create_bucket_configuration,
}
ROOTS = {"BucketTagging": "Tagging"}

VALID: dict[str, bytes] = {
    "CompleteMultipartUpload": b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
    b'<ETag>"abc"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>d</ETag></Part>'
    b"</CompleteMultipartUpload>",
    "Delete": b"<Delete><Quiet>true</Quiet><Object><Key>a/b</Key></Object>"
    b"<Object><Key>c</Key><VersionId>1</VersionId></Object></Delete>",
    "Tagging": b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>",
    "BucketTagging": b"<Tagging><TagSet><Tag><Key>k</Key><Value></Value></Tag></TagSet></Tagging>",
    "AccessControlPolicy": (
        f'<AccessControlPolicy xmlns:xsi="{XSI}"><Owner><ID>owner-id</ID></Owner>'
        '<AccessControlList><Grant><Grantee xsi:type="CanonicalUser"><ID>x</ID></Grantee>'
        '<Permission>READ</Permission></Grant><Grant><Grantee xsi:type="Group"><URI>'
        "http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee>"
        "<Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>"
    ).encode(),
    "CORSConfiguration": b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod>"
    b"<AllowedOrigin>*</AllowedOrigin><AllowedHeader>x-*</AllowedHeader>"
    b"<MaxAgeSeconds>30</MaxAgeSeconds><ID>r</ID></CORSRule></CORSConfiguration>",
    "CreateBucketConfiguration": b"<CreateBucketConfiguration><LocationConstraint>eu-west-1"
    b"</LocationConstraint></CreateBucketConfiguration>",
}

# Element names each format uses, and what its fields may hold.
VOCABULARY = sorted(
    {
        *"""CompleteMultipartUpload Part PartNumber ETag Delete Quiet Object Key VersionId
        Tagging TagSet Tag Value AccessControlPolicy Owner ID DisplayName AccessControlList
        Grant Grantee URI EmailAddress Permission CORSConfiguration CORSRule AllowedMethod
        AllowedOrigin AllowedHeader ExposeHeader MaxAgeSeconds CreateBucketConfiguration
        LocationConstraint ChecksumCRC32""".split()
    }
)
FIELD_TEXT = st.one_of(
    st.sampled_from(
        [
            "1",
            "0",
            "-1",
            "--5",
            "+3",
            " 7 ",
            "\u00b2",
            "\u0663",
            "1" * 5000,
            "10001",
            "GET",
            "PUT",
            "*",
            "**",
            "READ",
            "FULL_CONTROL",
            "aws:x",
            "true",
            "owner-id",
            "someone@example.com",
            "http://acs.amazonaws.com/groups/global/AllUsers",
            "",
        ]
    ),
    st.text(max_size=30).filter(is_xml_safe),
)


@st.composite
def trees(draw: st.DrawFn, root: str, depth: int = 3) -> etree._Element:
    node = etree.Element(root)
    if draw(st.booleans()):
        node.text = draw(FIELD_TEXT)
    if root == "Grantee" or draw(st.integers(0, 9)) == 0:
        node.set(f"{{{XSI}}}type", draw(st.sampled_from(["CanonicalUser", "Group", "x", ""])))
    if depth > 0:
        for tag in draw(st.lists(st.sampled_from(VOCABULARY), max_size=4)):
            node.append(draw(trees(tag, depth - 1)))
    return node


@st.composite
def generated_documents(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(PARSERS)))
    root = draw(trees(ROOTS.get(name, name)))
    if draw(st.booleans()):
        # Repeat the format's own structure a few times, so limits and orders are hit.
        for _ in range(draw(st.integers(0, 12))):
            root.append(draw(trees(draw(st.sampled_from(VOCABULARY)), 2)))
    body: bytes = etree.tostring(root, xml_declaration=draw(st.booleans()), encoding="UTF-8")
    return name, body


@st.composite
def mutated_documents(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(PARSERS)))
    body = bytearray(VALID[name])
    for _ in range(draw(st.integers(1, 4))):
        if not body:
            break
        position = draw(st.integers(0, len(body) - 1))
        action = draw(st.sampled_from(["change", "insert", "delete", "cut", "splice"]))
        if action == "change":
            body[position] = draw(st.integers(0, 255))
        elif action == "insert":
            body[position:position] = draw(
                st.sampled_from(
                    [b"<", b">", b"&", b"&amp;", b"<!DOCTYPE x>", b"\x00", b"\xff", b"]]>"]
                )
                | st.binary(max_size=8)
            )
        elif action == "delete":
            del body[position]
        elif action == "cut":
            del body[position:]
        else:
            other = VALID[draw(st.sampled_from(sorted(VALID)))]
            start = draw(st.integers(0, len(other)))
            body[position:position] = other[start : start + draw(st.integers(0, 80))]
    return name, bytes(body)


HOSTILE = [
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "y">]><Delete><Object><Key>&x;</Key>'
    b"</Object></Delete>",
    b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&x;</Key>'
    b"</Object></Delete>",
    b'<?xml version="1.0" encoding="UTF-16"?><Delete/>',
    b'<?xml version="1.0" encoding="nonsense"?><Delete/>',
    b"\xef\xbb\xbf<Delete><Object><Key>k</Key></Object></Delete>",
    b"<Delete><!-- c --><?pi x?><Object><Key><![CDATA[a<b]]></Key></Object></Delete>",
    b"<a:Delete xmlns:a='urn:x'><a:Object><a:Key>k</a:Key></a:Object></a:Delete>",
    b"<Delete>" + b"<Object>" * 300 + b"</Object>" * 300 + b"</Delete>",
    b"<Delete>\x00</Delete>",
    b"",
    b"   ",
]


def outcome(name: str, body: bytes) -> object:
    try:
        with time_limit(5):
            return PARSERS[name](body)
    except S3Error as e:
        assert 400 <= e.status < 500, repr(e)
        assert e.code != "InternalError"
        return e


@given(st.sampled_from(sorted(PARSERS)), st.binary(max_size=300))
def test_arbitrary_bytes(name: str, body: bytes) -> None:
    outcome(name, body)


@given(generated_documents())
@example(
    ("CompleteMultipartUpload", VALID["CompleteMultipartUpload"].replace(b">1<", b">\xc2\xb2<"))
)
@example(("CompleteMultipartUpload", VALID["CompleteMultipartUpload"].replace(b">1<", b">--1<")))
@example(
    (
        "CompleteMultipartUpload",
        VALID["CompleteMultipartUpload"].replace(b">1<", b">" + b"1" * 5000 + b"<"),
    )
)
@example(("CORSConfiguration", VALID["CORSConfiguration"].replace(b">30<", b">\xc2\xb2<")))
@example(("CORSConfiguration", VALID["CORSConfiguration"].replace(b">30<", b">--30<")))
@example(
    ("CORSConfiguration", VALID["CORSConfiguration"].replace(b">30<", b">" + b"3" * 5000 + b"<"))
)
def test_generated_documents(document: tuple[str, bytes]) -> None:
    outcome(*document)


@given(mutated_documents())
def test_mutated_valid_documents(document: tuple[str, bytes]) -> None:
    outcome(*document)


@given(st.sampled_from(sorted(PARSERS)), st.sampled_from(HOSTILE))
def test_hostile_documents(name: str, body: bytes) -> None:
    result = outcome(name, body)
    if b"ENTITY" in body:
        assert isinstance(result, S3Error)  # no DTD, hence no entity, is ever used


def test_valid_documents_parse() -> None:
    """The seeds of the mutations are accepted, so the mutations start from valid input."""
    results: dict[str, Any] = {name: PARSERS[name](body) for name, body in VALID.items()}
    assert results["CompleteMultipartUpload"] == [(1, '"abc"'), (2, "d")]
    assert results["Delete"] == ["a/b", "c"]
    assert results["Tagging"] == {"k": "v"}
    assert results["CreateBucketConfiguration"] == "eu-west-1"
