"""Bucket records are remembered for a short while and forgotten on this process's
own changes, including a change racing a read."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed

from s3proxy.errors import NoSuchBucket
from s3proxy.model import BucketInfo
from s3proxy.storage.bucketcache import BucketInfoCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """Counts reads; answers with the current ``created`` value."""

    def __init__(self) -> None:
        self.reads = 0
        self.created = 1.0
        self.exists = True

    def read(self, bucket: str) -> Deferred[BucketInfo]:
        self.reads += 1
        if not self.exists:
            return fail(NoSuchBucket(BucketName=bucket))
        return succeed(BucketInfo(bucket, self.created))


def head(cache: BucketInfoCache, backend: Backend, bucket: str = "b") -> BucketInfo:
    results: list[BucketInfo] = []
    cache.head(bucket, backend.read).addCallback(results.append)
    assert len(results) == 1
    return results[0]


def test_reused_within_ttl_then_read_again() -> None:
    clock, backend = Clock(), Backend()
    cache = BucketInfoCache(ttl=1.0, clock=clock)
    assert head(cache, backend).creation_date == 1.0
    backend.created = 2.0  # another process changed it
    clock.now += 0.5
    assert head(cache, backend).creation_date == 1.0
    assert backend.reads == 1
    clock.now += 0.6
    assert head(cache, backend).creation_date == 2.0
    assert backend.reads == 2


def test_own_change_is_seen_at_once() -> None:
    clock, backend = Clock(), Backend()
    cache = BucketInfoCache(ttl=1.0, clock=clock)
    head(cache, backend)
    backend.created = 3.0
    cache.changed("b")
    assert head(cache, backend).creation_date == 3.0


def test_failures_are_not_remembered() -> None:
    clock, backend = Clock(), Backend()
    cache = BucketInfoCache(ttl=1.0, clock=clock)
    backend.exists = False
    errors: list[object] = []
    cache.head("b", backend.read).addErrback(errors.append)
    assert len(errors) == 1
    backend.exists = True
    assert head(cache, backend).name == "b"
    assert backend.reads == 2


def test_a_read_racing_a_change_is_not_remembered() -> None:
    clock, backend = Clock(), Backend()
    cache = BucketInfoCache(ttl=1.0, clock=clock)
    pending: Deferred[BucketInfo] = Deferred()
    cache.head("b", lambda b: pending)
    cache.changed("b")  # e.g. PutBucketAcl finished while the read was in flight
    pending.callback(BucketInfo("b", 1.0))
    backend.created = 4.0
    assert head(cache, backend).creation_date == 4.0


def test_zero_ttl_never_remembers() -> None:
    clock, backend = Clock(), Backend()
    cache = BucketInfoCache(ttl=0, clock=clock)
    head(cache, backend)
    head(cache, backend)
    assert backend.reads == 2


def test_known_while_fresh_and_forgotten_around_a_change() -> None:
    clock, backend = Clock(), Backend()
    cache = BucketInfoCache(ttl=1.0, clock=clock)
    assert not cache.known("b")
    head(cache, backend)
    assert cache.known("b")
    change: Deferred[None] = Deferred()
    cache.changing("b", change)
    assert not cache.known("b")
    head(cache, backend)  # a read while the change is in flight...
    change.callback(None)
    assert not cache.known("b")  # ...is forgotten when it ends
    head(cache, backend)
    clock.now += 1.5
    assert not cache.known("b")
