"""Where the daemon's log lines go: twistd's log file (or stdout), written in batches.

Twisted's file observer writes and flushes each event on its own: one system call per
request for the access log, a tenth of a small request's reactor time. Here lines are
gathered and written every ``FLUSH_INTERVAL`` seconds, or sooner once ``FLUSH_BYTES``
are waiting; warnings and errors (and the shutdown) flush at once. A daemon killed
with SIGKILL can lose the last quarter second of access lines, as nginx's buffered
access log can.
"""

from __future__ import annotations

import threading
from typing import IO, Any

from twisted.logger import ILogObserver, LogEvent, LogLevel
from zope.interface import implementer

FLUSH_INTERVAL = 0.25
FLUSH_BYTES = 64 * 1024


class BufferedLog:
    """A file-like target for ``FileLogObserver``: ``flush`` after each event is a
    no-op; the lines reach ``target`` in batches."""

    def __init__(self, target: IO[Any], reactor: Any = None) -> None:
        self.target = target
        self._reactor = reactor
        self._lock = threading.Lock()
        self._parts: list[str] = []
        self._size = 0
        self._scheduled = False
        self._shutdown_hooked = False

    def write(self, text: str) -> None:
        if not self._reactor_running():
            # Before the reactor starts and after it stopped (twistd's last lines)
            # nothing would flush a batch: write through.
            self.target.write(text)
            self.target.flush()
            return
        with self._lock:
            self._parts.append(text)
            self._size += len(text)
            full = self._size >= FLUSH_BYTES
            schedule = not full and not self._scheduled
            if schedule:
                self._scheduled = True
        if full:
            self.flush_now()
        elif schedule:
            self._schedule()

    def flush(self) -> None:
        """Called by the observer after every event: batched instead."""

    def flush_now(self) -> None:
        with self._lock:
            data = "".join(self._parts)
            self._parts.clear()
            self._size = 0
            self._scheduled = False
        if data:
            self.target.write(data)
            self.target.flush()

    def close(self) -> None:
        self.flush_now()
        self.target.close()

    def _get_reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor as global_reactor

            self._reactor = global_reactor
        return self._reactor

    def _reactor_running(self) -> bool:
        return bool(getattr(self._get_reactor(), "running", False))

    def _schedule(self) -> None:
        reactor = self._get_reactor()
        if not self._shutdown_hooked:
            self._shutdown_hooked = True
            reactor.callFromThread(
                reactor.addSystemEventTrigger, "after", "shutdown", self.flush_now
            )
        if threading.current_thread() is threading.main_thread():
            reactor.callLater(FLUSH_INTERVAL, self.flush_now)
        else:
            reactor.callFromThread(reactor.callLater, FLUSH_INTERVAL, self.flush_now)


@implementer(ILogObserver)
class UrgentFlush:
    """Wraps a formatter: events at warn level and above flush the batch at once, so
    what explains a crash is on disk before it."""

    def __init__(self, log: BufferedLog, observer: Any) -> None:
        self.log = log
        self.observer = observer

    def __call__(self, event: LogEvent) -> None:
        self.observer(event)
        level = event.get("log_level")
        if level is not None and level >= LogLevel.warn:
            self.log.flush_now()
