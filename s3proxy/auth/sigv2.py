"""SigV2 (HMAC-SHA1) verification: ``Authorization: AWS <key>:<signature>`` and the
presigned query (``AWSAccessKeyId``, ``Expires``, ``Signature``), as boto 2 and
botocore's ``HmacV1Auth`` sign them.

The resource signed is the path as sent. boto 2 with ``path='/api/v1/s3'`` sends and
signs ``/api/v1/s3/bucket/key``; a signature over the path without the API prefix is
accepted as well, since it names the same resource.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_to_bytes

from s3proxy.auth.credentials import User
from s3proxy.auth.request import (
    UNSIGNED_PAYLOAD,
    AuthResult,
    SignedRequest,
    iso8601,
    spaced_hex,
    strip_prefix,
    wire_bytes,
)
from s3proxy.errors import (
    AccessDenied,
    InvalidAccessKeyId,
    InvalidArgument,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
)

MAX_SKEW = 15 * 60
# The query parameters that are part of the signed resource: S3's documented list and
# what boto 2 and botocore sign.
SUB_RESOURCES = frozenset(
    """accelerate acl analytics cors defaultObjectAcl delete inventory lifecycle location
    logging metrics notification object-lock partNumber policy replication requestPayment
    response-cache-control response-content-disposition response-content-encoding
    response-content-language response-content-type response-expires restore select
    select-type storageClass tagging torrent uploadId uploads versionId versioning versions
    website""".split()
)
_INVALID_HEADER = "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature"
_QUERY_PARAMS = ("AWSAccessKeyId", "Expires", "Signature")


def authenticate_header(
    req: SignedRequest, users: Mapping[str, User], authorization: str, prefix: str = ""
) -> AuthResult:
    """``authorization`` is the header's value after ``AWS ``."""
    access_key, colon, signature = authorization.strip().partition(":")
    if not colon or not signature or " " in access_key:
        raise InvalidArgument(
            _INVALID_HEADER, ArgumentName="Authorization", ArgumentValue="AWS " + authorization
        )
    user = users.get(access_key)
    if user is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=access_key)
    _check_date(req)
    dates = [b""] if req.header("x-amz-date") is not None else []
    date = req.header("date")
    if date is not None:
        dates.append(wire_bytes(date.strip()))
    _verify(req, user, signature, dates, prefix, {})
    return AuthResult(user=user, payload=UNSIGNED_PAYLOAD, version=2)


def authenticate_query(
    req: SignedRequest, users: Mapping[str, User], params: dict[str, str], prefix: str = ""
) -> AuthResult:
    """``params`` are the request's query parameters, percent-decoded."""
    if any(not params.get(name) for name in _QUERY_PARAMS):
        raise AccessDenied(
            "Query-string authentication requires the Signature, Expires and "
            "AWSAccessKeyId parameters"
        )
    user = users.get(params["AWSAccessKeyId"])
    if user is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=params["AWSAccessKeyId"])
    expires = params["Expires"]
    if not re.fullmatch(r"[0-9]{1,12}", expires):
        raise AccessDenied(f"Invalid date (should be seconds since epoch): {expires}")
    if req.now > int(expires):
        raise AccessDenied(
            "Request has expired", Expires=iso8601(int(expires)), ServerTime=iso8601(req.now)
        )
    # botocore moves x-amz-*, Content-Type and Content-MD5 headers into the query.
    moved = {
        name.lower(): value
        for name, value in params.items()
        if name.lower().startswith("x-amz-") or name.lower() in ("content-type", "content-md5")
    }
    _verify(req, user, params["Signature"], [expires.encode("ascii")], prefix, moved)
    return AuthResult(user=user, payload=UNSIGNED_PAYLOAD, version=2, presigned=True)


def string_to_sign(
    req: SignedRequest, date: bytes, resource: bytes, moved: Mapping[str, str]
) -> bytes:
    """METHOD, Content-MD5, Content-Type, date, x-amz-* headers, resource."""
    lines = [req.method.upper().encode("ascii", "replace")]
    for name in ("content-md5", "content-type"):
        value = req.header(name)
        if value is None:
            value = moved.get(name, "")
        lines.append(wire_bytes(value.strip()))
    lines.append(date)
    amz: dict[str, list[bytes]] = {
        name: [wire_bytes(value.strip())] for name, value in moved.items() if name.startswith("x-")
    }
    for name in req.header_names():
        if name.startswith("x-amz-"):
            amz[name] = [wire_bytes(v.strip()) for v in req.header_values(name)]
    for name in sorted(amz):
        lines.append(wire_bytes(name) + b":" + b",".join(amz[name]))
    lines.append(resource)
    return b"\n".join(lines)


def canonical_resource(path: bytes, raw_query: bytes) -> bytes:
    """The path as sent, then the sub-resources (values decoded), sorted by name."""
    subs: list[tuple[bytes, bytes]] = []
    for piece in raw_query.split(b"&"):
        name, equals, value = piece.partition(b"=")
        if name.decode("latin-1") in SUB_RESOURCES:  # names are compared as sent
            subs.append((name, name + equals + (unquote_to_bytes(value) if equals else b"")))
    subs.sort(key=lambda sub: sub[0])
    if not subs:
        return path
    return path + b"?" + b"&".join(text for _, text in subs)


def sign(secret: str, text: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), text, hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _check_date(req: SignedRequest) -> None:
    text = req.header("x-amz-date") or req.header("date")
    when = None
    if text:
        try:
            parsed = parsedate_to_datetime(text)
            if parsed.tzinfo is None:  # "-0000": no zone given, meaning UTC
                parsed = parsed.replace(tzinfo=datetime.UTC)
            when = parsed.timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            when = None
    if when is None:
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
    if abs(req.now - when) > MAX_SKEW:
        raise RequestTimeTooSkewed(
            RequestTime=text or "",
            ServerTime=iso8601(req.now),
            MaxAllowedSkewMilliseconds=str(MAX_SKEW * 1000),
        )


def _verify(
    req: SignedRequest,
    user: User,
    signature: str,
    dates: list[bytes],
    prefix: str,
    moved: Mapping[str, str],
) -> None:
    paths = [req.raw_path]
    stripped = strip_prefix(req.raw_path, prefix)
    if stripped is not None:
        paths.append(stripped)
    if req.virtual_bucket is not None:
        # A virtual-hosted request signs /bucket/key though it sends /key.
        bucket = b"/" + req.virtual_bucket.encode("ascii")
        paths = [bucket + path for path in paths]
    provided = signature.encode("utf-8", "replace")
    first: bytes | None = None
    for date in dates:
        for path in paths:
            text = string_to_sign(req, date, canonical_resource(path, req.raw_query), moved)
            if hmac.compare_digest(sign(user.secret_key, text).encode("ascii"), provided):
                return
            first = first or text
    assert first is not None
    raise SignatureDoesNotMatch(
        AWSAccessKeyId=user.access_key,
        StringToSign=first.decode("utf-8", "replace"),
        SignatureProvided=signature,
        StringToSignBytes=spaced_hex(first),
    )
