"""Watches each S3 request from start to end: the in-flight gauge while it runs,
then one access event and the metrics once its response finished (or its
connection was lost)."""

from __future__ import annotations

from time import monotonic
from typing import Any

from twisted.web.server import Request

from s3proxy.observe.accesslog import emit_access
from s3proxy.observe.metrics import Metrics
from s3proxy.observe.record import AccessRecord


def remote_address(request: Request) -> str:
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else "unix"


def is_backend_error(status: int, record: AccessRecord) -> bool:
    # 501 NotImplemented is the client asking for something we do not do.
    if record.failed_midway or record.error_code == "InternalError":
        return True
    return status >= 500 and status != 501


class RequestMonitor:
    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()

    def begin(self, request: Request, request_id: str) -> AccessRecord:
        """Start watching ``request``; the caller fills the record in as it goes."""
        record = AccessRecord(request_id, getattr(request, "started", None))
        self.metrics.in_flight.inc()
        if request._disconnected:
            # Gone before we started: notifyFinish would never fire.
            self._ended(None, request, record)
        else:
            request.notifyFinish().addBoth(self._ended, request, record)
        return record

    def _ended(self, result: object, request: Request, record: AccessRecord) -> None:
        # ``result`` is None, or a Failure when the connection was lost first: that
        # is an outcome to record, not an error to propagate.
        seconds = monotonic() - record.started
        completed = result is None and not record.failed_midway and not request._disconnected
        status = request.code if request.startedWriting else 0
        bytes_in: int = getattr(request, "bytes_in", 0)
        bytes_out = request.sentLength
        operation = record.operation()
        bucket, key = record.target()
        self.metrics.in_flight.dec()
        self.metrics.observe(
            operation,
            status,
            bytes_in,
            bytes_out,
            seconds,
            is_backend_error(status, record),
        )
        method: Any = request.method
        emit_access(
            request_id=record.request_id,
            remote=remote_address(request),
            user=record.user(),
            method=method.decode("ascii", "replace"),
            operation=operation,
            bucket=bucket,
            key=key,
            status=status,
            error_code=record.error_code,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            duration_ms=round(seconds * 1000, 3),
            completed=completed,
        )
