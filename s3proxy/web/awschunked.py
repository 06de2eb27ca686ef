"""Incremental decoding of the ``aws-chunked`` content encoding.

SigV4 streaming uploads (and boto3 >= 1.36 by default) frame the object's bytes as
``<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n`` ... ``0[;...]\\r\\n``, then
optional trailer lines (``x-amz-checksum-crc32:...``) and an empty line. The decoder
is fed whatever the socket delivered and passes the payload on as it goes, so the
framing never reaches storage and nothing is buffered beyond one header line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Protocol

from s3proxy.errors import IncompleteBody, InvalidRequest

MAX_LINE = 4096
_CRLF = b"\r\n"
_HEX_DIGITS = b"0123456789abcdefABCDEF"


class ChunkSignatures(Protocol):
    """Checks chunk and trailer signatures as they arrive (SigV4 streaming)."""

    def verify_chunk(self, claimed_signature: bytes, chunk_sha256_hex: str) -> None: ...

    def verify_trailer(self, trailer_text: bytes, claimed_signature: bytes) -> None: ...


class AwsChunkedDecoder:
    def __init__(
        self, deliver: Callable[[bytes], None], signatures: ChunkSignatures | None = None
    ) -> None:
        self._deliver = deliver
        self.signatures = signatures
        self._chunk_sha: Any = None
        self._chunk_signature = b""
        self._trailer_lines: list[bytes] = []
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
                chunk = bytes(view[pos : pos + take])
                if self._chunk_sha is not None:
                    self._chunk_sha.update(chunk)
                self._deliver(chunk)
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
                    self._chunk_done()
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
        # Hex digits only: int(..., 16) also takes "-6", "+1", "0x1" and "1_0", and a
        # negative size would move the parser backwards (forever, for some bodies).
        if not 1 <= len(size_text) <= 16 or size_text.strip(_HEX_DIGITS):
            raise InvalidRequest("Malformed aws-chunked body: bad chunk size.")
        size = int(size_text, 16)
        signature = b""
        if extension.startswith(b"chunk-signature="):
            signature = extension[len(b"chunk-signature=") :]
            self.chunk_signatures.append(signature)
        if self.signatures is not None:
            self._chunk_signature = signature
            self._chunk_sha = hashlib.sha256()
        if size == 0:
            self._state = "trailer"
            self._chunk_done()  # the final chunk signs the empty string
        else:
            self._remaining = size
            self._state = "data"

    def _chunk_done(self) -> None:
        if self.signatures is not None and self._chunk_sha is not None:
            self.signatures.verify_chunk(self._chunk_signature, self._chunk_sha.hexdigest())
            self._chunk_sha = None

    def _trailer(self, line: bytes) -> None:
        if not line:
            self._state = "done"
            return
        name, sep, value = line.partition(b":")
        if not sep:
            raise InvalidRequest("Malformed aws-chunked body: bad trailer line.")
        name = name.strip().lower()
        if name == b"x-amz-trailer-signature":
            if self.signatures is not None:
                text = b"".join(line + b"\n" for line in self._trailer_lines)
                self.signatures.verify_trailer(text, value.strip())
        else:
            self._trailer_lines.append(name + b":" + value.strip())
        self.trailers[name.decode("latin-1")] = value.strip().decode("latin-1")

    def end(self) -> None:
        """The body ended. Some clients omit the empty line after the trailers."""
        if self._state == "trailer" and not self._line:
            self._state = "done"
        if self._state != "done":
            raise IncompleteBody("The aws-chunked body ended before its final chunk.")
