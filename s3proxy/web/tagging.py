"""S3 tags: the ``Tagging`` XML document, the ``x-amz-tagging`` header, and the
limits AWS enforces on both (objects: 10 tags; buckets: 50; keys up to 128 and values
up to 256 Unicode characters; unique keys; the ``aws:`` prefix is AWS's own)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

from s3proxy.errors import BadRequest, InvalidArgument, InvalidTag, MalformedXML
from s3proxy.web import xml

MAX_OBJECT_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_KEY_LENGTH = 128
MAX_VALUE_LENGTH = 256


def check_tags(pairs: list[tuple[str, str]], limit: int) -> dict[str, str]:
    """The tags as a dict, in the client's order; InvalidTag or BadRequest as AWS."""
    if len(pairs) > limit:
        what = "Object" if limit == MAX_OBJECT_TAGS else "Bucket"
        raise BadRequest(f"{what} tags cannot be greater than {limit}")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidTag(
                f"The TagKey you have provided is invalid (1 to {MAX_KEY_LENGTH} characters)",
                TagKey=key,
            )
        if len(value) > MAX_VALUE_LENGTH:
            raise InvalidTag(
                f"The TagValue you have provided is too long, max {MAX_VALUE_LENGTH}",
                TagKey=key,
            )
        if key.lower().startswith("aws:"):
            raise InvalidTag("Your TagKey cannot be prefixed with aws:", TagKey=key)
        if key in tags:
            raise InvalidTag("Cannot provide multiple Tags with the same key", TagKey=key)
        tags[key] = value
    return tags


def tags_from_header(value: str | None) -> dict[str, str] | None:
    """``x-amz-tagging: k1=v1&k2=v2`` (URL-query encoded); None without the header."""
    if value is None:
        return None
    try:
        pairs = parse_qsl(value, keep_blank_values=True, strict_parsing=bool(value))
    except ValueError:
        raise InvalidArgument(
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL "
            "query parameters without tag name duplicates.",
            ArgumentName="x-amz-tagging",
            ArgumentValue=value,
        ) from None
    return check_tags(pairs, MAX_OBJECT_TAGS)


def tags_to_header(tags: Mapping[str, str]) -> str:
    return urlencode(list(tags.items()))


def parse_tagging(body: bytes, limit: int) -> dict[str, str]:
    """The tags of a PutObjectTagging / PutBucketTagging body."""
    root = xml.parse(body, "Tagging")
    tag_sets = xml.children(root, "TagSet")
    if len(tag_sets) != 1:
        raise MalformedXML()
    pairs: list[tuple[str, str]] = []
    for tag in xml.children(tag_sets[0], "Tag"):
        key, value = xml.child_text(tag, "Key"), xml.child_text(tag, "Value")
        if key is None or value is None:
            raise MalformedXML()
        pairs.append((key, value))
    return check_tags(pairs, limit)


def render_tagging(tags: Mapping[str, str]) -> bytes:
    return xml.document(
        "Tagging",
        xml.element(
            "TagSet", [xml.element("Tag", ("Key", k), ("Value", v)) for k, v in tags.items()]
        ),
    )


def tags_to_json(tags: Mapping[str, str]) -> str:
    """How bucket tags are kept as a bucket configuration document."""
    return json.dumps(list(tags.items()))


def tags_from_json(text: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in json.loads(text)}
