"""The admin endpoints under ``/-/`` (no bucket name starts with "-", so they never
shadow a bucket): ``health`` (the process answers), ``ready`` (the storage
answers) and ``metrics`` (Prometheus text format). They need no signature and show
nothing secret: fixed words and counters by operation and status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from s3proxy.interfaces import IStorage
from s3proxy.observe.metrics import METRICS_CONTENT_TYPE, Metrics

ADMIN_ROOT = b"/-/"
# A readiness probe must answer even if the storage hangs (a stuck NFS mount).
READY_TIMEOUT = 5.0


def admin_name(path: bytes, prefix: str) -> bytes | None:
    """``b"health"`` for ``/-/health`` or ``{prefix}/-/health``; None for any path
    that is not an admin path."""
    if path.startswith(ADMIN_ROOT):
        return path[len(ADMIN_ROOT) :]
    encoded = prefix.rstrip("/").encode()
    if encoded and path.startswith(encoded + ADMIN_ROOT):
        return path[len(encoded) + len(ADMIN_ROOT) :]
    return None


def _answer(request: Request, status: int, body: bytes, content_type: bytes) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Content-Length", str(len(body)).encode())
    request.setHeader(b"Cache-Control", b"no-store")
    return body


TEXT = b"text/plain; charset=utf-8"


class AdminResource(Resource):
    isLeaf = True
    log = Logger()

    def __init__(
        self,
        storage: IStorage,
        metrics: Metrics,
        prefix: str,
        reactor: Any,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__()
        self.stopping = stopping
        self.storage = storage
        self.metrics = metrics
        self.prefix = prefix
        self.reactor = reactor

    def render(self, request: Request) -> bytes | int:
        assert request.path is not None and request.method is not None
        name = admin_name(request.path, self.prefix)
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            return _answer(request, 405, b"method not allowed\n", TEXT)
        if name == b"health":
            return _answer(request, 200, b"ok\n", TEXT)
        if name == b"metrics":
            body = self.metrics.exposition()
            return _answer(request, 200, body, METRICS_CONTENT_TYPE.encode())
        if name == b"ready":
            self._ready(request)
            return NOT_DONE_YET
        return _answer(request, 404, b"not found\n", TEXT)

    def _ready(self, request: Request) -> None:
        if self.stopping():
            # Shutting down: a load balancer should send new requests elsewhere.
            request.write(_answer(request, 503, b"stopping\n", TEXT))
            request.finish()
            return
        d: Deferred[None] = self.storage.check()
        d.addTimeout(READY_TIMEOUT, self.reactor)

        def ready(_: object) -> tuple[int, bytes]:
            return 200, b"ready\n"

        def not_ready(failure: Failure) -> tuple[int, bytes]:
            # The reason goes to the log, not to whoever asks.
            self.log.warn("readiness check failed: {reason}", reason=failure.getErrorMessage())
            return 503, b"not ready\n"

        def send(result: tuple[int, bytes]) -> None:
            if request._disconnected or request.finished:
                return
            status, body = result
            request.write(_answer(request, status, body, TEXT))
            request.finish()

        d.addCallbacks(ready, not_ready).addCallback(send)
