"""The cache's in-memory index: which blocks of which object versions are on disk,
their checksums, the LRU order and the size bound. Pure bookkeeping: it never touches
the disk itself but tells its caller which files to delete."""

from __future__ import annotations

import os
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from s3proxy.model import ObjectInfo

# Counters reported by ``CachingStorage.stats()`` (documented in docs/configuration.md).
COUNTERS = (
    "hits",  # blocks served from the cache
    "misses",  # blocks read from the backend
    "bytes_from_cache",
    "bytes_from_backend",
    "fills",  # blocks written into the cache
    "evictions",  # blocks dropped to stay under the size bound
    "invalidations",  # cached versions dropped after a write, delete or copy through us
    "stale",  # cached versions dropped because the backend's ETag or size changed
    "corrupt",  # block files whose checksum did not match (refetched from the backend)
    "errors",  # cache I/O failures (the request went on without the cache)
)


@dataclass(frozen=True)
class Block:
    length: int
    crc32: int
    name: str  # unique per fill, so a late deletion of an older copy never hits it


@dataclass(eq=False)
class Entry:
    """One version (ETag and size) of one object and its cached blocks.

    Readers pin the entry while they use it: its blocks are not evicted and, once it
    is dropped, its files are deleted only when the last reader has let go."""

    bucket: str
    key: str
    info: ObjectInfo
    directory: str
    validated_at: float
    blocks: dict[int, Block] = field(default_factory=dict)
    filling: set[int] = field(default_factory=set)
    pins: int = 0
    dead: bool = False

    def matches(self, info: ObjectInfo) -> bool:
        return (self.info.etag, self.info.size) == (info.etag, info.size)

    def block_path(self, index: int) -> str:
        return os.path.join(self.directory, self.blocks[index].name)


class CacheIndex:
    def __init__(self, root: str, max_bytes: int, block_size: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.block_size = block_size
        self.entries: dict[tuple[str, str], Entry] = {}
        self._lru: OrderedDict[tuple[Entry, int], None] = OrderedDict()
        self.used = 0  # bytes of committed block files, dropped-but-pinned ones included
        self.reserved = 0  # bytes of blocks being written
        self.counters = dict.fromkeys(COUNTERS, 0)

    # -- entries ---------------------------------------------------------------------

    def new_entry(self, bucket: str, key: str, info: ObjectInfo, now: float) -> Entry:
        """A fresh entry for ``info``; the caller has dropped any other version. Each
        entry has its own directory, so a dropped version's files can be deleted
        later without touching a newer one's."""
        assert (bucket, key) not in self.entries
        name = uuid.uuid4().hex
        entry = Entry(bucket, key, info, os.path.join(self.root, name[:2], name), now)
        self.entries[(bucket, key)] = entry
        return entry

    def drop(self, entry: Entry) -> list[str]:
        """Forget an entry. Returns the directory to delete now (none while pinned)."""
        if self.entries.get((entry.bucket, entry.key)) is entry:
            del self.entries[(entry.bucket, entry.key)]
        if entry.dead:
            return []
        entry.dead = True
        for index in entry.blocks:
            self._lru.pop((entry, index), None)
        return self._collect(entry)

    def pin(self, entry: Entry) -> None:
        entry.pins += 1

    def unpin(self, entry: Entry) -> list[str]:
        entry.pins -= 1
        return self._forget_if_empty(entry) + self._collect(entry)

    def _forget_if_empty(self, entry: Entry) -> list[str]:
        """An entry left without blocks and readers is dropped, so the index only
        grows with what is on disk (HEADs and reads that cached nothing add nothing)."""
        if entry.pins == 0 and not entry.blocks and not entry.filling and not entry.dead:
            return self.drop(entry)
        return []

    def _collect(self, entry: Entry) -> list[str]:
        if not entry.dead or entry.pins > 0 or entry.directory == "":
            return []
        self.used -= sum(b.length for b in entry.blocks.values())
        entry.blocks.clear()
        directory, entry.directory = entry.directory, ""
        return [directory]

    # -- blocks ----------------------------------------------------------------------

    def block_length(self, entry: Entry, index: int) -> int:
        return min(self.block_size, entry.info.size - index * self.block_size)

    def claim(self, entry: Entry, index: int) -> tuple[bool, list[str]]:
        """Reserve room to write block ``index`` of ``entry``, evicting the least
        recently used blocks if needed. Returns whether the block may be written and
        the files to delete. False when another reader writes it, it is cached, or
        everything left is pinned."""
        if entry.dead or index in entry.blocks or index in entry.filling:
            return False, []
        length = self.block_length(entry, index)
        victims = self._make_room(length)
        if self.used + self.reserved + length > self.max_bytes:
            return False, victims
        self.reserved += length
        entry.filling.add(index)
        return True, victims

    def _make_room(self, length: int) -> list[str]:
        victims: list[str] = []
        # Blocks of pinned entries are being read: they count as just used.
        for _ in range(len(self._lru)):
            if self.used + self.reserved + length <= self.max_bytes:
                break
            entry, index = next(iter(self._lru))
            if entry.pins > 0:
                self._lru.move_to_end((entry, index))
                continue
            victims.append(entry.block_path(index))
            self._forget_block(entry, index)
            self.counters["evictions"] += 1
            victims += self._forget_if_empty(entry)
        return victims

    def _forget_block(self, entry: Entry, index: int) -> None:
        self._lru.pop((entry, index), None)
        self.used -= entry.blocks.pop(index).length

    def commit(self, entry: Entry, index: int, crc32: int, name: str) -> bool:
        """A claimed block is on disk as ``name`` in the entry's directory. False if
        the entry was dropped meanwhile (the caller deletes the file)."""
        length = self._release_claim(entry, index)
        if entry.dead:
            return False
        entry.blocks[index] = Block(length, crc32, name)
        self.used += length
        self._lru[(entry, index)] = None
        self.counters["fills"] += 1
        return True

    def abandon(self, entry: Entry, index: int) -> None:
        """A claimed block will not be written after all."""
        self._release_claim(entry, index)

    def _release_claim(self, entry: Entry, index: int) -> int:
        entry.filling.discard(index)
        length = self.block_length(entry, index)
        self.reserved -= length
        return length

    def touch(self, entry: Entry, index: int) -> None:
        if (entry, index) in self._lru:
            self._lru.move_to_end((entry, index))

    def discard_block(self, entry: Entry, index: int) -> str | None:
        """Forget a block found corrupt; returns its file to delete."""
        if index not in entry.blocks:
            return None
        path = entry.block_path(index)
        self._forget_block(entry, index)
        return path

    def stats(self) -> dict[str, int]:
        return {
            **self.counters,
            "entries": len(self.entries),
            "blocks": len(self._lru),
            "bytes": self.used,
            "max_bytes": self.max_bytes,
        }
