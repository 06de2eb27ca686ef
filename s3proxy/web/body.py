"""A request body that flows from the socket to whoever the handler hands it to.

twisted.web would buffer the whole body before routing; ``S3Request`` instead feeds
each chunk here as it arrives. Until the handler attaches a consumer (a storage
writer), or while that consumer is paused, chunks wait in a small buffer and the
socket is paused once the buffer passes a high watermark: memory stays bounded
whatever the body's size.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IConsumer, IProducer, IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from s3proxy.errors import MalformedXML, S3Error
from s3proxy.web.awschunked import AwsChunkedDecoder, ChunkSignatures
from s3proxy.web.checksums import BodyChecks

BUFFER_HIGH_WATER = 1024 * 1024
BUFFER_LOW_WATER = 256 * 1024


@implementer(IConsumer)
class _Collector:
    """Collects a small body (XML documents) up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size <= self.limit:
            self.parts.append(data)


@implementer(IPushProducer)
class RequestBody:
    def __init__(self, network: IPushProducer | None, aws_chunked: bool) -> None:
        self._network = network
        self._network_paused = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._consumer: IConsumer | None = None
        self._consumer_paused = False
        self._discarding = False
        self._done: Deferred[int] | None = None
        self._waiters: list[Deferred[None]] = []
        self.complete = False
        self.failure: Failure | None = None
        self.received = 0
        self.decoder: AwsChunkedDecoder | None = None
        self._checks: BodyChecks | None = None
        # An aws-chunked body waits, undecoded, until the application has checked the
        # request's signature and says how to verify its chunks (``arm``).
        self._armed = not aws_chunked
        self._raw: list[bytes] = []
        self._raw_ended = False

    # -- fed by the request --------------------------------------------------------

    def arm(self, signatures: ChunkSignatures | None = None) -> None:
        """Start decoding an aws-chunked body, checking chunk signatures with
        ``signatures`` (SigV4 streaming uploads). Harmless for other bodies."""
        if self._armed:
            return
        self._armed = True
        self.decoder = AwsChunkedDecoder(self._deliver, signatures)
        raw, self._raw = self._raw, []
        self._buffered -= sum(map(len, raw))
        for data in raw:
            self.feed(data)
        if self._raw_ended:
            self.input_finished()

    def feed(self, data: bytes) -> None:
        if self.failure is not None or self.complete:
            return
        if not self._armed:
            if not self._discarding:
                self._raw.append(data)
                self._buffered += len(data)
                if self._buffered > BUFFER_HIGH_WATER:
                    self._pause_network()
            return
        if self.decoder is None:
            self._deliver(data)
            return
        try:
            self.decoder.feed(data)
        except S3Error as e:
            self._fail(Failure(e))

    def _deliver(self, data: bytes) -> None:
        self.received += len(data)
        if self._discarding:
            return
        if self._checks is not None:
            self._checks.update(data)
        if self._consumer is not None and not self._consumer_paused and not self._chunks:
            self._consumer.write(data)
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > BUFFER_HIGH_WATER:
            self._pause_network()

    def input_finished(self) -> None:
        if self.failure is not None or self.complete:
            return
        if not self._armed and not self._discarding:
            self._raw_ended = True
            return
        if self.decoder is not None:
            try:
                self.decoder.end()
            except S3Error as e:
                self._fail(Failure(e))
                return
        self.complete = True
        self._settle()

    def connection_lost(self, reason: Failure) -> None:
        if not self.complete:
            self._fail(reason)

    # -- used by handlers ----------------------------------------------------------

    def check_with(self, checks: BodyChecks) -> None:
        """Verify the body (checksums, payload SHA-256) before its consumer is told it
        ended; a mismatch fails ``stream_to`` instead, so nothing is committed."""
        for data in self._chunks:  # arrived before the handler asked
            checks.update(data)
        self._checks = checks

    @property
    def checks(self) -> BodyChecks | None:
        return self._checks

    def stream_to(self, consumer: IConsumer) -> Deferred[int]:
        """Write the whole body into ``consumer``, which may pause us. Fires with the
        number of (decoded) bytes once the last one was written."""
        if self.failure is not None:
            return fail(self.failure)
        self._consumer = consumer
        done: Deferred[int] = Deferred(lambda _: self._detach())
        self._done = done
        consumer.registerProducer(self, True)
        self._flush()
        return done

    async def read_all(self, limit: int) -> bytes:
        """The whole body, for small XML documents. Larger than ``limit`` is
        MalformedXML (after the rest was read and dropped)."""
        collector = _Collector(limit)
        await self.stream_to(collector)
        if collector.size > limit:
            raise MalformedXML("The XML you provided was larger than the maximum allowed.")
        return b"".join(collector.parts)

    def drain(self) -> Deferred[None]:
        """Drop the rest of the body; fires once it has all arrived (so the response
        can be sent on a connection that stays usable), or failed."""
        self._discarding = True
        self._chunks.clear()
        self._raw.clear()
        self._buffered = 0
        if self._raw_ended:
            self._raw_ended = False
            self.complete = True
        self._resume_network()
        if self.complete or self.failure is not None:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    # -- IPushProducer, for the consumer -------------------------------------------

    def pauseProducing(self) -> None:
        self._consumer_paused = True
        self._pause_network()

    def resumeProducing(self) -> None:
        self._consumer_paused = False
        self._flush()

    def stopProducing(self) -> None:
        self._detach()
        self.drain()

    # -- internals -----------------------------------------------------------------

    def _flush(self) -> None:
        while self._chunks and not self._consumer_paused and self._consumer is not None:
            data = self._chunks.popleft()
            self._buffered -= len(data)
            self._consumer.write(data)
        if not self._consumer_paused and self._buffered < BUFFER_LOW_WATER:
            self._resume_network()
        self._settle()

    def _settle(self) -> None:
        if self.complete and not self._chunks and self._consumer is not None:
            self._finish_consumer(self._verification_failure())
        if self.complete:
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    def _verification_failure(self) -> Failure | None:
        if self._checks is None:
            return None
        try:
            self._checks.verify(self.decoder.trailers if self.decoder is not None else {})
        except S3Error as e:
            return Failure(e)
        return None

    def _finish_consumer(self, failure: Failure | None) -> None:
        consumer, self._consumer = self._consumer, None
        done, self._done = self._done, None
        if consumer is not None:
            consumer.unregisterProducer()
        if done is not None:
            if failure is None:
                done.callback(self.received)
            else:
                done.errback(failure)

    def _detach(self) -> None:
        self._consumer = None
        self._done = None

    def _fail(self, failure: Failure) -> None:
        self.failure = failure
        self._chunks.clear()
        self._buffered = 0
        self._finish_consumer(failure)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def _pause_network(self) -> None:
        if not self._network_paused and self._network is not None:
            self._network_paused = True
            self._network.pauseProducing()

    def _resume_network(self) -> None:
        if self._network_paused and self._network is not None:
            self._network_paused = False
            self._network.resumeProducing()
