"""One-line messages for whoever started the daemon, on its real stderr: under twistd
``sys.stderr`` is redirected into the log once logging starts."""

from __future__ import annotations

import sys
from typing import NoReturn, TextIO

from twisted.logger import LoggingFile


def console() -> TextIO:
    if isinstance(sys.stderr, LoggingFile) and sys.__stderr__ is not None:
        return sys.__stderr__
    return sys.stderr


def say(message: str) -> None:
    stream = console()
    stream.write(f"s3proxy: {message}\n")
    stream.flush()


def fatal(message: str, status: int = 1) -> NoReturn:
    """Stop the daemon with one line: no traceback, no usage text."""
    say(message)
    raise SystemExit(status)
