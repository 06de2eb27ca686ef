"""An object (or part) streamed into an upstream PUT as the client sends it.

The writer is the client's consumer and the upstream request's body producer at
once: when the upstream connection cannot take more, it pauses the client. The MD5
and the size are checked before the body's last byte goes out, so a bad upload is
cut off and the upstream never stores it."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IConsumer, IProducer, IPushProducer, IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer, IResponse
from zope.interface import implementer

from s3proxy.errors import BadDigest, IncompleteBody, S3Error, ServiceUnavailable
from s3proxy.interfaces import IObjectWriter
from s3proxy.model import ObjectInfo
from s3proxy.storage.s3.spool import Spool

# Bytes held while the upstream connection is not ready yet, before the client is paused.
HIGH_WATER = 1024 * 1024
# A body of unknown length (Transfer-Encoding: chunked from the client) is held up to
# this size before anything is sent, then goes upstream with its Content-Length, which
# AWS and Ceph RGW require (they answer a chunked PUT with 411); a longer one is kept
# in a temporary file until its end (spool.py).
SPOOL_LIMIT = 8 * 1024 * 1024


class WriterAborted(Exception):
    """Ends an upstream request whose body will never be complete."""


@implementer(IBodyProducer)
class _Body:
    """What the HTTP client sees: a producer of ``length`` bytes (or chunked)."""

    def __init__(self, writer: UpstreamWriter, length: int | None) -> None:
        self.writer = writer
        self.length = UNKNOWN_LENGTH if length is None else length

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        return self.writer._attach(consumer)

    def pauseProducing(self) -> None:
        self.writer._set_upstream_paused(True)

    def resumeProducing(self) -> None:
        self.writer._set_upstream_paused(False)

    def stopProducing(self) -> None:
        self.writer._detach()


Committer = Callable[[IResponse, str, int, dict[str, str]], Awaitable[ObjectInfo]]
# A create-only write's turn to commit (see creating.py): fails if the key exists,
# else fires with what ends the turn.
Claim = Callable[[], Awaitable[Callable[[], None]]]


@implementer(IObjectWriter)
class UpstreamWriter:
    """``send(body)`` starts the upstream request with ``body`` as its producer and
    fires with the successful response (or fails with the mapped S3Error);
    ``commit(response, md5_hex, size, checksums)`` turns it into the ObjectInfo.
    With ``claim`` (a create-only write) what commits the upstream's write (the last
    byte of a body of known length, the end of a held or chunked one) waits until
    the claim is granted."""

    def __init__(
        self,
        send: Callable[[IBodyProducer], Coroutine[Any, Any, IResponse]],
        commit: Committer,
        content_md5: bytes | None,
        expected_size: int | None,
        clock: IReactorTime | None = None,
        answer_timeout: float = 60.0,
        claim: Claim | None = None,
    ) -> None:
        self._clock = clock
        self._claim = claim
        self._tail = b""
        self._spool: Spool | None = None
        self._answer_timeout = answer_timeout
        self._commit = commit
        self._content_md5 = content_md5
        self._expected_size = expected_size
        self._md5 = hashlib.md5()
        self._size = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._upstream: IConsumer | None = None
        self._body_done: Deferred[None] | None = None
        self._upstream_paused = False
        self._producer: IPushProducer | None = None
        self._producer_paused = False
        self._finishing = False
        self._closed = False
        self._failure: Failure | None = None
        self._send = send
        self._response: Deferred[IResponse] | None = None
        # An empty create-only body would commit with its headers: it waits for finish().
        if expected_size is not None and not (claim is not None and expected_size == 0):
            self._start(expected_size)

    def _start(self, length: int | None) -> None:
        """Send the upstream request, ``length`` bytes long (None: chunked)."""
        self._response = ensureDeferred(self._send(_Body(self, length)))
        # A request that fails while nobody waits is reported by finish(), or dropped.
        self._response.addErrback(self._keep_failure)

    def _keep_failure(self, failure: Failure) -> None:
        # The upstream failed (refused, answered early): drop what is held and let
        # the client finish sending, so that finish() can report the failure.
        self._failure = failure
        self._closed = True
        self._pending = []
        self._pending_size = 0
        self._upstream_paused = False
        self._steer()

    # -- IConsumer, for the client's side ---------------------------------------------

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._producer = producer  # type: ignore[assignment]
        self._producer_paused = False
        self._steer()

    def unregisterProducer(self) -> None:
        # A producer we paused is resumed: it is no longer ours to hold back.
        if self._producer is not None and self._producer_paused:
            self._producer_paused = False
            self._producer.resumeProducing()
        self._producer = None

    def write(self, data: bytes) -> None:
        self._md5.update(data)
        self._size += len(data)
        if self._closed:
            return  # cut off, or the upstream gave up: finish() tells which
        if self._expected_size is not None and self._size > self._expected_size:
            return  # too long: finish() reports it; the upstream gets no excess
        if self._claim is not None and self._size == self._expected_size and data:
            data, self._tail = data[:-1], data[-1:]  # the commit waits for the claim
        self._forward(data)

    def _forward(self, data: bytes) -> None:
        if data:
            self._route(data)
        self._steer()

    def _route(self, data: bytes) -> None:
        """To the spool, straight upstream, or held until the upstream is ready."""
        if self._spool is not None:
            self._spool.write(data)
        elif self._upstream is not None and not self._pending:
            self._upstream.write(data)
        else:
            self._pending.append(data)
            self._pending_size += len(data)
            if self._response is None and self._pending_size > SPOOL_LIMIT:
                self._spool_pending()  # longer than we hold: to a file until its end

    def _spool_pending(self) -> None:
        self._spool = Spool(self._steer)
        pending, self._pending, self._pending_size = self._pending, [], 0
        for data in pending:
            self._spool.write(data)

    def _steer(self) -> None:
        """Pause the client while the upstream lags; resume it once it caught up."""
        behind = (
            self._upstream_paused
            or self._pending_size > (HIGH_WATER if self._response is not None else SPOOL_LIMIT)
            or (self._spool is not None and self._spool.queued > HIGH_WATER)
        )
        producer = self._producer
        if producer is None or behind == self._producer_paused:
            return
        self._producer_paused = behind
        if behind:
            producer.pauseProducing()
        else:
            producer.resumeProducing()

    # -- from the upstream request ---------------------------------------------------

    def _attach(self, consumer: IConsumer) -> Deferred[None]:
        self._body_done = Deferred()
        if self._closed:
            self._body_done.errback(WriterAborted())
            return self._body_done
        self._upstream = consumer
        pending, self._pending, self._pending_size = self._pending, [], 0
        for data in pending:
            consumer.write(data)
        if self._finishing:
            self._body_done.callback(None)
        self._steer()
        return self._body_done

    def _set_upstream_paused(self, paused: bool) -> None:
        self._upstream_paused = paused
        self._steer()

    def _detach(self) -> None:
        # The upstream stopped reading (it answered early, or the connection died);
        # finish() reports its answer.
        self._upstream = None
        self._upstream_paused = False
        self._closed = True
        self._steer()

    # -- IObjectWriter ---------------------------------------------------------------

    def finish(self, checksums: Mapping[str, str] | None = None) -> Deferred[ObjectInfo]:
        return ensureDeferred(self._finish(dict(checksums or {})))

    async def _finish(self, checksums: dict[str, str]) -> ObjectInfo:
        if self._failure is not None and isinstance(self._failure.value, S3Error):
            self._failure.raiseException()
        digest = self._md5.digest()
        if self._expected_size is not None and self._size != self._expected_size:
            self._cut_off()
            raise IncompleteBody()
        if self._content_md5 is not None and digest != self._content_md5:
            self._cut_off()
            raise BadDigest()
        release = None
        if self._claim is not None:
            try:
                release = await self._claim()
            except BaseException:
                self._cut_off()
                raise
        try:
            return await self._commit_body(digest.hex(), checksums)
        finally:
            self._close_spool()
            if release is not None:
                release()

    def _close_spool(self) -> None:
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()

    async def _commit_body(self, md5: str, checksums: dict[str, str]) -> ObjectInfo:
        self._finishing = True
        if self._spool is not None:
            try:
                await self._spool.flush()
            except OSError as e:  # the temporary directory is full or gone
                raise ServiceUnavailable("The gateway could not hold the body.") from e
            self._response = ensureDeferred(self._send(self._spool.body(self._size)))
        elif self._response is None:
            self._start(self._size)  # all of it was held: now its length is known
        assert self._response is not None
        self._forward(self._tail)
        if self._body_done is not None and not self._body_done.called:
            self._body_done.callback(None)
        # The whole body is out: an upstream that never answers is given up on.
        timer = None
        if self._clock is not None and not self._response.called:
            timer = self._clock.callLater(self._answer_timeout, self._response.cancel)
        response = await self._response
        if timer is not None and timer.active():
            timer.cancel()
        if self._failure is not None:
            if isinstance(self._failure.value, S3Error):
                self._failure.raiseException()
            raise ServiceUnavailable("The upstream store did not take the object.")
        return await self._commit(response, md5, self._size, checksums)

    def _cut_off(self) -> None:
        """End the upstream request without its last bytes: nothing is stored."""
        if self._closed:
            return
        self._closed = True
        self._pending = []
        self._pending_size = 0
        self._close_spool()
        if self._response is None:
            return  # nothing was sent
        if self._body_done is not None and not self._body_done.called:
            self._body_done.errback(WriterAborted())
        elif self._body_done is None:
            self._response.cancel()
        self._response.addErrback(lambda _: None)

    def abort(self) -> Deferred[None]:
        if not self._finishing:
            self._cut_off()
        return succeed(None)
