"""Shared by the channel tests."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from zope.interface import implementer


@pytest.fixture(autouse=True)
def no_logged_errors() -> Iterator[list[str]]:
    """No test may log a failure or an error (the app logs unexpected exceptions), nor
    cause a warning (such as Twisted's "request.finish called twice")."""
    errors: list[str] = []

    @implementer(ILogObserver)
    def observer(event: dict[str, Any]) -> None:
        if "log_failure" in event or event.get("log_level") in (LogLevel.error, LogLevel.critical):
            text = formatEvent(event)
            if "log_failure" in event:
                text += "\n" + event["log_failure"].getTraceback()
            errors.append(text)

    globalLogPublisher.addObserver(observer)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield errors
    finally:
        globalLogPublisher.removeObserver(observer)
    errors += [f"warning: {w.category.__name__}: {w.message}" for w in caught]
    if errors:
        pytest.fail("errors were logged:\n" + "\n".join(errors), pytrace=False)
