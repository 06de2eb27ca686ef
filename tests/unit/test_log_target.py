"""Log lines reach the file in batches: after a quarter second, once 64 KiB wait, at
once for warnings and errors, and written through while the reactor is not running."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import FileLogObserver, Logger

from s3proxy.observe.logtarget import FLUSH_BYTES, FLUSH_INTERVAL, BufferedLog, UrgentFlush


class FakeReactor(Clock):
    def __init__(self, running: bool = True) -> None:
        super().__init__()
        self.running = running
        self.triggers: list[tuple[str, str, Callable[[], None]]] = []

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        f(*args)

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[[], None]) -> None:
        self.triggers.append((phase, event, f))


class CountingFile(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def logger(reactor: FakeReactor) -> tuple[Logger, BufferedLog, CountingFile]:
    target = CountingFile()
    log = BufferedLog(target, reactor)
    observer = UrgentFlush(log, FileLogObserver(log, lambda e: e["log_format"] + "\n"))
    return Logger(namespace="t", observer=observer), log, target


def test_lines_are_written_together_after_the_interval() -> None:
    reactor = FakeReactor()
    log, _, target = logger(reactor)
    for n in range(100):
        log.info(f"line {n}")
    assert target.getvalue() == ""
    reactor.advance(FLUSH_INTERVAL)
    assert target.getvalue().splitlines() == [f"line {n}" for n in range(100)]
    assert target.writes == 1
    log.info("later")
    reactor.advance(FLUSH_INTERVAL)
    assert target.getvalue().endswith("later\n") and target.writes == 2


def test_a_full_batch_is_written_at_once() -> None:
    reactor = FakeReactor()
    log, _, target = logger(reactor)
    line = "x" * 1000
    for _ in range(FLUSH_BYTES // 1001 + 1):
        log.info(line)
    assert target.writes == 1 and len(target.getvalue()) >= FLUSH_BYTES


def test_warnings_flush_what_came_before() -> None:
    reactor = FakeReactor()
    log, _, target = logger(reactor)
    log.info("context")
    log.warn("trouble")
    assert target.getvalue() == "context\ntrouble\n"


def test_shutdown_flushes_and_no_reactor_writes_through() -> None:
    reactor = FakeReactor()
    log, _, target = logger(reactor)
    log.info("last words")
    [(phase, event, flush)] = reactor.triggers
    assert (phase, event) == ("after", "shutdown")
    flush()
    assert target.getvalue() == "last words\n"
    reactor.running = False
    log.info("after the reactor stopped")
    assert target.getvalue().endswith("after the reactor stopped\n")
