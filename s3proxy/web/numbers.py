"""Plain decimal numbers in headers and query parameters, read strictly."""

from __future__ import annotations

import re

# ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and "٣" (which
# int() reads); and int() refuses more than 4300 digits. 18 digits fit any size.
_DECIMAL_RE = re.compile(r"0*([0-9]{1,18})")


def non_negative(text: str | None) -> int | None:
    """The value of ``text`` if it is a plain decimal number, else None."""
    if text is None:
        return None
    match = _DECIMAL_RE.fullmatch(text)
    return int(match.group(1)) if match else None
