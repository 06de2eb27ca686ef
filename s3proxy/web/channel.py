"""The HTTP channel: Twisted's ``HTTPChannel``, answering what it rejects by itself
(a header section too large, a malformed request) with S3 ``<Error>`` documents
instead of a bare "400 Bad Request", and keeping the marks the connection guard
(``guard.py``) reads: when the headers of the request being read are due, and whether
the client stopped reading what we send.

Nothing here adds a timer: the guard looks at every connection from one periodic
call, and a request's cost is a few attribute reads.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.python.failure import Failure
from twisted.web import http

from s3proxy.errors import BadRequest, RequestHeaderSectionTooLarge, S3Error
from s3proxy.web.error_doc import error_document, new_request_id

# AWS answers a request line plus headers over 8 KiB with RequestHeaderSectionTooLarge.
HEADER_SECTION_LIMIT = 8 * 1024
# How long a rejected connection may keep sending before it is cut (see linger_close).
LINGER = 2.0
# ``header_deadline`` of a connection between requests: set once the next one starts.
AWAITING_REQUEST = -1.0
_CLOSED = Failure(ConnectionDone())


def http_error(error: S3Error, resource: str = "/", head_only: bool = False) -> bytes:
    """A whole response (status line, headers, ``<Error>`` body) that ends the
    connection, for errors answered before any request reaches the application. A
    HEAD request's answer has the headers only (its client reads no body)."""
    request_id = new_request_id()
    body = error_document(error, resource, request_id)
    phrase = http.RESPONSES.get(error.status, b"Error")
    head = (
        b"HTTP/1.1 %d %s\r\n"
        b"Content-Type: application/xml\r\n"
        b"Content-Length: %d\r\n"
        b"x-amz-request-id: %s\r\n"
        b"Server: s3proxy\r\n"
        b"Connection: close\r\n\r\n"
    ) % (error.status, phrase, len(body), request_id.encode())
    return head if head_only else head + body


def linger_close(transport: Any, call_later: Any, seconds: float = LINGER) -> IDelayedCall | None:
    """Close after a response without losing it. Closing a socket that still has
    unread request bytes sends a reset, and the client may then never read the
    response; so shut down our side only, let the caller drop whatever still arrives
    until the client closes, and cut the connection after ``seconds``. Returns the
    cut, for the caller to cancel when the connection is lost first."""
    lose_write = getattr(transport, "loseWriteConnection", None)
    if lose_write is None:
        transport.loseConnection()
        return None
    resume = getattr(transport, "resumeProducing", None)
    if resume is not None:
        resume()  # it may have been paused for backpressure: we must read to drain
    lose_write()
    call: IDelayedCall = call_later(seconds, transport.abortConnection)
    return call


class S3Channel(http.HTTPChannel):
    totalHeadersSize = HEADER_SECTION_LIMIT
    MAX_LENGTH = HEADER_SECTION_LIMIT  # one line longer than the whole section is over
    site: Any

    # When the headers of the request being read are due (the reactor's clock), None
    # while none is being read, AWAITING_REQUEST between requests.
    header_deadline: float | None = None
    # Bumped each time our send buffer fills up: the guard sees progress by it.
    send_pauses = 0
    send_blocked = False
    rejected = False
    _linger: IDelayedCall | None = None
    _host: IAddress

    def connectionMade(self) -> None:
        super().connectionMade()
        # Every request asks its channel for the local address, a getsockname system
        # call each time (the peer's address is already cached by the transport):
        # look it up once per connection.
        assert self.transport is not None
        self._host = self.transport.getHost()
        self.site.guard.connection_made(self)
        # A new connection's first request must arrive within the header timeout.
        self._arm_header_deadline()

    def getHost(self) -> IAddress:
        return self._host

    def _arm_header_deadline(self) -> None:
        guard = self.site.guard
        timeout = guard.limits.header_timeout
        self.header_deadline = guard.reactor.seconds() + timeout if timeout else None

    def dataReceived(self, data: bytes) -> None:
        if self.rejected:
            return  # lingering after an error response: drop what still comes
        if self.header_deadline == AWAITING_REQUEST:
            self._arm_header_deadline()  # the first bytes of the next request
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        self.header_deadline = None
        super().allHeadersReceived()

    def requestDone(self, request: http.Request) -> None:
        # Before the parent's, which replays pipelined bytes of the next request.
        self.header_deadline = AWAITING_REQUEST
        super().requestDone(request)

    # -- the transport's producer interface: is the client reading our responses? --

    def pauseProducing(self) -> None:
        self.send_pauses += 1
        self.send_blocked = True
        super().pauseProducing()

    def resumeProducing(self) -> None:
        self.send_blocked = False
        super().resumeProducing()

    # -- errors answered by the channel itself -----------------------------------

    def lineLengthExceeded(self, line: bytes) -> None:
        self.reject(RequestHeaderSectionTooLarge(MaxSizeAllowed=str(self.totalHeadersSize)))

    def _respondToBadRequestAndDisconnect(self) -> None:
        if any(_answering(request) for request in self.requests):
            # Malformed chunked framing in a body the application is already reading:
            # an error document now would land inside its response. The request
            # fails with the lost connection, as a cut-off upload does.
            self.loseConnection()
            return
        too_many = self._receivedHeaderCount > self.maxHeaders
        if too_many or self._receivedHeaderSize > self.totalHeadersSize:
            error: S3Error = RequestHeaderSectionTooLarge(MaxSizeAllowed=str(self.totalHeadersSize))
        else:
            error = BadRequest("An error occurred when parsing the HTTP request.")
        self.reject(error)

    def reject(self, error: S3Error) -> None:
        """Answer ``error`` and end the connection; what the client still sends is
        read and dropped for a moment, so that it gets to read the answer."""
        if self.rejected or self.transport is None:
            return
        self.rejected = True
        self.header_deadline = None
        self.persistent = False
        self.clearLineBuffer()  # stops LineReceiver's loop over the current bytes
        head_only = getattr(self, "_command", b"") == b"HEAD"
        self.transport.write(http_error(error, self._resource(), head_only))
        self._networkProducer.unregisterProducer()
        self._linger = linger_close(self.transport, self.callLater)

    def _resource(self) -> str:
        """The request's path, once its first line was parsed."""
        path: bytes = getattr(self, "_path", b"/")
        return path.partition(b"?")[0].decode("latin-1")

    def connectionLost(self, reason: Failure = _CLOSED) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        self.site.guard.connection_lost(self)
        super().connectionLost(reason)


def _answering(request: http.Request) -> bool:
    return bool(request.startedWriting or getattr(request, "_processing_early", False))
