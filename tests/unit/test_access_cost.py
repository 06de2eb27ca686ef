"""The access log and the metrics run on every request: their cost per request (the
monitor's begin and end, one access event through the JSON observer, the metrics)
must stay in the tens of microseconds. Measured here with a loose bound (about 20 µs
on a quiet machine against a 200 µs bound) so that only a real regression fails."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import pytest
from twisted.logger import globalLogPublisher
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from s3proxy.observe.jsonlog import json_file_observer
from s3proxy.observe.monitor import RequestMonitor

ROUNDS = 3
REQUESTS = 1000
BOUND_SECONDS = 200e-6


class Context:
    operation = "GetObject"
    bucket = "bucket"
    key = "some/key.txt"
    auth = None


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    observer = json_file_observer(out)
    globalLogPublisher.addObserver(observer)
    yield out
    globalLogPublisher.removeObserver(observer)


def answered_requests(count: int) -> list[Request]:
    requests = []
    for _ in range(count):
        request = Request(DummyChannel())
        request.method = b"GET"
        request.startedWriting = 1
        request.sentLength = 1000
        requests.append(request)
    return requests


def test_per_request_cost(log_lines: io.StringIO) -> None:
    monitor = RequestMonitor()
    best = float("inf")
    for round_number in range(ROUNDS):
        requests = answered_requests(REQUESTS)
        started = time.perf_counter()
        for number, request in enumerate(requests):
            record = monitor.begin(request, f"{round_number:08X}{number:08X}")
            record.context = Context
            for notification in request.notifications:
                notification.callback(None)
        best = min(best, (time.perf_counter() - started) / REQUESTS)
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    access = [line for line in lines if line["namespace"] == "s3proxy.access"]
    assert len(access) == ROUNDS * REQUESTS
    assert access[-1]["key"] == "some/key.txt" and access[-1]["bytes_out"] == 1000
    assert best < BOUND_SECONDS, f"{best * 1e6:.0f} µs per request"
