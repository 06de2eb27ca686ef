"""A filesystem backend in a fresh directory, driven synchronously from a Hypothesis
test: shared by the key and attribute property tests."""

from __future__ import annotations

import os
import queue
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from s3proxy.model import ObjectAttributes
from s3proxy.storage.filesystem import FilesystemStorage
from tests.contract.test_storage_contract import Collector

T = TypeVar("T")
BUCKET = "bucket"


class Loop:
    """The reactor side of ``deferToThreadPool`` for a synchronous test: the backend's
    blocking calls run on a real thread pool, and their results are delivered on the
    test's thread by ``run``, as the reactor would deliver them (pytest-twisted's
    ``blockon`` cannot be used inside a Hypothesis test)."""

    def __init__(self) -> None:
        self._calls: queue.Queue[tuple[Callable[..., object], tuple[object, ...]]] = queue.Queue()

    def callFromThread(self, f: Callable[..., object], *args: object) -> None:
        self._calls.put((f, args))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        d = Deferred.fromCoroutine(coroutine)
        results: list[Any] = []
        d.addBoth(results.append)
        while not results:
            f, args = self._calls.get(timeout=30)
            f(*args)
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return cast(T, results[0])


# Started and stopped by the fs_pool fixture (conftest.py).
POOL = ThreadPool(minthreads=0, maxthreads=2, name="fuzz-fs")


metadata_modes = st.sampled_from(["xattr", "sidecar"])


class Backend:
    """A fresh filesystem backend in its own directory, root one level down."""

    def __init__(self, metadata: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="fuzz-keys-")
        self.loop = Loop()
        self.outer = Path(self._dir.name)
        self.root = self.outer / "root"
        self.root.mkdir()
        self.storage = FilesystemStorage(
            str(self.root), cast(IReactorThreads, self.loop), POOL, metadata=metadata, fsync=False
        )

    def close(self) -> None:
        self._dir.cleanup()

    def escaped(self) -> list[str]:
        """Anything beside the root, or any symlink below it."""
        strays = [name for name in os.listdir(self.outer) if name != "root"]
        for dirpath, dirnames, filenames in os.walk(self.root):
            strays += [
                os.path.join(dirpath, n)
                for n in dirnames + filenames
                if os.path.islink(os.path.join(dirpath, n))
            ]
        return strays

    def bucket_files(self) -> set[str]:
        found = set()
        for dirpath, dirnames, filenames in os.walk(self.root / BUCKET):
            for name in dirnames + filenames:
                found.add(os.path.relpath(os.path.join(dirpath, name), self.root / BUCKET))
        return found


async def put(storage: FilesystemStorage, key: str, data: bytes) -> None:
    writer = await storage.open_writer(BUCKET, key, ObjectAttributes(), None, len(data))
    writer.write(data)
    await writer.finish()


async def get(storage: FilesystemStorage, key: str) -> bytes:
    reader = await storage.open_reader(BUCKET, key, None)
    consumer = Collector()
    await reader.start(consumer)
    return consumer.data


async def listing(storage: FilesystemStorage, page_size: int) -> list[str]:
    """Every key, page by page (so that the markers are keys from this test too)."""
    keys: list[str] = []
    marker = ""
    while True:
        page = await storage.list_objects(BUCKET, "", "", marker, page_size)
        keys += [o.key for o in page.objects]
        if not page.is_truncated:
            return keys
        assert page.next_marker is not None and page.next_marker > marker
        marker = page.next_marker
