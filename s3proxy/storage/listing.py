"""Turning an ordered stream of keys into one S3 listing page, lazily."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from s3proxy.model import ListPage, ObjectInfo


@dataclass(frozen=True)
class CommonPrefix:
    prefix: str


ListEntry = ObjectInfo | CommonPrefix


def roll_up(
    objects: Iterable[ObjectInfo], prefix: str, delimiter: str, marker: str
) -> Iterator[ListEntry]:
    """Collapse keys into common prefixes. ``objects`` must already be the keys that
    start with ``prefix`` and sort after ``marker``, in S3 order."""
    last_prefix = None
    for info in objects:
        if delimiter:
            cut = info.key.find(delimiter, len(prefix))
            if cut >= 0:
                common = info.key[: cut + len(delimiter)]
                if common != last_prefix and common > marker:
                    yield CommonPrefix(common)
                last_prefix = common
                continue
        yield info


def take_page(entries: Iterator[ListEntry], max_keys: int) -> ListPage:
    """Read at most ``max_keys`` entries, plus one to learn whether there are more."""
    objects: list[ObjectInfo] = []
    prefixes: list[str] = []
    last: str | None = None
    truncated = False
    if max_keys > 0:
        for entry in entries:
            if len(objects) + len(prefixes) == max_keys:
                truncated = True
                break
            if isinstance(entry, CommonPrefix):
                prefixes.append(entry.prefix)
                last = entry.prefix
            else:
                objects.append(entry)
                last = entry.key
    return ListPage(objects, prefixes, truncated, last if truncated else None)
