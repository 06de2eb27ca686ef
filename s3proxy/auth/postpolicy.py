"""Browser POST uploads: who signed the form's policy, and whether the form obeys it.

The policy is a base64 JSON document (expiration and conditions). SigV4 signs the
base64 text with the signing key of ``x-amz-credential``'s scope; SigV2 signs it with
HMAC-SHA1 of the secret key. Form field names are case-insensitive (the parser
lower-cases them); every field but the signature's own must be named by a condition.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from s3proxy.auth import canonical, sigv2
from s3proxy.auth.credentials import User
from s3proxy.errors import (
    AccessDenied,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidPolicyDocument,
    S3Error,
    SignatureDoesNotMatch,
)

SERVICE = "s3"
# Fields no condition needs to name (S3's list: the signature's own, and the file).
UNCHECKED_FIELDS = frozenset(
    {"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file", "x-amz-security-token"}
)
_EXPIRATION_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?Z$")


@dataclass(frozen=True)
class SizeRange:
    minimum: int
    maximum: int


def authenticate_form(fields: Mapping[str, str], users: Mapping[str, User]) -> User | None:
    """The user whose signature covers the policy; None for an unsigned form."""
    policy = fields.get("policy")
    if "x-amz-signature" in fields or "x-amz-algorithm" in fields:
        if policy is None:
            raise _missing("policy")
        return _sigv4(fields, policy, users)
    if "signature" in fields or "awsaccesskeyid" in fields:
        if policy is None:
            raise _missing("policy")
        return _sigv2(fields, policy, users)
    return None


def _missing(name: str) -> S3Error:
    return InvalidArgument(
        f"Bucket POST must contain a field named '{name}'.  If it is specified, please "
        "check the order of the fields.",
        ArgumentName=name,
        ArgumentValue="",
    )


def _sigv4(fields: Mapping[str, str], policy: str, users: Mapping[str, User]) -> User:
    for name in ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature"):
        if name not in fields:
            raise _missing(name)
    if fields["x-amz-algorithm"] != canonical.ALGORITHM:
        raise InvalidArgument(
            "Only AWS4-HMAC-SHA256 is supported",
            ArgumentName="x-amz-algorithm",
            ArgumentValue=fields["x-amz-algorithm"],
        )
    parts = fields["x-amz-credential"].rsplit("/", 4)
    if len(parts) != 5 or not all(parts):
        raise InvalidArgument(
            "Invalid credential", ArgumentName="x-amz-credential", ArgumentValue=""
        )
    access_key, date, region, service, terminal = parts
    if service != SERVICE or terminal != canonical.TERMINAL:
        raise InvalidArgument(
            "Invalid credential scope", ArgumentName="x-amz-credential", ArgumentValue=""
        )
    user = users.get(access_key)
    if user is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=access_key)
    key = canonical.signing_key(user.secret_key, date, region, service)
    expected = canonical.sign(key, policy)
    if not hmac.compare_digest(expected, fields["x-amz-signature"]):
        raise SignatureDoesNotMatch(AWSAccessKeyId=access_key, StringToSign=policy)
    return user


def _sigv2(fields: Mapping[str, str], policy: str, users: Mapping[str, User]) -> User:
    for name in ("awsaccesskeyid", "signature"):
        if name not in fields:
            raise _missing(name)
    access_key = fields["awsaccesskeyid"]
    user = users.get(access_key)
    if user is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=access_key)
    expected = sigv2.sign(user.secret_key, policy.encode("utf-8"))
    if not hmac.compare_digest(expected, fields["signature"]):
        raise SignatureDoesNotMatch(AWSAccessKeyId=access_key, StringToSign=policy)
    return user


def decode_policy(policy: str) -> dict[str, Any]:
    try:
        document = json.loads(base64.b64decode(policy, validate=True))
    except (binascii.Error, ValueError, RecursionError):  # "[[[[...": too deep to parse
        raise InvalidPolicyDocument("Invalid Policy: Invalid JSON.") from None
    if not isinstance(document, dict):
        raise InvalidPolicyDocument("Invalid Policy: Invalid JSON.")
    return document


def _expiration(text: object) -> float:
    match = _EXPIRATION_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidPolicyDocument("Invalid Policy: Invalid 'expiration' value: " + str(text))
    return float(calendar.timegm(tuple(int(g) for g in match.groups()) + (0, 0, 0)))


def check_policy(
    policy: str, fields: Mapping[str, str], bucket: str, now: float | None = None
) -> SizeRange | None:
    """Check the form against the policy; the content-length-range it sets, if any.
    The key is checked as sent (``${filename}`` not yet replaced), as S3 does."""
    document = decode_policy(policy)
    if "expiration" not in document:
        raise InvalidPolicyDocument("Invalid Policy: Policy missing expiration.")
    if _expiration(document["expiration"]) < (time.time() if now is None else now):
        raise AccessDenied("Invalid according to Policy: Policy expired.")
    conditions = document.get("conditions")
    if not isinstance(conditions, list):
        raise InvalidPolicyDocument("Invalid Policy: Policy missing conditions.")
    values = {**fields, "bucket": bucket}
    checked: set[str] = set()
    size: SizeRange | None = None
    for condition in conditions:
        if isinstance(condition, dict) and len(condition) == 1:
            ((name, expected),) = condition.items()
            condition = ["eq", "$" + str(name), expected]
        if not isinstance(condition, list) or len(condition) != 3:
            raise InvalidPolicyDocument(
                "Invalid Policy: Invalid Condition: " + json.dumps(condition)
            )
        operator = str(condition[0]).lower()
        if operator == "content-length-range":
            try:
                size = SizeRange(int(condition[1]), int(condition[2]))
            except (TypeError, ValueError, OverflowError):  # OverflowError: 1e999
                raise InvalidPolicyDocument(
                    "Invalid Policy: Invalid content-length-range: " + json.dumps(condition)
                ) from None
            continue
        target, expected = condition[1], condition[2]
        if operator not in ("eq", "starts-with") or not isinstance(target, str):
            raise InvalidPolicyDocument(
                "Invalid Policy: Invalid Condition: " + json.dumps(condition)
            )
        if not target.startswith("$") or not isinstance(expected, str):
            raise InvalidPolicyDocument(
                "Invalid Policy: Invalid Condition: " + json.dumps(condition)
            )
        name = target[1:].lower()
        checked.add(name)
        actual = values.get(name)
        if not _holds(operator, name, actual, expected):
            raise AccessDenied(
                "Invalid according to Policy: Policy Condition failed: " + json.dumps(condition)
            )
    extra = [
        name
        for name in fields
        if name not in checked and name not in UNCHECKED_FIELDS and not name.startswith("x-ignore-")
    ]
    if extra:
        raise AccessDenied("Invalid according to Policy: Extra input fields: " + extra[0])
    return size


def _holds(operator: str, name: str, actual: str | None, expected: str) -> bool:
    if operator == "eq":
        return actual == expected
    if actual is None:
        return expected == ""
    if name == "content-type":  # each of a list of types must match
        return all(part.strip().startswith(expected) for part in actual.split(","))
    return actual.startswith(expected)
