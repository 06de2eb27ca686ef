"""Create-only writes (``If-None-Match: *``) over upstreams that ignore the condition.

Ceph RGW 16.2 stores a PUT or a completion whatever its If-None-Match says. We send
the condition (AWS and MinIO decide atomically), and before the write takes effect we
also check here: creators of one key in this daemon take turns, and each asks the
upstream whether the key exists while it holds back what commits its write (a body's
last byte, or the completion request). Between daemons a window of one HEAD remains
on such upstreams; on the ones that honour the condition there is none."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import DeferredLock

from s3proxy.errors import NoSuchKey, PreconditionFailed
from s3proxy.storage.s3.client import UpstreamClient

Release = Callable[[], None]


class CreateGuard:
    """One lock per upstream key being created, held from the check to the commit."""

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self._locks: dict[tuple[str, str], DeferredLock] = {}

    async def claim(self, upstream_bucket: str, key: str) -> Release:
        """Wait for our turn; fail with PreconditionFailed if ``key`` exists. The
        caller commits its write and then calls the returned release."""
        name = (upstream_bucket, key)
        lock = self._locks.setdefault(name, DeferredLock())
        await lock.acquire()

        def release() -> None:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(name, None)

        try:
            await self.client.fetch("HEAD", upstream_bucket, key, not_found=NoSuchKey)
        except NoSuchKey:
            return release
        except BaseException:
            release()
            raise
        release()
        raise PreconditionFailed()
