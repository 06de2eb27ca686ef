"""Small helpers shared by the S3 backend's modules."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, FirstError, ensureDeferred, gatherResults

T = TypeVar("T")
# Upstream requests one operation may have in flight at once (listing ACLs, uploads).
FAN_OUT = 8


async def gather(calls: Sequence[Callable[[], Coroutine[Any, Any, T]]]) -> list[T]:
    """Run ``calls`` FAN_OUT at a time; their results in order, or the first failure."""
    results: list[T] = []
    for start in range(0, len(calls), FAN_OUT):
        batch = [ensureDeferred(call()) for call in calls[start : start + FAN_OUT]]
        try:
            results += await gatherResults(batch, consumeErrors=True)
        except FirstError as e:
            e.subFailure.raiseException()
    return results


def now() -> float:
    """Whole seconds, the precision of the upstream's Last-Modified."""
    return float(int(time.time()))


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def to_deferred(coroutine: Coroutine[Any, Any, T]) -> Deferred[T]:
    """Failures of ``coroutine`` (S3Errors) fail the Deferred, never the call."""
    return ensureDeferred(coroutine)
