"""The Range header parser against a small reference model of RFC 9110 as S3 applies it.

S3 honours one ``bytes=first-last``, ``bytes=first-`` or ``bytes=-suffix`` range;
anything else (several ranges, other units, junk, last < first) is ignored and the
whole object is served; a well-formed range that starts at or past the end (or a
zero suffix, or any range of an empty object) is 416 InvalidRange.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from s3proxy.errors import InvalidRange, S3Error
from s3proxy.model import ByteRange
from s3proxy.web.headers import parse_range

_ASCII_DIGITS = "0123456789"
_SPACES = " \t"


def number(digits: str) -> int:
    """int(digits) for any length (int() refuses more than 4300 digits)."""
    value = 0
    for start in range(0, len(digits), 1000):
        chunk = digits[start : start + 1000]
        value = value * 10 ** len(chunk) + int(chunk)
    return value


def reference(value: str | None, size: int) -> ByteRange | None | type[InvalidRange]:
    """What S3 does with ``Range: value`` on an object of ``size`` bytes."""
    if not value:
        return None
    text = value.strip()
    if not text.startswith("bytes="):
        return None
    spec = text[len("bytes=") :]
    if spec.count("-") != 1:
        return None
    first_text, last_text = spec.split("-")
    if any(c not in _ASCII_DIGITS for c in first_text + last_text):
        return None
    if not first_text and not last_text:
        return None
    if not first_text:
        suffix = number(last_text)
        if suffix == 0 or size == 0:
            return InvalidRange
        return ByteRange(max(0, size - suffix), size - 1)
    first = number(first_text)
    if last_text and number(last_text) < first:
        return None
    if first >= size:
        return InvalidRange
    last = number(last_text) if last_text else size - 1
    return ByteRange(first, min(last, size - 1))


def outcome(value: str | None, size: int) -> ByteRange | None | type[InvalidRange]:
    try:
        return parse_range(value, size)
    except InvalidRange as e:
        assert e.status == 416
        assert e.fields["ActualObjectSize"] == str(size)
        return InvalidRange


numbers = st.one_of(
    st.integers(0, 40).map(str),
    st.integers(0, 2**70).map(str),
    st.integers(0, 50).map(lambda n: "0" * n + "7"),  # leading zeros
    st.integers(4000, 6000).map(lambda n: "9" * n),  # past Python's int() digit limit
    st.just(""),
)
# Characters that look like digits, signs or separators but are not part of the grammar.
near_misses = st.sampled_from(["+1", "-1", " 1", "1 ", "\u0663", "\u00b2", "1_0", "0x1", ","])
well_formed = st.builds(lambda a, b: f"bytes={a}-{b}", numbers, numbers)
mangled = st.builds(
    lambda head, a, sep, b, tail, pad: f"{pad}{head}{a}{sep}{b}{tail}{pad}",
    st.sampled_from(["bytes=", "Bytes=", "bytes =", "bits=", "", "bytes=bytes="]),
    st.one_of(numbers, near_misses),
    st.sampled_from(["-", "--", ",", "-0-", "-1,2-"]),
    st.one_of(numbers, near_misses),
    st.sampled_from(["", ",0-1", ";", "\n", "-"]),
    st.sampled_from(["", " ", "\t"]),
)
headers = st.one_of(st.none(), well_formed, mangled, st.text(max_size=40))
sizes = st.one_of(st.integers(0, 50), st.integers(0, 2**64))


@given(headers, sizes)
@example("bytes=" + "1" * 5000 + "-", 10)
@example("bytes=-" + "1" * 5000, 10)
@example("bytes=0-" + "1" * 5000, 10)
@example("bytes=\u0663-", 10)
def test_parse_range_matches_reference(value: str | None, size: int) -> None:
    assert outcome(value, size) == reference(value, size)


@given(well_formed, sizes)
def test_resolved_range_lies_inside_the_object(value: str, size: int) -> None:
    try:
        resolved = parse_range(value, size)
    except S3Error as e:
        assert isinstance(e, InvalidRange)
        return
    if resolved is not None:
        assert 0 <= resolved.first <= resolved.last < size
        assert resolved.length >= 1


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        ("bytes=0-0", 1, ByteRange(0, 0)),
        ("bytes=-1", 5, ByteRange(4, 4)),
        ("bytes=-100", 5, ByteRange(0, 4)),
        ("bytes=3-", 5, ByteRange(3, 4)),
        ("bytes=5-", 5, InvalidRange),
        ("bytes=0-0", 0, InvalidRange),
        ("bytes=4-2", 5, None),
        ("bytes=0-1,3-4", 5, None),
    ],
)
def test_reference_model_agrees_with_known_answers(
    value: str, size: int, expected: ByteRange | None | type[InvalidRange]
) -> None:
    """The model itself, pinned to what AWS answers for these (from its documentation
    and observed responses), so that model and parser cannot drift together."""
    assert reference(value, size) == expected
    assert re.fullmatch(r"bytes=\d*-\d*|bytes=[\d,-]+", value)
