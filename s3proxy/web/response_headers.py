"""Response headers that keep the case S3 clients expect for ``x-amz-*`` names.

twisted.web canonicalises every header name (``x-amz-meta-color`` would go out as
``X-Amz-Meta-Color``). HTTP names are case-insensitive, but SDKs keep the case of what
follows ``x-amz-meta-``, so user metadata keys would change case on the way back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from twisted.web.http_headers import Headers, _nameEncoder


class S3ResponseHeaders(Headers):
    def __init__(self) -> None:
        super().__init__()
        self._spelling: dict[bytes, bytes] = {}

    def _remember(self, name: str | bytes) -> None:
        raw = name.encode("iso-8859-1") if isinstance(name, str) else name
        if raw.lower().startswith(b"x-amz-"):
            self._spelling[_nameEncoder.encode(raw)] = raw.lower()

    def setRawHeaders(self, name: str | bytes, values: Sequence[str | bytes]) -> None:
        self._remember(name)
        super().setRawHeaders(name, values)

    def addRawHeader(self, name: str | bytes, value: str | bytes) -> None:
        self._remember(name)
        super().addRawHeader(name, value)

    def getAllRawHeaders(self) -> Iterator[tuple[bytes, Sequence[bytes]]]:
        for name, values in super().getAllRawHeaders():
            yield self._spelling.get(name, name), values
