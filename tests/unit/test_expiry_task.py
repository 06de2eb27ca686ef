"""The periodic expiry of abandoned multipart uploads: a storage refusal (read-only
root, full disk) is one warning line per run; an unexpected failure keeps its
traceback."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher

from s3proxy.errors import StorageReadOnly
from s3proxy.tap import ExpiryTask


class RefusingStorage:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.asked: list[float] = []

    def expire_multipart_uploads(self, older_than: float) -> Deferred[int]:
        self.asked.append(older_than)
        return fail(self.error)


def run_once(error: Exception) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        clock = Clock()
        clock.advance(1000)
        storage = RefusingStorage(error)
        ExpiryTask(storage, 100, clock)()  # type: ignore[arg-type]
        assert storage.asked == [900]
    finally:
        globalLogPublisher.removeObserver(events.append)
    return [e for e in events if "expiring" in e.get("log_format", "")]


def test_storage_refusal_is_one_warning() -> None:
    (event,) = run_once(StorageReadOnly())
    assert event["log_level"] == LogLevel.warn
    assert "log_failure" not in event
    assert "read-only" in event["error"]


def test_unexpected_failure_keeps_its_traceback() -> None:
    (event,) = run_once(RuntimeError("a bug"))
    assert event["log_level"] == LogLevel.critical
    assert event["log_failure"].check(RuntimeError)
