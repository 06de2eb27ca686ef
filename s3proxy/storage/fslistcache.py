"""What listings show of each file, remembered between listings.

A listing page of a thousand keys otherwise reads and parses a thousand metadata
records (a getxattr and a JSON parse each, about two thirds of a page's time). A
record can change only together with its file's ctime (xattr) or its sidecar's inode,
so the fields are kept with that stamp and reused while the stamp is unchanged.

File times tick coarsely (a few milliseconds), so two changes within one tick can
leave the same stamp: as git does with its index, a stamp younger than a couple of
seconds is never trusted, and such files are read afresh every time.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable

ListingFields = tuple[str, str, str]  # ETag, owner id, owner name

RACY_NS = 2_000_000_000


class ListingFieldCache:
    """A bounded LRU map of data path -> (stamp, fields); safe across pool threads."""

    def __init__(self, size: int = 16384) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Hashable, ListingFields]] = OrderedDict()

    def get(self, path: str, stamp: Hashable | None) -> ListingFields | None:
        if stamp is None:
            return None
        # Lock-free: each OrderedDict call is atomic under the GIL; an entry evicted
        # between the two calls just stays evicted.
        found = self._entries.get(path)
        if found is None or found[0] != stamp:
            return None
        try:
            self._entries.move_to_end(path)
        except KeyError:
            pass
        return found[1]

    def put(
        self, path: str, stamp: Hashable | None, changed_ns: int, fields: ListingFields
    ) -> None:
        """Remember ``fields`` under ``stamp`` unless the file changed too recently
        (``changed_ns``: its newest ctime) for the stamp to be trusted."""
        if stamp is None or self._size <= 0 or changed_ns > time.time_ns() - RACY_NS:
            return
        etag, owner_id, owner_name = fields
        # Few owners, many files: one copy of each owner's strings, not one per entry
        # (a third of a full cache's ~9 MiB).
        fields = (etag, sys.intern(owner_id), sys.intern(owner_name))
        with self._lock:
            self._entries[path] = (stamp, fields)
            self._entries.move_to_end(path)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
