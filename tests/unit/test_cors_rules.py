"""CORS rules: wildcard matching, first-match lookup, and the stored text form."""

from __future__ import annotations

import pytest

from s3proxy.cors import CorsRule, find_rule, rules_from_text, rules_to_text, wildcard_match

UPLOADS = CorsRule(
    allowed_methods=("PUT", "POST"),
    allowed_origins=("https://*.example.test",),
    allowed_headers=("content-*", "x-amz-meta-tag"),
    expose_headers=("ETag",),
    max_age_seconds=3000,
    rule_id="uploads",
)
READS = CorsRule(allowed_methods=("GET", "HEAD"), allowed_origins=("*",))


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("*", "", True),
        ("*", "https://a.test", True),
        ("https://*.example.test", "https://www.example.test", True),
        ("https://*.example.test", "https://.example.test", True),
        ("https://*.example.test", "https://example.test", False),
        ("https://*.example.test", "http://www.example.test", False),
        ("https://a.test", "https://a.test", True),
        ("https://a.test", "https://A.test", False),  # origins are case-sensitive
        ("ab*ba", "aba", False),  # the head and the tail must not overlap
    ],
)
def test_wildcard_match(pattern: str, value: str, matches: bool) -> None:
    assert wildcard_match(pattern, value) is matches


def test_first_matching_rule() -> None:
    rules = (UPLOADS, READS)
    origin = "https://app.example.test"
    assert find_rule(rules, origin, "PUT", ["Content-Type", "X-Amz-Meta-Tag"]) is UPLOADS
    assert find_rule(rules, origin, "PUT", ["authorization"]) is None
    assert find_rule(rules, origin, "GET") is READS
    assert find_rule(rules, "https://other.test", "PUT") is None
    assert find_rule(rules, "https://other.test", "HEAD") is READS


def test_stored_text_round_trip() -> None:
    assert rules_from_text(rules_to_text((UPLOADS, READS))) == (UPLOADS, READS)
    assert rules_from_text(None) is None
    assert rules_from_text("") is None
    assert rules_from_text("<CORSConfiguration/>") is None  # not ours: as if unset
    assert rules_from_text('{"not": "a list"}') is None
