"""One upstream S3 endpoint: signed requests over a bounded connection pool, retries
with backoff for idempotent requests, timeouts, and upstream errors as S3Errors."""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from typing import Any
from urllib.parse import quote, urlsplit

import treq
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import (
    Agent,
    FileBodyProducer,
    HTTPConnectionPool,
    RequestGenerationFailed,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse

from s3proxy.auth.canonical import EMPTY_SHA256, uri_encode
from s3proxy.errors import S3Error, ServiceUnavailable
from s3proxy.storage.s3.signer import (
    UNSIGNED_PAYLOAD,
    UpstreamCredentials,
    payload_hash,
    sign_request,
)
from s3proxy.storage.s3.upstream_errors import map_error

# Failures of the connection itself: worth another try for an idempotent request.
_TRANSIENT = (
    net_error.ConnectError,
    net_error.ConnectionLost,
    net_error.ConnectionClosed,
    net_error.TimeoutError,
    ResponseNeverReceived,
    ResponseFailed,
    RequestTransmissionFailed,
    RequestGenerationFailed,
    TimeoutError,
)
_RETRY_STATUSES = frozenset({500, 502, 503, 504})


def upstream_unavailable() -> S3Error:
    return ServiceUnavailable("The upstream store cannot be reached. Please try again.")


def object_path(bucket: str, key: str | None = None) -> bytes:
    """The path of a bucket or an object, each byte of the key encoded once (S3 does not
    normalise paths, so a key's slashes stay slashes). Dot segments are sent as they
    are, as botocore sends them: S3 keeps them in the key, and the signature covers
    the path as sent (Twisted's client does not resolve them either)."""
    path = "/" + quote(bucket, safe="")
    if key is not None:
        path += "/" + quote(key.encode("utf-8", "surrogatepass"), safe="/")
    return path.encode("ascii")


def encode_query(query: Sequence[tuple[str, str]]) -> bytes:
    return "&".join(
        f"{uri_encode(name.encode())}={uri_encode(value.encode('utf-8', 'surrogatepass'))}"
        for name, value in query
    ).encode("ascii")


class UpstreamClient:
    log = Logger()

    def __init__(
        self,
        reactor: Any,
        endpoint: str,
        credentials: UpstreamCredentials,
        region: str = "us-east-1",
        max_connections: int = 16,
        timeout: float = 30.0,
        attempts: int = 4,
        backoff: float = 0.1,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {endpoint!r}")
        self.reactor = reactor
        self._base = f"{parts.scheme}://{parts.netloc}".encode("ascii")
        self._host = parts.netloc
        self.credentials = credentials
        self.region = region
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = max_connections
        self.pool.cachedConnectionTimeout = 60
        self._agent = Agent(reactor, pool=self.pool, connectTimeout=timeout)

    def close(self) -> Deferred[None]:
        return self.pool.closeCachedConnections()

    def _start(
        self,
        method: str,
        path: bytes,
        query: bytes,
        headers: dict[str, str],
        body: bytes | IBodyProducer | None,
    ) -> Deferred[IResponse]:
        all_headers = dict(headers)
        all_headers["host"] = self._host
        producer: IBodyProducer | None = None
        if body is None:
            payload = EMPTY_SHA256
            if method in ("PUT", "POST"):
                producer = FileBodyProducer(BytesIO(b""))
        elif isinstance(body, bytes):
            payload, producer = payload_hash(body), FileBodyProducer(BytesIO(body))
        else:
            payload, producer = UNSIGNED_PAYLOAD, body
        signed = sign_request(
            self.credentials, self.region, method, path, query, all_headers, payload
        )
        raw = Headers({name.encode(): [value.encode("latin-1")] for name, value in signed.items()})
        uri = self._base + path + (b"?" + query if query else b"")
        return self._agent.request(method.encode("ascii"), uri, raw, producer)

    async def request(
        self,
        method: str,
        bucket: str,
        key: str | None = None,
        query: Sequence[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
        body: bytes | IBodyProducer | None = None,
        ok: Sequence[int] = (200, 204, 206),
        not_found: type[S3Error] | None = None,
    ) -> IResponse:
        """Send one request; fires with the response of a status in ``ok``, whose body
        the caller reads (or discards). Other statuses fail with the mapped S3Error.
        Idempotent requests are retried; a producer's body is streamed once, without
        timeout (it lasts as long as the client sends)."""
        path, raw_query = object_path(bucket, key), encode_query(query)
        streamed = body is not None and not isinstance(body, bytes)
        # POST (create, complete) is not idempotent; a streamed body cannot be re-sent.
        tries = 1 if streamed or method == "POST" else self.attempts
        # A 5xx on the last try is the upstream's answer (busy), not "unreachable".
        answered: S3Error | None = None
        for attempt in range(tries):
            if attempt:
                await deferLater(self.reactor, self.backoff * 2 ** (attempt - 1))
            try:
                started = self._start(method, path, raw_query, headers or {}, body)
                if not streamed:
                    started.addTimeout(self.timeout, self.reactor)
                response = await started
            except _TRANSIENT as e:
                answered = None
                self.log.warn(
                    "upstream {method} {path} failed: {why}",
                    method=method,
                    path=path.decode(),
                    why=type(e).__name__,
                )
                continue
            except CancelledError:
                raise
            if response.code in ok:
                return response
            content = await self.read_body(response)
            if response.code in _RETRY_STATUSES:
                self.log.warn(
                    "upstream {method} {path} answered {status}",
                    method=method,
                    path=path.decode(),
                    status=response.code,
                )
                answered = map_error(response.code, content, not_found)
                continue
            raise map_error(response.code, content, not_found)
        raise answered or upstream_unavailable()

    async def read_body(self, response: IResponse) -> bytes:
        """A small answer's whole body (XML documents, errors)."""
        reading: Deferred[bytes] = treq.content(response)
        reading.addTimeout(self.timeout, self.reactor)
        try:
            return await reading
        except _TRANSIENT:
            raise upstream_unavailable() from None

    async def fetch(
        self,
        method: str,
        bucket: str,
        key: str | None = None,
        query: Sequence[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        ok: Sequence[int] = (200, 204, 206),
        not_found: type[S3Error] | None = None,
    ) -> tuple[IResponse, bytes]:
        """``request`` and the answer's body, for the small answers of the S3 API."""
        response = await self.request(method, bucket, key, query, headers, body, ok, not_found)
        return response, await self.read_body(response)


def header(response: IResponse, name: str) -> str | None:
    """The first value of an upstream answer's header; None if it has none."""
    values = response.headers.getRawHeaders(name.encode("ascii"))
    return values[0].decode("latin-1") if values else None
