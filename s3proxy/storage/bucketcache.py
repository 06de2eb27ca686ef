"""Recently read bucket records (creation date, ACL), so that authorizing each request
does not cost a trip to the backend.

Every request on a bucket reads its ACL first; for a small PUT or GET that read is one
of two trips to the I/O pool (two upstream requests with the s3: backend). A record
is reused for ``ttl`` seconds. This process's own changes (create, ACL, delete) drop
it at once; another process's change (another worker or daemon on the same data) is
seen within ``ttl``, as S3's own bucket ACL changes propagate eventually.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from twisted.internet.defer import Deferred, succeed

from s3proxy.model import BucketInfo

DEFAULT_TTL = 1.0

T = TypeVar("T")


class BucketInfoCache:
    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, BucketInfo]] = {}
        # Bumped by each change, so a read that started before it is not remembered.
        self._generation: dict[str, int] = {}

    def head(
        self, bucket: str, read: Callable[[str], Deferred[BucketInfo]]
    ) -> Deferred[BucketInfo]:
        """The bucket's info: remembered, or from ``read`` (which may fail)."""
        cached = self._entries.get(bucket)
        if cached is not None and cached[0] > self._clock():
            return succeed(cached[1])
        generation = self._generation.get(bucket, 0)
        started = self._clock()

        def remember(info: BucketInfo) -> BucketInfo:
            if self._ttl > 0 and self._generation.get(bucket, 0) == generation:
                self._entries[bucket] = (started + self._ttl, info)
                if len(self._entries) > 4096:
                    self._drop_expired()
            return info

        return read(bucket).addCallback(remember)

    def known(self, bucket: str) -> bool:
        """Whether the bucket was seen to exist less than ``ttl`` ago."""
        cached = self._entries.get(bucket)
        return cached is not None and cached[0] > self._clock()

    def changing(self, bucket: str, change: Deferred[T]) -> Deferred[T]:
        """Forget the bucket now and again once ``change`` (this process changing
        it) is done, so no read racing the change is remembered."""
        self.changed(bucket)

        def done(result: T) -> T:
            self.changed(bucket)
            return result

        return change.addBoth(done)

    def changed(self, bucket: str) -> None:
        """This process is changing (or has changed) the bucket: forget it."""
        self._entries.pop(bucket, None)
        self._generation[bucket] = self._generation.get(bucket, 0) + 1

    def _drop_expired(self) -> None:
        now = self._clock()
        for name in [n for n, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[name]
