"""POST policy documents: conditions, expiration, and the signatures over them."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from s3proxy.auth.credentials import User
from s3proxy.auth.postpolicy import SizeRange, authenticate_form, check_policy
from s3proxy.errors import (
    AccessDenied,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidPolicyDocument,
    SignatureDoesNotMatch,
)

NOW = 1_790_000_000.0  # 2026-09-21T...
LATER = "2030-01-01T00:00:00.000Z"
USER = User(access_key="AKIDEXAMPLE", secret_key="secret", user_id="u1", display_name="u")


def encoded(document: Any) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def check(conditions: list[Any], fields: dict[str, str], expiration: str = LATER) -> Any:
    policy = encoded({"expiration": expiration, "conditions": conditions})
    return check_policy(policy, {**fields, "policy": policy}, "bkt", NOW)


def test_conditions_that_hold() -> None:
    size = check(
        [
            {"bucket": "bkt"},
            ["starts-with", "$key", "user/"],
            ["eq", "$Content-Type", "image/png"],
            ["starts-with", "$x-amz-meta-tag", ""],
            ["content-length-range", 1, 10],
            {"success_action_status": "201"},
        ],
        {
            "key": "user/${filename}",
            "content-type": "image/png",
            "success_action_status": "201",
            "x-ignore-me": "anything",
        },
    )
    assert size == SizeRange(1, 10)


@pytest.mark.parametrize(
    ("conditions", "fields", "message"),
    [
        ([{"bucket": "other"}], {}, 'Condition failed: ["eq", "$bucket", "other"]'),
        ([["starts-with", "$key", "a/"]], {"key": "b/k"}, "Condition failed"),
        ([{"key": "k"}], {"key": "k", "acl": "public-read"}, "Extra input fields: acl"),
        (
            [{"key": "k"}, ["starts-with", "$content-type", "image/"]],
            {"key": "k", "content-type": "image/png, text/html"},
            "Condition failed",
        ),
    ],
)
def test_conditions_that_fail(conditions: Any, fields: Any, message: str) -> None:
    with pytest.raises(AccessDenied) as refused:
        check(conditions, fields)
    assert message in refused.value.message


def test_expired_and_malformed_policies() -> None:
    with pytest.raises(AccessDenied, match="Policy expired"):
        check([], {}, expiration="2020-01-01T00:00:00Z")
    with pytest.raises(InvalidPolicyDocument):
        check([], {}, expiration="tomorrow")
    with pytest.raises(InvalidPolicyDocument):
        check_policy("not base64!", {}, "bkt", NOW)
    with pytest.raises(InvalidPolicyDocument):
        check_policy(encoded({"conditions": []}), {}, "bkt", NOW)
    with pytest.raises(InvalidPolicyDocument):
        check([["between", "$key", "a"]], {"key": "a"})


@pytest.mark.parametrize(
    ("version", "signature_field"), [("s3v4", "x-amz-signature"), ("s3", "signature")]
)
def test_signatures_of_boto3_forms(version: str, signature_field: str) -> None:
    import boto3  # the reference signer
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id=USER.access_key,
        aws_secret_access_key=USER.secret_key,
        region_name="us-east-1",
        config=Config(signature_version=version),
    )
    fields = {k.lower(): v for k, v in s3.generate_presigned_post("b", "k")["fields"].items()}
    assert signature_field in fields
    users = {USER.access_key: USER}
    assert authenticate_form(fields, users) == USER
    with pytest.raises(SignatureDoesNotMatch):
        authenticate_form({**fields, signature_field: "A" * len(fields[signature_field])}, users)
    with pytest.raises(InvalidAccessKeyId):
        authenticate_form(fields, {})
    without_policy = {k: v for k, v in fields.items() if k != "policy"}
    with pytest.raises(InvalidArgument):
        authenticate_form(without_policy, users)


def test_unsigned_form_is_anonymous() -> None:
    assert authenticate_form({"key": "k"}, {USER.access_key: USER}) is None
