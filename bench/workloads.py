"""The tests, each the same for every server: setup, the timed part between
``meter.start()`` and ``meter.stop()``, then checks and cleanup outside the clock.

* small PUT / small GET: ``small_ops`` requests of ``small_size`` bytes over
  ``concurrency`` keep-alive connections (one request at a time per connection).
* LIST: ListObjectsV2 pages of ``list_page`` keys over a bucket of ``list_keys`` keys,
  full listings one after another on one connection, for at least ``list_rounds`` rounds
  and ``list_seconds`` seconds; the rate is pages per second.
* large PUT / GET: one object of ``large_size`` bytes, streamed from the repeating
  pattern; the PUT's ETag is checked against the pattern's MD5 (S3 servers and the
  ceiling), the GET's bytes against the pattern as they arrive.
* multi PUT: ``multi_count`` PUTs of ``multi_size`` bytes at once, one connection each.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from xml.sax.saxutils import unescape

from loadgen import (
    GeneratedBody,
    HttpConnection,
    Pattern,
    PatternCheck,
    Response,
    build_request,
    canonical_query,
    close_all,
    open_connections,
    run_ops,
    uri_encode,
)
from metrics import Meter, Sample
from servers import Target

KiB, MiB, GiB = 1024, 1024**2, 1024**3
TEST_TIMEOUT = 3600.0
_KEY = re.compile(rb"<Key>([^<]*)</Key>")
_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")


def size_label(size: int) -> str:
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} B"


@dataclass(frozen=True)
class Workload:
    small_ops: int
    small_size: int
    concurrency: int
    list_keys: int
    list_page: int
    list_seconds: float
    list_rounds: int
    large_size: int
    multi_count: int
    multi_size: int

    def label(self, test: str) -> str:
        return {
            "small_put": f"small PUT {size_label(self.small_size)} ×{self.concurrency}",
            "small_get": f"small GET {size_label(self.small_size)} ×{self.concurrency}",
            "list": f"LIST {self.list_keys} keys, {self.list_page}/page",
            "large_put": f"PUT {size_label(self.large_size)}",
            "large_get": f"GET {size_label(self.large_size)}",
            "multi_put": f"PUT {self.multi_count} × {size_label(self.multi_size)}",
        }[test]

    @staticmethod
    def unit(test: str) -> str:
        return {"small_put": "ops/s", "small_get": "ops/s", "list": "pages/s"}.get(test, "MB/s")


FULL = Workload(
    small_ops=5000,
    small_size=KiB,
    concurrency=16,
    list_keys=10_000,
    list_page=1000,
    list_seconds=3.0,
    list_rounds=2,
    large_size=GiB,
    multi_count=8,
    multi_size=256 * MiB,
)
QUICK = Workload(
    small_ops=200,
    small_size=KiB,
    concurrency=16,
    list_keys=300,
    list_page=100,
    list_seconds=0.5,
    list_rounds=1,
    large_size=16 * MiB,
    multi_count=2,
    multi_size=8 * MiB,
)
TEST_ORDER = ("small_put", "small_get", "list", "large_put", "large_get", "multi_put")


class BenchError(RuntimeError):
    pass


class TargetBench:
    """The tests against one target, sharing its buckets and payloads."""

    def __init__(
        self, target: Target, workload: Workload, pattern: Pattern, small_body: bytes, run_id: str
    ) -> None:
        self.target = target
        self.workload = workload
        self.pattern = pattern
        self.small_body = small_body
        self.small_etag = f'"{hashlib.md5(small_body).hexdigest()}"'
        self.bucket = f"bench-{run_id}"
        self.list_bucket = f"bench-list-{run_id}"
        self._list_ready = False
        # Leave the large object after its GET, to read it again (a cache hit after a
        # miss, bench/upstream.py); ``delete_large`` then removes it.
        self.keep_large = False

    # -- requests --

    def head(
        self,
        method: str,
        bucket: str,
        key: str = "",
        query: dict[str, str] | None = None,
        length: int | None = None,
    ) -> bytes:
        path = f"{self.target.prefix}/{bucket}"
        if key:
            path += "/" + uri_encode(key, safe="/-_.~")
        return build_request(
            method,
            self.target.host_header,
            path,
            canonical_query(query) if query else "",
            self.target.signer,
            length,
        )

    def connection(self) -> HttpConnection:
        return HttpConnection(self.target.host, self.target.port)

    def check_put(self, response: Response, what: str, etag: str) -> None:
        if self.target.kind == "webdav":
            if response.status not in (201, 204):
                raise BenchError(f"{self.target.name}: {what}: {response.describe()}")
            return
        if response.status != 200:
            raise BenchError(f"{self.target.name}: {what}: {response.describe()}")
        if response.headers.get("etag") != etag:
            raise BenchError(
                f"{self.target.name}: {what}: ETag {response.headers.get('etag')}, not {etag}"
            )

    @staticmethod
    def check_status(response: Response, what: str, *expected: int) -> None:
        if response.status not in expected:
            raise BenchError(f"{what}: {response.describe()}")

    async def setup(self) -> None:
        if self.target.kind != "s3":
            return
        connection = self.connection()
        try:
            for bucket in (self.bucket, self.list_bucket):
                response = await connection.request(self.head("PUT", bucket, length=0))
                if response.status != 200 and b"BucketAlreadyOwnedByYou" not in response.body:
                    raise BenchError(f"{self.target.name}: CreateBucket: {response.describe()}")
        finally:
            connection.close()

    async def delete(self, connection: HttpConnection, bucket: str, key: str) -> None:
        response = await connection.request(self.head("DELETE", bucket, key))
        self.check_status(response, f"{self.target.name}: DELETE {key}", 200, 204)

    # -- the tests --

    async def run(self, test: str) -> Sample:
        tests: dict[str, Callable[[Meter], Awaitable[Sample]]] = {
            "small_put": self.small_put,
            "small_get": self.small_get,
            "list": self.list_objects,
            "large_put": self.large_put,
            "large_get": self.large_get,
            "multi_put": self.multi_put,
        }
        meter = Meter(self.target.server_pids, self.target.upstream_pids)
        return await asyncio.wait_for(tests[test](meter), TEST_TIMEOUT)

    async def small_put(self, meter: Meter) -> Sample:
        body = self.small_body

        async def put(connection: HttpConnection, i: int) -> None:
            head = self.head("PUT", self.bucket, f"small/{i:06d}", length=len(body))
            self.check_put(await connection.request(head, body), "small PUT", self.small_etag)

        return await self._small(meter, put)

    async def small_get(self, meter: Meter) -> Sample:
        body = self.small_body

        async def get(connection: HttpConnection, i: int) -> None:
            response = await connection.request(self.head("GET", self.bucket, f"small/{i:06d}"))
            if response.status != 200 or response.body != body:
                raise BenchError(f"{self.target.name}: small GET {i}: {response.describe()}")

        return await self._small(meter, get)

    async def _small(
        self, meter: Meter, op: Callable[[HttpConnection, int], Awaitable[None]]
    ) -> Sample:
        count = self.workload.small_ops
        connections = await open_connections(
            self.target.host, self.target.port, self.workload.concurrency
        )
        try:
            meter.start()
            latencies = await run_ops(connections, count, op)
            meter.stop()
        finally:
            close_all(connections)
        return meter.sample(count, count * self.workload.small_size, latencies)

    async def _populate_list_bucket(self) -> None:
        connections = await open_connections(
            self.target.host, self.target.port, self.workload.concurrency
        )

        async def put(connection: HttpConnection, i: int) -> None:
            response = await connection.request(
                self.head("PUT", self.list_bucket, f"list/{i:05d}", length=0), b""
            )
            self.check_status(response, f"{self.target.name}: PUT list key", 200)

        try:
            await run_ops(connections, self.workload.list_keys, put)
        finally:
            close_all(connections)
        self._list_ready = True

    async def _list_round(self, connection: HttpConnection, latencies: list[float]) -> list[bytes]:
        keys: list[bytes] = []
        token = ""
        clock = asyncio.get_running_loop().time
        while True:
            query = {"list-type": "2", "max-keys": str(self.workload.list_page)}
            if token:
                query["continuation-token"] = token
            started = clock()
            response = await connection.request(self.head("GET", self.list_bucket, query=query))
            latencies.append(clock() - started)
            self.check_status(response, f"{self.target.name}: ListObjectsV2", 200)
            keys += _KEY.findall(response.body)
            if b"<IsTruncated>true</IsTruncated>" not in response.body:
                return keys
            match = _TOKEN.search(response.body)
            if match is None:
                raise BenchError(f"{self.target.name}: truncated listing without a token")
            token = unescape(match.group(1).decode(), {"&quot;": '"', "&apos;": "'"})

    async def list_objects(self, meter: Meter) -> Sample:
        if not self._list_ready:
            await self._populate_list_bucket()
        expected = [f"list/{i:05d}".encode() for i in range(self.workload.list_keys)]
        connection = self.connection()
        await connection.connect()
        latencies: list[float] = []
        rounds = 0
        try:
            meter.start()
            clock = asyncio.get_running_loop().time
            started = clock()
            while rounds < self.workload.list_rounds or (
                clock() - started < self.workload.list_seconds
            ):
                keys = await self._list_round(connection, latencies)
                rounds += 1
                if keys != expected:
                    raise BenchError(
                        f"{self.target.name}: listing returned {len(keys)} keys, not the "
                        f"{len(expected)} expected"
                    )
            meter.stop()
        finally:
            connection.close()
        return meter.sample(len(latencies), 0, latencies)

    async def large_put(self, meter: Meter) -> Sample:
        size = self.workload.large_size
        etag = f'"{self.pattern.md5(0, size)}"'
        connection = self.connection()
        await connection.connect()
        try:
            meter.start()
            response = await connection.request(
                self.head("PUT", self.bucket, "large/object", length=size),
                GeneratedBody(self.pattern, 0, size),
            )
            meter.stop()
        finally:
            connection.close()
        self.check_put(response, "large PUT", etag)
        return meter.sample(1, size, [meter.seconds])

    async def large_get(self, meter: Meter) -> Sample:
        size = self.workload.large_size
        connection = self.connection()
        await connection.connect()
        check = PatternCheck(self.pattern)
        try:
            meter.start()
            response = await connection.request(
                self.head("GET", self.bucket, "large/object"), sink=check
            )
            meter.stop()
            self.check_status(response, f"{self.target.name}: large GET", 200)
            if check.received != size or check.mismatch_at is not None:
                raise BenchError(
                    f"{self.target.name}: large GET: {check.received} bytes of {size}, "
                    f"first wrong byte at {check.mismatch_at}"
                )
            if not self.keep_large:
                await self.delete(connection, self.bucket, "large/object")
        finally:
            connection.close()
        return meter.sample(1, size, [meter.seconds])

    async def delete_large(self) -> None:
        connection = self.connection()
        try:
            await self.delete(connection, self.bucket, "large/object")
        finally:
            connection.close()

    async def multi_put(self, meter: Meter) -> Sample:
        count, size = self.workload.multi_count, self.workload.multi_size
        etag = f'"{self.pattern.md5(0, size)}"'
        connections = await open_connections(self.target.host, self.target.port, count)
        latencies: list[float] = []
        clock = asyncio.get_running_loop().time

        async def put(connection: HttpConnection, i: int) -> Response:
            started = clock()
            response = await connection.request(
                self.head("PUT", self.bucket, f"multi/{i}", length=size),
                GeneratedBody(self.pattern, 0, size),
            )
            latencies.append(clock() - started)
            return response

        try:
            meter.start()
            responses = await asyncio.gather(*(put(c, i) for i, c in enumerate(connections)))
            meter.stop()
            for i, response in enumerate(responses):
                self.check_put(response, f"PUT multi/{i}", etag)
            for i, connection in enumerate(connections):
                await self.delete(connection, self.bucket, f"multi/{i}")
        finally:
            close_all(connections)
        return meter.sample(count, count * size, latencies)

    async def cleanup(self) -> None:
        """Delete what the tests left (for peers; our own servers' directories go)."""
        if self.target.kind != "s3":
            return
        connections = await open_connections(
            self.target.host, self.target.port, self.workload.concurrency
        )
        keys = [(self.bucket, f"small/{i:06d}") for i in range(self.workload.small_ops)]
        if self._list_ready:
            keys += [(self.list_bucket, f"list/{i:05d}") for i in range(self.workload.list_keys)]

        async def delete(connection: HttpConnection, i: int) -> None:
            await self.delete(connection, *keys[i])

        try:
            await run_ops(connections, len(keys), delete)
            for bucket in (self.bucket, self.list_bucket):
                response = await connections[0].request(self.head("DELETE", bucket))
                self.check_status(response, f"{self.target.name}: DeleteBucket", 204, 200)
        finally:
            close_all(connections)
