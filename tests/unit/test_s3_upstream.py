"""The S3 backend's pure parts: SigV4 signing of upstream requests (botocore is the
oracle), attributes to headers and back, upstream errors to our S3Errors, XML."""

from __future__ import annotations

import datetime
import hashlib
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from twisted.web.http_headers import Headers

from s3proxy import errors
from s3proxy.acl import AccessControl, Grant, Grantee
from s3proxy.model import ObjectAttributes
from s3proxy.storage.s3 import upstream_xml
from s3proxy.storage.s3.attributes import (
    attribute_headers,
    attributes_of,
    decode_value,
    encode_value,
)
from s3proxy.storage.s3.client import encode_query, object_path
from s3proxy.storage.s3.listing import upstream_start_after
from s3proxy.storage.s3.signer import UNSIGNED_PAYLOAD, UpstreamCredentials, sign_request
from s3proxy.storage.s3.upstream_errors import map_error
from tests.contract.test_storage_contract import ATTRIBUTES

SIGNED_AT = datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)
KEYS = UpstreamCredentials("AKIDUPSTREAM", "upstream/secret+key")
HOST = "127.0.0.1:9000"


def botocore_authorization(
    method: str, url: str, headers: dict[str, str], body: bytes, payload: str
) -> str:
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    signing = {"payload_signing_enabled": payload != UNSIGNED_PAYLOAD}
    request.context["client_config"] = Config(s3=signing)
    with mock.patch(
        "botocore.auth.get_current_datetime", lambda **_: SIGNED_AT.replace(tzinfo=None)
    ):
        S3SigV4Auth(Credentials(KEYS.access_key, KEYS.secret_key), "s3", "eu-west-3").add_auth(
            request
        )
    return str(request.headers["Authorization"])


@pytest.mark.parametrize(
    ("method", "key", "query", "body", "unsigned"),
    [
        ("GET", None, [("list-type", "2"), ("prefix", "a b/é"), ("delimiter", "/")], b"", False),
        ("PUT", "dir/with space/é+~*.txt", [], b"hello", False),
        ("PUT", "part", [("partNumber", "3"), ("uploadId", "a/b+c==")], b"", True),
        ("POST", "k", [("uploads", "")], b"", False),
        ("DELETE", "a//b/./c", [], b"", False),
    ],
)
def test_signature_matches_botocore(
    method: str, key: str | None, query: list[tuple[str, str]], body: bytes, unsigned: bool
) -> None:
    path, raw_query = object_path("up-bucket", key), encode_query(query)
    headers = {"host": HOST, "content-type": "text/plain", "x-amz-meta-colour": "bleu"}
    payload = UNSIGNED_PAYLOAD if unsigned else hashlib.sha256(body).hexdigest()
    signed = sign_request(KEYS, "eu-west-3", method, path, raw_query, headers, payload, SIGNED_AT)
    # https: over http botocore always signs the payload, whatever the context says.
    url = f"https://{HOST}{path.decode()}" + (f"?{raw_query.decode()}" if raw_query else "")
    expected = botocore_authorization(
        method,
        url,
        {"Content-Type": "text/plain", "X-Amz-Meta-Colour": "bleu"},
        body,
        payload,
    )
    assert signed["authorization"] == expected
    assert signed["x-amz-date"] == "20260501T120000Z"
    assert KEYS.secret_key not in repr(KEYS)


@pytest.mark.parametrize(
    "value", ["plain", "", "élan ✓", " edge ", "=?UTF-8?B?aGk=?=", "tab\there", "\U0001f600"]
)
def test_metadata_values_round_trip(value: str) -> None:
    encoded = encode_value(value)
    encoded.encode("ascii")  # always sendable as a header
    assert decode_value(encoded) == value


def response_with(headers: dict[str, str]) -> object:
    class Answer:
        def __init__(self) -> None:
            self.headers = Headers({k.encode(): [v.encode("latin-1")] for k, v in headers.items()})

    return Answer()


