"""The s3: writer's spool for bodies of unknown length: bytes come back in order even
when written from its own progress callbacks, a failed write fails the flush, and the
spooled body honours pause and stop as an IBodyProducer must."""

from __future__ import annotations

import hashlib
import os
from unittest import mock

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from s3proxy.storage.s3.spool import Spool


class Collector:
    def __init__(self) -> None:
        self.md5 = hashlib.md5()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.md5.update(data)
        self.size += len(data)


@pytest_twisted.ensureDeferred
async def test_writes_from_progress_callbacks_come_back_in_order() -> None:
    chunks = [os.urandom(50_000 + i) for i in range(60)]
    expected = hashlib.md5(b"".join(chunks)).hexdigest()
    left = list(chunks)
    all_written: Deferred[None] = Deferred()

    def progress() -> None:
        # Like a client resumed by the writer: it sends from inside the callback.
        if spool.queued < 200_000 and left:
            spool.write(left.pop(0))
            if not left:
                all_written.callback(None)

    spool = Spool(progress)
    for _ in range(3):
        spool.write(left.pop(0))
    await all_written
    await spool.flush()
    assert spool.queued == 0
    out = Collector()
    await spool.body(sum(map(len, chunks))).startProducing(out)
    spool.close()
    assert (out.size, out.md5.hexdigest()) == (sum(map(len, chunks)), expected)


@pytest_twisted.ensureDeferred
async def test_a_failed_write_fails_the_flush() -> None:
    spool = Spool(lambda: None)
    spool.write(b"fine")
    with mock.patch.object(spool._file, "write", side_effect=OSError(28, "No space left")):
        spool.write(b"does not fit")
        with pytest.raises(OSError):
            await spool.flush()
    assert spool.queued == 0
    spool.close()


@pytest_twisted.ensureDeferred
async def test_spooled_body_pauses_and_stops() -> None:
    spool = Spool(lambda: None)
    for _ in range(4):
        spool.write(b"x" * 1024 * 1024)
    await spool.flush()
    body = spool.body(4 * 1024 * 1024)
    out = Collector()
    body.pauseProducing()
    done = body.startProducing(out)
    await deferLater(reactor, 0.2)  # time for pool threads: nothing comes while paused
    assert out.size == 0
    body.resumeProducing()
    await done
    assert out.size == 4 * 1024 * 1024
    stopped = spool.body(4 * 1024 * 1024)
    ended = stopped.startProducing(Collector())
    stopped.stopProducing()
    fired: list[object] = []
    ended.addBoth(fired.append)
    spool.close()
    assert fired == []  # IBodyProducer: never fires after stopProducing
