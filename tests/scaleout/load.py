"""Client load on a farm: a few threads doing PUT-then-GET round trips through haproxy,
bounded in count and time, every outcome recorded with when it started."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.scaleout.farm import Farm


@dataclass
class Outcome:
    worker: int
    started: float
    key: str
    body: bytes | None  # what the PUT stored, when it was acknowledged
    error: str | None


class RoundTrips:
    def __init__(
        self, farm: Farm, bucket: str, workers: int = 4, body_size: int = 64 * 1024
    ) -> None:
        self.bucket = bucket
        self.body_size = body_size
        # boto3 clients are thread-safe once made; making them is not.
        self.clients = [farm.client() for _ in range(workers)]
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.deadline = time.monotonic() + 60  # the threads stop by themselves
        self.threads = [threading.Thread(target=self._work, args=(w,)) for w in range(workers)]

    def __enter__(self) -> RoundTrips:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _work(self, worker: int) -> None:
        client = self.clients[worker]
        for i in range(2000):
            if self.stopping.is_set() or time.monotonic() > self.deadline:
                return
            key = f"w{worker}/{i:05d}"
            body = os.urandom(self.body_size)
            started = time.monotonic()
            try:
                client.put_object(Bucket=self.bucket, Key=key, Body=body)
                got = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                assert got == body, f"{key} read back different bytes"
                outcome = Outcome(worker, started, key, body, None)
            except Exception as e:
                outcome = Outcome(worker, started, key, None, repr(e))
            with self.lock:
                self.outcomes.append(outcome)

    def succeeded(self, after: float = 0.0) -> int:
        with self.lock:
            return sum(1 for o in self.outcomes if o.error is None and o.started > after)

    def failures(self) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.error is not None]

    def acknowledged(self) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.body is not None]

    def wait(self, count: int, after: float = 0.0, clean: bool = False) -> None:
        """Until ``count`` round trips that started after ``after`` succeeded; with
        ``clean``, fail at once (with the errors) if any round trip failed."""
        while self.succeeded(after) < count:
            if clean:
                errors = [o.error for o in self.failures()]
                assert not errors, f"round trips failed: {errors[:3]}"
            assert time.monotonic() < self.deadline, f"timed out waiting for {count} round trips"
            time.sleep(0.01)

    def check_all(self, read: Callable[[str], Any]) -> None:
        """Every acknowledged PUT reads back as it was stored."""
        for outcome in self.acknowledged():
            assert read(outcome.key) == outcome.body, outcome.key
