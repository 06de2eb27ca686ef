"""A bucket's CORS rules, and how a cross-origin request is matched against them.

Matching follows S3: the first rule whose AllowedOrigin, AllowedMethod and (for a
preflight) every requested header match wins. Origins and headers may hold one ``*``
wildcard; origins match case-sensitively, header names case-insensitively.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CORS_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "HEAD"})


@dataclass(frozen=True)
class CorsRule:
    allowed_methods: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_seconds: int | None = None
    rule_id: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.rule_id,
            "methods": list(self.allowed_methods),
            "origins": list(self.allowed_origins),
            "headers": list(self.allowed_headers),
            "expose": list(self.expose_headers),
            "max_age": self.max_age_seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> CorsRule:
        def strings(name: str) -> tuple[str, ...]:
            value = data.get(name) or []
            assert isinstance(value, list)
            return tuple(str(v) for v in value)

        max_age = data.get("max_age")
        rule_id = data.get("id")
        return cls(
            allowed_methods=strings("methods"),
            allowed_origins=strings("origins"),
            allowed_headers=strings("headers"),
            expose_headers=strings("expose"),
            max_age_seconds=int(str(max_age)) if max_age is not None else None,
            rule_id=str(rule_id) if rule_id is not None else None,
        )

    def matches_origin(self, origin: str) -> bool:
        return any(wildcard_match(pattern, origin) for pattern in self.allowed_origins)

    def allows(self, origin: str, method: str, request_headers: Iterable[str] = ()) -> bool:
        if method not in self.allowed_methods or not self.matches_origin(origin):
            return False
        patterns = [h.lower() for h in self.allowed_headers]
        return all(
            any(wildcard_match(p, header.lower()) for p in patterns) for header in request_headers
        )


CorsRules = tuple[CorsRule, ...]


def wildcard_match(pattern: str, value: str) -> bool:
    """``pattern`` with at most one ``*`` standing for any run of characters."""
    head, star, tail = pattern.partition("*")
    if not star:
        return pattern == value
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


# The bucket configuration document "cors" (IStorage.put_bucket_config) holds the rules
# as JSON text.
CONFIG_NAME = "cors"


def rules_to_text(rules: Sequence[CorsRule]) -> str:
    return json.dumps([rule.to_json() for rule in rules], separators=(",", ":"))


def rules_from_text(text: str | None) -> CorsRules | None:
    """The rules of a stored document; None for none (or one this code cannot read)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, list):
            return None
        return tuple(CorsRule.from_json(item) for item in data if isinstance(item, dict))
    except (ValueError, AssertionError, TypeError):
        return None


def find_rule(
    rules: Sequence[CorsRule], origin: str, method: str, request_headers: Iterable[str] = ()
) -> CorsRule | None:
    wanted = list(request_headers)
    return next((r for r in rules if r.allows(origin, method, wanted)), None)
