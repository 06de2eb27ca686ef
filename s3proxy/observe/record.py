"""What one request did, collected while it is served and read once it ended."""

from __future__ import annotations

from time import monotonic
from typing import Any


class AccessRecord:
    """Filled in by the application as it goes; ``__slots__`` keeps the per-request
    cost to one small object."""

    __slots__ = ("request_id", "started", "context", "error_code", "failed_midway")

    def __init__(self, request_id: str, started: float | None = None) -> None:
        self.request_id = request_id
        self.started = monotonic() if started is None else started
        # The request's S3Context once parsed: operation, bucket, key and who signed
        # are read from it at the end (they are set at different steps).
        self.context: Any = None
        self.error_code: str | None = None
        # The headers were out when the body failed (the connection was aborted).
        self.failed_midway = False

    def operation(self) -> str:
        return "Unknown" if self.context is None else str(self.context.operation)

    def target(self) -> tuple[str | None, str | None]:
        if self.context is None:
            return None, None
        return self.context.bucket, self.context.key

    def user(self) -> str:
        """The verified access key, or "anonymous" (also for any request in open
        mode, where signatures are not checked)."""
        auth = None if self.context is None else self.context.auth
        return "anonymous" if auth is None else str(auth.user.access_key)
