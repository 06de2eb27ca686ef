"""The POST upload policy (base64 JSON): whatever the document, check_policy either
accepts the form or refuses it with InvalidPolicyDocument / AccessDenied, never
anything else (numbers like 1e999, deep nesting, wrong types in every position)."""

from __future__ import annotations

import base64
import json

from hypothesis import example, given
from hypothesis import strategies as st

from s3proxy.auth.postpolicy import SizeRange, check_policy
from s3proxy.errors import S3Error

NOW = 1777636800.0
FIELDS = {"key": "up/f.txt", "content-type": "text/plain", "x-amz-meta-a": "b"}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "$key",
            "$bucket",
            "$Content-Type",
            "eq",
            "starts-with",
            "content-length-range",
            "2030-01-01T00:00:00Z",
            "2000-01-01T00:00:00.5Z",
            "9999-99-99T99:99:99Z",
            "up/",
            "",
            "1" * 5000,
        ]
    ),
    st.text(max_size=10),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=20,
)
conditions = st.lists(
    st.one_of(
        json_values,
        st.tuples(
            st.sampled_from(["eq", "starts-with", "EQ", "content-length-range", "x"]),
            json_values,
            json_values,
        ).map(list),
        st.dictionaries(
            st.sampled_from(["key", "bucket", "x-amz-meta-a"]), json_values, min_size=1, max_size=1
        ),
    ),
    max_size=5,
)
documents = st.one_of(
    st.fixed_dictionaries(
        {
            "expiration": st.sampled_from(["2030-01-01T00:00:00Z", "2000-01-01T00:00:00Z"])
            | json_values,
            "conditions": conditions,
        }
    ),
    json_values,
)


def encoded(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def outcome(policy: str) -> object:
    try:
        return check_policy(policy, FIELDS, "bkt", now=NOW)
    except S3Error as e:
        assert e.status in (400, 403), repr(e)
        return e


@given(documents)
@example({"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", 1e999, 2]]})
@example(
    {"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", 0, -1e999]]}
)
def test_any_policy_document(document: object) -> None:
    result = outcome(encoded(document))
    assert result is None or isinstance(result, (SizeRange, S3Error))


@given(st.text(max_size=60) | st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()))
@example(base64.b64encode(b"[" * 100_000).decode())
@example(
    base64.b64encode(
        b'{"expiration": "2030-01-01T00:00:00Z", "conditions": ' + b"[" * 5000
    ).decode()
)
def test_any_policy_text(policy: str) -> None:
    outcome(policy)
