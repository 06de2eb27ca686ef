"""Incremental decoding of the ``aws-chunked`` content encoding.

SigV4 streaming uploads (and boto3 >= 1.36 by default) frame the object's bytes as
``<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n`` ... ``0[;...]\\r\\n``, then
optional trailer lines (``x-amz-checksum-crc32:...``) and an empty line. The decoder
is fed whatever the socket delivered and passes the payload on as it goes, so the
framing never reaches storage and nothing is buffered beyond one header line.
"""

from __future__ import annotations

from collections.abc import Callable

from s3proxy.errors import IncompleteBody, InvalidRequest

MAX_LINE = 4096
_CRLF = b"\r\n"


class AwsChunkedDecoder:
    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self._deliver = deliver
        self._state = "size"  # size | data | data-end | trailer | done
        self._line = bytearray()
        self._remaining = 0
        self._crlf_seen = 0
        self.chunk_signatures: list[bytes] = []
        self.trailers: dict[str, str] = {}

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        pos = 0
        end = len(view)
        while pos < end:
            state = self._state
            if state == "data":
                take = min(self._remaining, end - pos)
                self._deliver(bytes(view[pos : pos + take]))
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = "data-end"
                    self._crlf_seen = 0
            elif state == "data-end":
                if view[pos] != _CRLF[self._crlf_seen]:
                    raise InvalidRequest("Malformed aws-chunked body: chunk not followed by CRLF.")
                pos += 1
                self._crlf_seen += 1
                if self._crlf_seen == 2:
                    self._state = "size"
            elif state in ("size", "trailer"):
                newline = data.find(b"\n", pos)
                if newline < 0:
                    self._line += view[pos:]
                    if len(self._line) > MAX_LINE:
                        raise InvalidRequest("Malformed aws-chunked body: header line too long.")
                    return
                self._line += view[pos:newline]
                pos = newline + 1
                line = bytes(self._line).rstrip(b"\r")
                self._line.clear()
                if len(line) > MAX_LINE:
                    raise InvalidRequest("Malformed aws-chunked body: header line too long.")
                if state == "size":
                    self._chunk_header(line)
                else:
                    self._trailer(line)
            else:
                raise InvalidRequest("Malformed aws-chunked body: data after the final chunk.")

    def _chunk_header(self, line: bytes) -> None:
        size_text, _, extension = line.partition(b";")
        size_text = size_text.strip()
        if not size_text or len(size_text) > 16:
            raise InvalidRequest("Malformed aws-chunked body: bad chunk size.")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise InvalidRequest("Malformed aws-chunked body: bad chunk size.") from None
        if extension.startswith(b"chunk-signature="):
            self.chunk_signatures.append(extension[len(b"chunk-signature=") :])
        if size == 0:
            self._state = "trailer"
        else:
            self._remaining = size
            self._state = "data"

    def _trailer(self, line: bytes) -> None:
        if not line:
            self._state = "done"
            return
        name, sep, value = line.partition(b":")
        if not sep:
            raise InvalidRequest("Malformed aws-chunked body: bad trailer line.")
        self.trailers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")

    def end(self) -> None:
        """The body ended. Some clients omit the empty line after the trailers."""
        if self._state == "trailer" and not self._line:
            self._state = "done"
        if self._state != "done":
            raise IncompleteBody("The aws-chunked body ended before its final chunk.")
