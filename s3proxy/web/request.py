"""The streaming Request and the Site that builds it.

twisted.web calls ``process()`` (routing) only after the last body byte arrived, having
spooled the body to memory or a temporary file. ``S3Request`` starts processing as soon
as the headers are in, and feeds the body to ``request.body`` (a ``RequestBody``) chunk
by chunk, so the handler can stream it into storage with backpressure while it is
still arriving. Bodiless requests take Twisted's normal path.
"""

from __future__ import annotations

import io
from time import monotonic
from typing import Any
from urllib.parse import parse_qs

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import IResource

from s3proxy.web.body import RequestBody
from s3proxy.web.channel import S3Channel
from s3proxy.web.drain import Connections
from s3proxy.web.guard import ConnectionGuard, Limits
from s3proxy.web.response_headers import S3ResponseHeaders


def is_aws_chunked(request: server.Request) -> bool:
    headers = request.requestHeaders
    encodings = b",".join(headers.getRawHeaders(b"content-encoding", []))
    sha = (headers.getRawHeaders(b"x-amz-content-sha256") or [b""])[0]
    return b"aws-chunked" in encodings.lower() or sha.startswith(b"STREAMING-")


SMALL_BODY = 64 * 1024


# Twisted reads a socket 64 KiB at a time. For a large body, each read costs as much
# Python work on the reactor thread as the kernel's copy; reading up to 1 MiB at a
# time cuts that work 16-fold. Small requests keep small reads (and small buffers).
LARGE_BODY = 4 * 1024 * 1024
LARGE_READ = 1024 * 1024
SMALL_READ = 64 * 1024


def _size_reads(transport: Any, length: int | None) -> None:
    if transport is None or not hasattr(transport, "bufferSize"):
        return
    transport.bufferSize = LARGE_READ if length is not None and length > LARGE_BODY else SMALL_READ


class S3Request(server.Request):
    body: RequestBody
    _early_call: IDelayedCall | None = None
    _processing_early = False
    _body_ended = False  # the channel has read this request's last byte
    bytes_in = 0  # body bytes as they came off the wire (the access log's "in")

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        # The channel makes a request when its first line arrives: the access log's
        # duration starts here, so it includes reading the headers and the body.
        self.started = monotonic()
        super().__init__(channel, *args, **kwargs)
        self.responseHeaders = S3ResponseHeaders()

    def gotLength(self, length: int | None) -> None:
        # Body bytes never land in ``content``; it only has to stay seekable.
        self.content = io.BytesIO()  # type: ignore[assignment]
        transport = getattr(self.channel, "transport", None)
        network: IPushProducer | None = transport if transport is not None else None
        self.body = RequestBody(network, is_aws_chunked(self))
        _size_reads(transport, length)
        if length is None or length > SMALL_BODY:
            # Start once the channel has answered "Expect: 100-continue" (it does so
            # right after this method returns). A small body is simply collected and
            # the request handled once it is in: that saves a reactor turn.
            channel: Any = self.channel
            reactor: IReactorTime = channel.site.reactor
            self._early_call = reactor.callLater(0, self._process_early)

    def handleContentChunk(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self.body.feed(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self._body_ended = True
        self.body.input_finished()
        if self._processing_early:
            return
        if self._early_call is not None and self._early_call.active():
            self._early_call.cancel()
        self._early_call = None
        super().requestReceived(command, path, version)

    def process(self) -> None:
        channel: Any = self.channel
        connections = getattr(channel.site, "connections", None)
        if connections is not None:
            connections.request_started(self)
        super().process()

    def _process_early(self) -> None:
        """Like ``requestReceived``, minus reading the body, which is still arriving."""
        self._early_call = None
        if self._disconnected:
            return
        channel: Any = self.channel
        self._processing_early = True
        self.method, self.uri, self.clientproto = channel._command, channel._path, channel._version
        path, _, query = self.uri.partition(b"?")
        self.path = path
        self.args = parse_qs(query, True) if query else {}  # type: ignore[assignment]
        self.process()

    def write(self, data: bytes) -> None:
        if not self.startedWriting and not self.body.complete:
            # Answering before the body ended: the rest of it must not be read as the
            # next request, so this connection ends with the response.
            self.responseHeaders.setRawHeaders(b"Connection", [b"close"])
            self.channel.persistent = False
        super().write(data)

    def _cleanup(self) -> None:
        if not self._body_ended and self.channel is not None:
            # Finished before the channel read the whole request (an error that ended
            # the body early; the response says Connection: close). Handing the request
            # back now would leave the channel without it when the rest of the body,
            # maybe in the same segment, arrives (IndexError in allContentReceived, and
            # the response lost with the connection). Stop reading instead: the
            # connection closes once the response is sent.
            self.channel.loseConnection()
            notifications, self.notifications = self.notifications, []
            for d in notifications:
                d.callback(None)
            return
        super()._cleanup()

    def connectionLost(self, reason: Failure) -> None:
        if self._early_call is not None and self._early_call.active():
            self._early_call.cancel()
        super().connectionLost(reason)
        if hasattr(self, "body"):
            self.body.connection_lost(reason)


class S3Site(server.Site):
    protocol = S3Channel  # type: ignore[assignment]

    def __init__(self, *args: Any, limits: Limits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = ConnectionGuard(limits or Limits(), self.reactor)
        self.connections = Connections(self.guard.channels)

    def buildProtocol(self, addr: Any) -> Any:
        if self.guard.full():
            return self.guard.refusal()
        return super().buildProtocol(addr)

    def startFactory(self) -> None:
        super().startFactory()
        self.guard.start()

    def stopFactory(self) -> None:
        self.guard.stop()
        super().stopFactory()

    def log(self, request: Any) -> None:
        """No combined-log-format line per request: formatting it cost ~12% of a
        small request's CPU, and the application emits its own access events."""


def make_site(resource: IResource, reactor: IReactorTime, limits: Limits | None = None) -> S3Site:
    limits = limits or Limits()
    site = S3Site(
        resource,
        requestFactory=S3Request,
        parsePOSTFormSubmission=False,
        reactor=reactor,
        limits=limits,
    )
    site.displayTracebacks = False
    # Twisted's own per-connection timeout: no byte received for this long on a
    # connection that is not busy with a request (idle keep-alive, a stalled upload).
    site.timeOut = limits.idle_timeout or None
    return site
