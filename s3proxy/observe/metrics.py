"""Prometheus metrics of one serving process, in a registry of its own (each worker
of ``--workers N`` has its own: a scrape sees the worker that accepted it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

# Latency buckets in seconds: small requests take around a millisecond, large
# uploads many seconds.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

# What generate_latest writes: the classic text format every Prometheus reads.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "s3proxy_requests",
            "S3 requests answered, by operation and HTTP status.",
            ["operation", "status"],
            registry=self.registry,
        )
        self.received = Counter(
            "s3proxy_received_bytes",
            "Request body bytes received, by operation.",
            ["operation"],
            registry=self.registry,
        )
        self.sent = Counter(
            "s3proxy_sent_bytes",
            "Response body bytes sent, by operation.",
            ["operation"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "s3proxy_request_duration_seconds",
            "Time from the request line to the end of the response, by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "s3proxy_requests_in_flight",
            "S3 requests being served now.",
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "s3proxy_backend_errors",
            "Requests that failed with a server error (5xx other than 501, or a "
            "response cut short) because the storage failed, by operation.",
            ["operation"],
            registry=self.registry,
        )
        # Label lookups take a lock and build a tuple; the children are reused.
        self._per_operation: dict[str, tuple[Counter, Counter, Histogram, Counter]] = {}
        self._per_status: dict[tuple[str, int], Counter] = {}

    def observe(
        self,
        operation: str,
        status: int,
        bytes_in: int,
        bytes_out: int,
        seconds: float,
        backend_error: bool,
    ) -> None:
        children = self._per_operation.get(operation)
        if children is None:
            children = (
                self.received.labels(operation),
                self.sent.labels(operation),
                self.latency.labels(operation),
                self.backend_errors.labels(operation),
            )
            self._per_operation[operation] = children
        received, sent, latency, errors = children
        counter = self._per_status.get((operation, status))
        if counter is None:
            counter = self.requests.labels(operation, str(status))
            self._per_status[(operation, status)] = counter
        counter.inc()
        if bytes_in:
            received.inc(bytes_in)
        if bytes_out:
            sent.inc(bytes_out)
        latency.observe(seconds)
        if backend_error:
            errors.inc()

    def watch_cache(self, stats: Callable[[], Mapping[str, int]]) -> None:
        """Expose the read cache's counters (``CachingStorage.stats``) too."""
        self.registry.register(CacheCollector(stats))

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


# The read cache's stats() names that are sizes now rather than counts since start-up.
CACHE_GAUGES = {"entries", "blocks", "bytes", "max_bytes"}


class CacheCollector:
    """Reads the cache's counters when scraped: ``s3proxy_cache_hits_total``,
    ``s3proxy_cache_misses_total``, ``s3proxy_cache_evictions_total``, ... and the
    gauges ``s3proxy_cache_bytes``, ``s3proxy_cache_max_bytes``, ``s3proxy_cache_entries``,
    ``s3proxy_cache_blocks``."""

    def __init__(self, stats: Callable[[], Mapping[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        for name, value in sorted(self._stats().items()):
            metric_name = f"s3proxy_cache_{name}"
            help_text = f"Read cache: {name.replace('_', ' ')}."
            if name in CACHE_GAUGES:
                yield GaugeMetricFamily(metric_name, help_text, value=value)
            else:
                yield CounterMetricFamily(metric_name, help_text, value=value)

    def describe(self) -> Iterator[Metric]:
        return iter(())
