"""The access log, the metrics and the admin endpoints, in process: HTTPChannel over a
StringTransport (see test_streaming_request), the storage in memory or failing on
purpose, events captured with EventLoggingObserver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web import http

from s3proxy.config import Settings
from s3proxy.observe.accesslog import ACCESS_FIELDS, ACCESS_NAMESPACE
from s3proxy.observe.admin import READY_TIMEOUT, admin_name
from s3proxy.observe.jsonlog import json_line
from s3proxy.storage.memory import MemoryStorage
from s3proxy.web.app import S3Application
from s3proxy.web.request import make_site
from tests.channel.test_streaming_request import Response, parse_responses, request_bytes

BUCKET = "obs-bucket"


class BrokenStorage(MemoryStorage):
    """A memory backend whose readiness check and reads fail as a broken disk would."""

    def __init__(self) -> None:
        super().__init__()
        self.healthy = True
        self.hang = False

    def check(self) -> Deferred[None]:
        if self.hang:
            return Deferred()
        if not self.healthy:
            return fail(OSError(5, "Input/output error"))
        return super().check()

    def open_reader(self, bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
        if not self.healthy:
            return fail(OSError(5, "Input/output error"))
        return super().open_reader(bucket, key, *args, **kwargs)


class FailingReader:
    """Writes the first half of the object, then fails as a disk read error would."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.info = reader.info
        self.byte_range = reader.byte_range

    def start(self, consumer: Any) -> Deferred[None]:
        self.reader.close()
        consumer.write(b"h" * (self.info.size // 2))
        return fail(OSError(5, "Input/output error"))

    def restrict(self, byte_range: Any) -> None:
        self.reader.restrict(byte_range)

    def close(self) -> None:
        self.reader.close()


class MidwayFailingStorage(MemoryStorage):
    def open_reader(self, bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
        d = super().open_reader(bucket, key, *args, **kwargs)
        return d.addCallback(FailingReader)


class Site:
    """One application and a way to open connections to it."""

    def __init__(self, storage: MemoryStorage | None = None, admin: bool = True) -> None:
        self.clock = Clock()
        self.storage = storage if storage is not None else MemoryStorage()
        self.app = S3Application(self.storage, Settings(), self.clock)
        self.site = make_site(self.app.resource(admin=admin), self.clock)

    def connect(self) -> Connection:
        return Connection(self)

    def call(self, method: str, target: str, **kwargs: Any) -> Response:
        return self.connect().call(method, target, **kwargs)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /-/metrics by (name, sorted labels)."""
        response = self.call("GET", "/-/metrics")
        assert response.status == 200
        samples = {}
        for family in text_string_to_metric_families(response.body.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples


class Connection:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.protocol: http.HTTPChannel = site.site.buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def call(self, method: str, target: str, **kwargs: Any) -> Response:
        self.protocol.dataReceived(request_bytes(method, target, **kwargs))
        self.site.clock.advance(0)
        data = self.transport.value()
        self.transport.clear()
        [response] = parse_responses(data, [method])
        return response


@pytest.fixture
def events() -> Iterator[EventLoggingObserver]:
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    yield observer
    globalLogPublisher.removeObserver(observer)


def access_events(events: EventLoggingObserver) -> list[LogEvent]:
    return [e for e in events if e.get("log_namespace") == ACCESS_NAMESPACE]


def sample(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


# -- the access log ------------------------------------------------------------------------


def test_one_access_event_per_request_with_its_fields(events: EventLoggingObserver) -> None:
    site = Site()
    created = site.call("PUT", f"/{BUCKET}")
    put = site.call("PUT", f"/{BUCKET}/dir/hello.txt", body=b"hello world")
    got = site.call("GET", f"/api/v1/s3/{BUCKET}/dir/hello.txt")
    missing = site.call("GET", f"/{BUCKET}/nothing-here")
    assert [r.status for r in (created, put, got, missing)] == [200, 200, 200, 404]
    logged = access_events(events)
    assert len(logged) == 4
    by_id = {e["request_id"]: e for e in logged}
    assert set(by_id) == {r.header("x-amz-request-id") for r in (created, put, got, missing)}

    first = by_id[created.header("x-amz-request-id")]
    assert (first["method"], first["operation"], first["bucket"], first["key"]) == (
        "PUT",
        "CreateBucket",
        BUCKET,
        None,
    )
    assert (first["status"], first["error_code"], first["completed"]) == (200, None, True)

    upload = by_id[put.header("x-amz-request-id")]
    assert (upload["operation"], upload["key"], upload["bytes_in"]) == (
        "PutObject",
        "dir/hello.txt",
        len(b"hello world"),
    )
    assert upload["user"] == "anonymous"
    assert upload["remote"] == "192.168.1.1"  # StringTransport's peer

    download = by_id[got.header("x-amz-request-id")]
    assert (download["operation"], download["status"]) == ("GetObject", 200)
    assert download["bytes_out"] == len(b"hello world") == len(got.body)

    error = by_id[missing.header("x-amz-request-id")]
    assert (error["status"], error["error_code"]) == (404, "NoSuchKey")
    assert error["bytes_out"] == len(missing.body) > 0
    for event in logged:
        assert set(ACCESS_FIELDS) <= set(event)
        assert isinstance(event["duration_ms"], float) and event["duration_ms"] >= 0


def test_text_line_is_one_readable_line(events: EventLoggingObserver) -> None:
    site = Site()
    site.call("PUT", f"/{BUCKET}")
    missing = site.call("GET", f"/{BUCKET}/a%20key%0Awith%20a%20newline")
    [event] = access_events(events)[1:]
    line = formatEvent(event)
    assert "\n" not in line
    fields = line.split(" ")
    assert fields[:3] == ["192.168.1.1", "anonymous", "GET"]
    assert fields[-1] == f"id={missing.header('x-amz-request-id')}"
    assert "GetObject 404 NoSuchKey" in line
    assert f"/{BUCKET}/a%20key%0Awith%20a%20newline " in line


def test_json_line_has_exactly_the_access_fields(events: EventLoggingObserver) -> None:
    site = Site()
    site.call("PUT", f"/{BUCKET}", headers={"Authorization": "AWS4-HMAC-SHA256 Signature=ab"})
    [event] = access_events(events)
    line = json_line(event)
    assert line.endswith("\n") and line.count("\n") == 1
    record = json.loads(line)
    assert set(record) == {"time", "level", "namespace", *ACCESS_FIELDS}
    assert record["namespace"] == "s3proxy.access" and record["level"] == "info"
    assert record["operation"] == "CreateBucket"
    assert "Signature" not in line


def test_a_connection_lost_mid_upload_is_logged_once(events: EventLoggingObserver) -> None:
    site = Site()
    site.call("PUT", f"/{BUCKET}")
    connection = site.connect()
    connection.protocol.dataReceived(
        request_bytes("PUT", f"/{BUCKET}/big", length=1024 * 1024) + b"x" * 200_000
    )
    site.clock.advance(0)
    assert sample(site.metrics(), "s3proxy_requests_in_flight") == 1
    connection.protocol.connectionLost(Failure(ConnectionLost()))
    [event] = access_events(events)[1:]
    assert (event["operation"], event["status"], event["completed"]) == ("PutObject", 0, False)
    assert event["bytes_in"] == 200_000
    assert "ConnectionLost" in formatEvent(event)
    assert sample(site.metrics(), "s3proxy_requests_in_flight") == 0


def test_admin_requests_are_not_access_logged(events: EventLoggingObserver) -> None:
    site = Site()
    assert site.call("GET", "/-/health").status == 200
    assert access_events(events) == []


# -- metrics ---------------------------------------------------------------------------


def test_counters_move_with_requests() -> None:
    site = Site()
    before = site.metrics()
    site.call("PUT", f"/{BUCKET}")
    site.call("PUT", f"/{BUCKET}/k", body=b"12345")
    site.call("GET", f"/{BUCKET}/k")
    site.call("GET", f"/{BUCKET}/k")
    site.call("GET", f"/{BUCKET}/missing")
    after = site.metrics()
    assert sample(before, "s3proxy_requests_total", operation="GetObject", status="200") == 0
    assert sample(after, "s3proxy_requests_total", operation="GetObject", status="200") == 2
    assert sample(after, "s3proxy_requests_total", operation="GetObject", status="404") == 1
    assert sample(after, "s3proxy_requests_total", operation="PutObject", status="200") == 1
    assert sample(after, "s3proxy_received_bytes_total", operation="PutObject") == 5
    assert sample(after, "s3proxy_sent_bytes_total", operation="GetObject") >= 10
    count = sample(after, "s3proxy_request_duration_seconds_count", operation="GetObject")
    assert count == 3
    inf = sample(after, "s3proxy_request_duration_seconds_bucket", operation="GetObject", le="+Inf")
    assert inf == 3
    assert sample(after, "s3proxy_requests_in_flight") == 0
    assert sample(after, "s3proxy_backend_errors_total", operation="GetObject") == 0


def test_backend_failures_count_as_backend_errors(no_logged_errors: list[str]) -> None:
    storage = BrokenStorage()
    site = Site(storage)
    site.call("PUT", f"/{BUCKET}")
    site.call("PUT", f"/{BUCKET}/k", body=b"data")
    storage.healthy = False
    response = site.call("GET", f"/{BUCKET}/k")
    assert response.status == 500 and b"<Code>InternalError</Code>" in response.body
    assert b"Input/output" not in response.body
    metrics = site.metrics()
    assert sample(metrics, "s3proxy_backend_errors_total", operation="GetObject") == 1
    assert sample(metrics, "s3proxy_requests_total", operation="GetObject", status="500") == 1
    # The application logged the failure (as it must); that one is expected here.
    assert len(no_logged_errors) == 1 and "internal error" in no_logged_errors[0]
    no_logged_errors.clear()


def test_a_body_cut_short_is_a_backend_error(
    events: EventLoggingObserver, no_logged_errors: list[str]
) -> None:
    site = Site(MidwayFailingStorage())
    site.call("PUT", f"/{BUCKET}")
    site.call("PUT", f"/{BUCKET}/k", body=b"0123456789")
    connection = site.connect()
    connection.transport.abortConnection = (  # type: ignore[method-assign]
        lambda: connection.protocol.connectionLost(Failure(ConnectionLost()))
    )
    connection.protocol.dataReceived(request_bytes("GET", f"/{BUCKET}/k"))
    site.clock.advance(0)
    [event] = access_events(events)[2:]
    assert (event["status"], event["completed"], event["bytes_out"]) == (200, False, 5)
    metrics = site.metrics()
    assert sample(metrics, "s3proxy_backend_errors_total", operation="GetObject") == 1
    assert len(no_logged_errors) == 1 and "failed mid-response" in no_logged_errors[0]
    no_logged_errors.clear()


def test_not_implemented_is_no_backend_error() -> None:
    site = Site()
    site.call("PUT", f"/{BUCKET}")
    assert site.call("GET", f"/{BUCKET}?inventory").status == 501
    metrics = site.metrics()
    assert sample(metrics, "s3proxy_requests_total", operation="Unknown", status="501") == 1
    assert sample(metrics, "s3proxy_backend_errors_total", operation="Unknown") == 0


def test_metrics_never_show_keys_or_secrets() -> None:
    site = Site()
    site.call("PUT", f"/{BUCKET}")
    site.call(
        "PUT",
        f"/{BUCKET}/secret-key-name?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIAXYZ",
        body=b"x",
    )
    text = site.call("GET", "/-/metrics").body.decode()
    for word in ("secret-key-name", "deadbeef", "AKIAXYZ", BUCKET):
        assert word not in text


# -- the admin endpoints ---------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "/api/v1/s3"])
def test_health_at_the_root_and_under_the_prefix(prefix: str) -> None:
    response = Site().call("GET", f"{prefix}/-/health")
    assert (response.status, response.body) == (200, b"ok\n")
    assert response.header("content-type") == "text/plain; charset=utf-8"
    head = Site().call("HEAD", f"{prefix}/-/health")
    assert head.status == 200 and head.header("content-length") == "3"


def test_metrics_content_type_and_prefix() -> None:
    response = Site().call("GET", "/api/v1/s3/-/metrics")
    assert response.status == 200
    assert response.header("content-type").startswith("text/plain; version=0.0.4")
    assert b"# TYPE s3proxy_requests_total counter" in response.body


def test_ready_follows_the_storage() -> None:
    storage = BrokenStorage()
    site = Site(storage)
    assert site.call("GET", "/-/ready").status == 200
    storage.healthy = False
    response = site.call("GET", "/-/ready")
    assert (response.status, response.body) == (503, b"not ready\n")
    assert site.call("GET", "/-/health").status == 200  # alive, though not ready


def test_not_ready_once_shutting_down() -> None:
    site = Site()
    assert site.call("GET", "/-/ready").status == 200
    site.app.mark_stopping()  # what SIGTERM's drain does first
    response = site.call("GET", "/-/ready")
    assert (response.status, response.body) == (503, b"stopping\n")
    assert site.call("GET", "/-/health").status == 200


def test_ready_answers_503_when_the_storage_hangs() -> None:
    storage = BrokenStorage()
    storage.hang = True
    site = Site(storage)
    connection = site.connect()
    connection.protocol.dataReceived(request_bytes("GET", "/-/ready"))
    assert connection.transport.value() == b""
    site.clock.advance(READY_TIMEOUT)
    [response] = parse_responses(connection.transport.value(), ["GET"])
    assert response.status == 503


def test_unknown_admin_path_and_method() -> None:
    site = Site()
    assert site.call("GET", "/-/nothing").status == 404
    refused = site.call("POST", "/-/health")
    assert refused.status == 405 and refused.header("allow") == "GET, HEAD"


def test_without_admin_the_path_is_a_bucket_name_that_cannot_exist() -> None:
    response = Site(admin=False).call("GET", "/-/health")
    assert response.status == 404
    assert b"<Code>NoSuchBucket</Code>" in response.body


def test_admin_name() -> None:
    assert admin_name(b"/-/ready", "/api/v1/s3") == b"ready"
    assert admin_name(b"/api/v1/s3/-/metrics", "/api/v1/s3") == b"metrics"
    assert admin_name(b"/api/v1/s3/bucket/-/x", "/api/v1/s3") is None
    assert admin_name(b"/bucket/-/health", "") is None
    assert admin_name(b"/-bucket", "") is None
