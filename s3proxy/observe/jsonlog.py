"""``--log-format json``: the daemon's log as JSON lines, one object per event.

An access event becomes ``{"time", "level", "namespace", "request_id", ...}`` with
exactly the fields of ``ACCESS_FIELDS``; any other event becomes ``{"time", "level",
"namespace", "message"}`` plus ``"traceback"`` when it carries a failure. Only what
the code chose to log is written (never the event's other keys)."""

from __future__ import annotations

import functools
import json
import signal
import sys
from datetime import UTC, datetime
from typing import IO, Any, cast

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
)
from twisted.python import logfile

from s3proxy.observe.accesslog import ACCESS_FIELDS, ACCESS_NAMESPACE
from s3proxy.observe.logtarget import BufferedLog, UrgentFlush

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _time(event: LogEvent) -> str | None:
    when = event.get("log_time")
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


def json_line(event: LogEvent) -> str:
    level = event.get("log_level")
    out: dict[str, Any] = {
        "time": _time(event),
        "level": level.name if level is not None else None,
        "namespace": event.get("log_namespace"),
    }
    if event.get("log_namespace") == ACCESS_NAMESPACE:
        for name in ACCESS_FIELDS:
            out[name] = event.get(name)
    else:
        out["message"] = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            out["traceback"] = failure.getTraceback()
    return _dumps(out) + "\n"


def json_file_observer(out: IO[Any]) -> FileLogObserver:
    return FileLogObserver(out, json_line)


# Where twistd would write its text log: (--logfile, -n). twistd takes its
# ``logger`` setting as a dotted name of a factory without arguments, so the
# factory finds them here.
_twistd_target: tuple[str, bool] = ("", True)


def use_log_format_for_twistd(twistd_options: dict[str, Any], log_format: str) -> None:
    """Have twistd log through our batched observer, as JSON lines or as its own
    classic text, where it would have logged (called while twistd parses its
    options, before it builds its log observer)."""
    global _twistd_target
    _twistd_target = (twistd_options.get("logfile") or "", bool(twistd_options.get("nodaemon")))
    factory = "twistd_json_observer" if log_format == "json" else "twistd_text_observer"
    twistd_options["logger"] = f"{__name__}.{factory}"


def _twistd_file() -> IO[Any]:
    """``--logfile`` (rotated on SIGUSR1, as twistd does), or stdout with ``-n`` and
    no log file (or ``--logfile -``)."""
    logfile_name, nodaemon = _twistd_target
    if logfile_name == "-" or (nodaemon and not logfile_name):
        return sys.stdout
    log_file = logfile.LogFile.fromFullPath(logfile_name or "twistd.log")
    if not signal.getsignal(signal.SIGUSR1):

        def rotate(number: int, frame: object) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(log_file.rotate)  # type: ignore[attr-defined]

        signal.signal(signal.SIGUSR1, rotate)
    return cast(IO[Any], log_file)


def twistd_json_observer() -> ILogObserver:
    """JSON lines, written in batches (see logtarget)."""
    out = BufferedLog(_twistd_file())
    return UrgentFlush(out, json_file_observer(cast(IO[Any], out)))


@functools.lru_cache(maxsize=64)
def _time_text(seconds: int) -> str:
    return formatTime(seconds)


def _format_time(when: float | None) -> str:
    return _time_text(int(when)) if when is not None else "-"


def _classic_line(event: LogEvent) -> str | None:
    return formatEventAsClassicLogText(event, formatTime=_format_time)


def twistd_text_observer() -> ILogObserver:
    """twistd's own text lines (``2026-11-24T21:24:56+0000 [namespace#level] ...``),
    written in batches, their timestamps formatted once per second."""
    out = BufferedLog(_twistd_file())
    return UrgentFlush(out, FileLogObserver(cast(IO[Any], out), _classic_line))