def test_attributes_round_trip_through_headers() -> None:
    acl = AccessControl("o1", "Ówner", (Grant(Grantee("CanonicalUser", "id2", "Ñame"), "READ"),))
    attributes = ObjectAttributes(
        content_type=ATTRIBUTES.content_type,
        headers=ATTRIBUTES.headers,
        metadata=ATTRIBUTES.metadata,
        acl=acl,
    )
    sent = attribute_headers(attributes)
    assert all(value.isascii() for value in sent.values())
    assert sent["x-amz-meta-colour"] == "bleu"
    back = attributes_of(response_with(sent))  # type: ignore[arg-type]
    assert back == attributes
    # Our ACL entry is ours: a client never sees it as metadata.
    assert "s3proxy-acl" not in back.metadata


def test_upstream_errors_map_to_ours() -> None:
    body = (
        b"<?xml version='1.0'?><Error><Code>NoSuchUpload</Code><Message>gone</Message>"
        b"<UploadId>u1</UploadId><RequestId>r</RequestId></Error>"
    )
    error = map_error(404, body)
    assert isinstance(error, errors.NoSuchUpload)
    assert (error.message, error.fields) == ("gone", {"UploadId": "u1"})
    assert isinstance(
        map_error(409, b"<Error><Code>BucketNotEmpty</Code></Error>"), errors.BucketNotEmpty
    )
    assert isinstance(
        map_error(501, b"<Error><Code>NotImplemented</Code></Error>"), errors.ServiceUnavailable
    )
    assert isinstance(map_error(404, b"", errors.NoSuchKey), errors.NoSuchKey)
    assert isinstance(
        map_error(503, b"<Error><Code>SlowDown</Code></Error>"), errors.ServiceUnavailable
    )
    odd = map_error(400, b"<Error><Code>InvalidStorageClass</Code><Message>m</Message></Error>")
    assert (odd.code, odd.status, odd.message) == ("InvalidStorageClass", 400, "m")
    assert isinstance(map_error(400, b"<html>oops</html>"), errors.InvalidRequest)


def test_listing_xml_with_url_encoded_keys() -> None:
    body = (
        b'<?xml version="1.0"?><ListBucketResult><IsTruncated>true</IsTruncated>'
        b"<EncodingType>url</EncodingType><NextContinuationToken>tok</NextContinuationToken>"
        b"<Contents><Key>a%20b/%C3%A9</Key><LastModified>2026-05-01T12:00:00.250Z</LastModified>"
        b'<ETag>"abc"</ETag><Size>3</Size></Contents>'
        b"<CommonPrefixes><Prefix>c%2F</Prefix></CommonPrefixes>"
        b"<StartAfter>\xef\xbf\xbf</StartAfter></ListBucketResult>"
    )
    page = upstream_xml.list_objects_v2(body)
    assert [(o.key, o.size, o.etag) for o in page.objects] == [("a b/é", 3, "abc")]
    assert page.objects[0].last_modified == SIGNED_AT.timestamp()
    assert (page.common_prefixes, page.next_token) == (["c/"], "tok")


@pytest.mark.parametrize(
    ("prefix", "delimiter", "marker", "sent"),
    [
        ("a/", "/b", "a/b", "a/"),  # "/b" straddles the prefix's end: cut before it
        ("a/b", "b/", "a/b/", "a/b"),
        ("a/", "/b", "a/x/b", "a/x/b"),  # the delimiter after the prefix is S3's own
        ("a/", "/", "a/b", "a/b"),  # one character cannot straddle
        ("a/", "/b", "0", "0"),  # before the prefix: as it is
        ("", "ab", "xab", "xab"),
    ],
)
def test_start_after_never_straddles_the_prefix(
    prefix: str, delimiter: str, marker: str, sent: str
) -> None:
    assert upstream_start_after(prefix, delimiter, marker) == sent
    # Nothing between what is sent and the marker is lost: we only ever send less.
    assert marker.startswith(sent)
