"""ListObjectsV2 upstream, mapped onto our ListPage: a marker is S3's start-after, and
a common prefix that does not sort after the marker is left out, as on our other
backends. Upstream pages are read until the page is full (plus one entry, to know
whether the listing goes on)."""

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
            query.append(("start-after", marker))
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
