"""A multipart/form-data parser that streams its file part (browser POST uploads).

``FormParser`` is the consumer the request body streams into. The fields before the
file are small and collected (up to a limit); when the file part's headers arrive it
pauses the body and fires ``file_started``, so the handler can check the policy and
open a storage writer before any file byte goes anywhere. ``attach(sink)`` then hands
the body's producer to the sink (a storage writer, which pauses it for backpressure)
and the file's bytes flow straight through, never collected. Fields after the file
are ignored, as S3 does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IProducer, IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from s3proxy.errors import (
    EntityTooLarge,
    IncorrectNumberOfFilesInPostRequest,
    MalformedPOSTRequest,
    MaxPostPreDataLengthExceeded,
    S3Error,
)

MAX_PART_HEADERS = 16 * 1024
_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


@dataclass(frozen=True)
class FilePart:
    filename: str
    content_type: str | None


def boundary_of(content_type: str | None) -> bytes | None:
    """The boundary of a multipart/form-data Content-Type, or None."""
    if not content_type:
        return None
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for name, value in _PARAM_RE.findall(";" + params):
        if name.lower() == "boundary":
            value = value.strip()
            if value.startswith('"') and value.endswith('"'):
                value = value[1:-1]
            if 0 < len(value) <= 200:
                return value.encode("latin-1", "replace")
    return None


def _disposition(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, raw in _PARAM_RE.findall(";" + value.partition(";")[2]):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name.lower()] = raw
    return params


@implementer(IConsumer)
class FormParser:
    def __init__(self, boundary: bytes, fields_limit: int) -> None:
        self._delimiter = b"\r\n--" + boundary
        # The body starts with "--boundary": as if a CRLF came before it.
        self._buffer = b"\r\n"
        self._state = "preamble"
        self._fields_limit = fields_limit
        self._fields_size = 0
        self._field_name = ""
        self.fields: dict[str, str] = {}  # lower-cased names, as S3 reads them
        self.file: FilePart | None = None
        self.file_started: Deferred[FilePart] = Deferred()
        self._announce = False
        self._producer: IPushProducer | None = None
        self._sink: IConsumer | None = None  # where file bytes go now
        self._registered: IConsumer | None = None  # told when the body ends
        self._detached = False
        self._held: list[bytes] = []
        self.size = 0  # file bytes seen
        self.max_size: int | None = None
        self.failure: S3Error | None = None

    # -- IConsumer, for the request body ----------------------------------------------

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._producer = cast(IPushProducer, producer)  # the request body

    def unregisterProducer(self) -> None:
        if self.failure is None and self._state != "epilogue":
            self._fail(MalformedPOSTRequest())
        if not self.file_started.called:
            self.file_started.errback(
                Failure(self.failure or IncorrectNumberOfFilesInPostRequest())
            )
        if self._registered is not None:
            self._registered.unregisterProducer()
            self._registered = None
        self._producer = None

    def write(self, data: bytes) -> None:
        if self.failure is not None or self._state == "epilogue":
            return
        self._buffer += data
        try:
            while self._step():
                pass
        except S3Error as e:
            self._fail(e)
        if self._announce:
            # Fired after the loop, so the handler never re-enters it.
            self._announce = False
            assert self.file is not None
            self.file_started.callback(self.file)

    # -- used by the handler ----------------------------------------------------------

    def attach(self, sink: IConsumer, max_size: int | None = None) -> None:
        """Send the file's bytes to ``sink`` (which may pause the body) and resume."""
        self.max_size = max_size
        held, self._held = self._held, []
        if self.failure is None:
            self._sink = sink
            if self._producer is not None:  # None: the body has already ended
                self._registered = sink
                sink.registerProducer(self._producer, True)
        for data in held:
            self._emit(data)
        if self._producer is not None:
            self._producer.resumeProducing()

    def detach(self) -> None:
        """Stop sending to the sink (the handler is abandoning the upload)."""
        self._sink = None
        self._detached = True
        self._held = []
        if self._producer is not None:
            self._producer.resumeProducing()  # paused for the handler: let it drain

    # -- the state machine ------------------------------------------------------------

    def _step(self) -> bool:
        """Advance once; False when more data is needed."""
        state = self._state
        if state == "preamble":
            index = self._buffer.find(self._delimiter)
            if index < 0:
                self._limit_pre_data(len(self._buffer))
                return False
            self._buffer = self._buffer[index + len(self._delimiter) :]
            self._state = "boundary"
            return True
        if state == "boundary":
            if len(self._buffer) < 2:
                return False
            if self._buffer.startswith(b"--"):
                self._state = "epilogue"
                self._buffer = b""
                return False
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                if len(self._buffer) > 256:
                    raise MalformedPOSTRequest()
                return False
            if self._buffer[:line_end].strip(b" \t"):  # only padding may follow
                raise MalformedPOSTRequest()
            self._buffer = self._buffer[line_end + 2 :]
            self._state = "headers"
            return True
        if state == "headers":
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_PART_HEADERS:
                    raise MalformedPOSTRequest()
                return False
            block, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            self._start_part(block)
            return True
        if state in ("field", "ignored"):
            index = self._buffer.find(self._delimiter)
            if index < 0:
                if state == "field":
                    self._limit_pre_data(len(self._buffer))
                elif len(self._buffer) > len(self._delimiter):
                    self._buffer = self._buffer[-len(self._delimiter) :]
                return False
            if state == "field":
                self._limit_pre_data(index)
                value = self._buffer[:index].decode("utf-8", "replace")
                self._fields_size += index
                self.fields.setdefault(self._field_name, value)
            self._buffer = self._buffer[index + len(self._delimiter) :]
            self._state = "boundary"
            return True
        if state == "file":
            index = self._buffer.find(self._delimiter)
            if index < 0:
                keep = len(self._delimiter) - 1
                if len(self._buffer) > keep:
                    self._emit(self._buffer[:-keep])
                    self._buffer = self._buffer[-keep:]
                return False
            if index:
                self._emit(self._buffer[:index])
            self._buffer = self._buffer[index + len(self._delimiter) :]
            self._state = "boundary"
            return True
        return False

    def _start_part(self, block: bytes) -> None:
        headers: dict[str, str] = {}
        for line in block.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon:
                raise MalformedPOSTRequest()
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        if not disposition.lower().startswith("form-data"):
            raise MalformedPOSTRequest()
        params = _disposition(disposition)
        given = params.get("name")
        if given is None:
            raise MalformedPOSTRequest()
        name = given.lower()
        if self.file is not None:
            self._state = "ignored"  # S3 ignores what follows the file
        elif name == "file":
            filename = params.get("filename", "")
            # Browsers of old sent the client's full path; S3 keeps the base name.
            basename = filename.replace("\\", "/").rsplit("/", 1)[-1]
            self.file = FilePart(basename, headers.get("content-type"))
            self._state = "file"
            if self._producer is not None:
                self._producer.pauseProducing()  # until the handler attaches a sink
            self._announce = True
        else:
            self._field_name = name
            self._state = "field"

    def _limit_pre_data(self, pending: int) -> None:
        if self._fields_size + pending > self._fields_limit:
            raise MaxPostPreDataLengthExceeded()

    def _emit(self, data: bytes) -> None:
        if self.failure is not None:
            return
        if self._sink is None:
            if not self._detached:
                # Only between the file's headers and attach(): the body is paused then.
                self._held.append(data)
            return
        self.size += len(data)
        if self.max_size is not None and self.size > self.max_size:
            self._fail(
                EntityTooLarge(ProposedSize=str(self.size), MaxSizeAllowed=str(self.max_size))
            )
            return
        self._sink.write(data)

    def _fail(self, error: S3Error) -> None:
        """Stop parsing: the rest of the body is read and dropped."""
        if self.failure is not None:
            return
        self.failure = error
        self._buffer = b""
        self._held = []
        self._sink = None
        if not self.file_started.called and not self._announce:
            self.file_started.errback(Failure(error))
        if self._producer is not None:
            self._producer.resumeProducing()  # keep draining (the rest is dropped)
