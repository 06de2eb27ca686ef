"""ListObjectsV2 upstream, mapped onto our ListPage: a marker is S3's start-after, and
a common prefix that does not sort after the marker is left out, as on our other
backends. Upstream pages are read until the page is full (plus one entry, to know
whether the listing goes on).

Ceph RGW 16.2 takes a start-after that holds the delimiter straddling the prefix's end
(prefix "a/", delimiter "/b", marker "a/b") for a common prefix and skips every key
after it; such a marker is sent shortened to before that occurrence, and what sorts
up to the real marker is dropped here, as every answer's entries are anyway."""

from __future__ import annotations

from s3proxy.model import ListPage, ObjectInfo
from s3proxy.storage.s3 import upstream_xml
from s3proxy.storage.s3.client import UpstreamClient

UPSTREAM_PAGE = 1000


async def list_page(
    client: UpstreamClient, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int
) -> ListPage:
    entries: list[tuple[str, ObjectInfo | None]] = []
    seen: set[str] = set()
    token: str | None = None
    wanted = max(max_keys, 0) + 1
    while len(entries) < wanted:
        query = [
            ("list-type", "2"),
            ("prefix", prefix),
            ("encoding-type", "url"),
            ("max-keys", str(min(UPSTREAM_PAGE, wanted - len(entries)))),
        ]
        if delimiter:
            query.append(("delimiter", delimiter))
        if token:
            query.append(("continuation-token", token))
        elif marker:
            query.append(("start-after", upstream_start_after(prefix, delimiter, marker)))
        _, body = await client.fetch("GET", bucket, query=query)
        page = upstream_xml.list_objects_v2(body)
        found: list[tuple[str, ObjectInfo | None]] = [
            (
                o.key,
                ObjectInfo(o.key, o.size, o.etag, o.last_modified, storage_class=o.storage_class),
            )
            for o in page.objects
        ]
        found += [(p, None) for p in page.common_prefixes]
        for name, info in sorted(found, key=lambda entry: entry[0]):
            if name <= marker or name in seen:
                continue
            seen.add(name)
            entries.append((name, info))
        if page.next_token is None:
            break
        token = page.next_token
    shown = entries[: max(max_keys, 0)]
    truncated = len(entries) > len(shown) and max_keys > 0
    return ListPage(
        [info for _, info in shown if info is not None],
        [name for name, info in shown if info is None],
        truncated,
        shown[-1][0] if truncated else None,
    )


def upstream_start_after(prefix: str, delimiter: str, marker: str) -> str:
    """``marker``, cut before a delimiter that starts inside ``prefix`` and ends after
    it (possible only with a delimiter of several characters)."""
    if len(delimiter) < 2 or not marker.startswith(prefix):
        return marker
    first = max(len(prefix) - len(delimiter) + 1, 0)
    at = marker.find(delimiter, first)
    if 0 <= at < len(prefix):
        return marker[: at + len(delimiter) - 1]
    return marker
