"""The filesystem backend's listing reads only the directories a page needs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool

from s3proxy.storage.filesystem import FilesystemStorage


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[FilesystemStorage]:
    pool = ThreadPool(1, 1)
    fs = FilesystemStorage(str(tmp_path / "root"), reactor, pool, fsync=False)
    bucket = tmp_path / "root" / "bkt"
    bucket.mkdir()
    # 20 directories of 50 files each, as another program would have written them.
    for d in range(20):
        (bucket / f"d{d:02d}").mkdir()
        for f in range(50):
            (bucket / f"d{d:02d}" / f"f{f:02d}").write_bytes(b"x")
    yield fs


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every directory os.scandir is asked to read, relative to the bucket."""
    seen: list[str] = []
    real = os.scandir

    def counting(path: str) -> object:
        seen.append(os.path.basename(str(path)))
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    return seen


def test_prefix_reads_only_its_directory(storage: FilesystemStorage, scanned: list[str]) -> None:
    page = storage._list_objects("bkt", "d07/", "", "", 1000)
    assert [o.key for o in page.objects] == [f"d07/f{f:02d}" for f in range(50)]
    assert scanned == ["d07"]


def test_delimiter_reads_only_the_top_and_what_proves_a_prefix_nonempty(
    storage: FilesystemStorage, scanned: list[str]
) -> None:
    page = storage._list_objects("bkt", "", "/", "", 5)
    assert page.common_prefixes == [f"d{d:02d}/" for d in range(5)]
    assert page.is_truncated and page.next_marker == "d04/"
    # The bucket itself, then one look into each prefix on the page (plus the one
    # that tells the page is truncated) to check it holds an object.
    assert scanned[0] == "bkt"
    assert sorted(set(scanned[1:])) == [f"d{d:02d}" for d in range(6)]


def test_full_page_stops_reading(storage: FilesystemStorage, scanned: list[str]) -> None:
    page = storage._list_objects("bkt", "", "", "", 120)
    assert len(page.objects) == 120 and page.is_truncated
    assert page.objects[-1].key == "d02/f19"
    assert scanned == ["bkt", "d00", "d01", "d02"]


def test_marker_skips_directories_unread(storage: FilesystemStorage, scanned: list[str]) -> None:
    page = storage._list_objects("bkt", "", "", "d17/f48", 3)
    assert [o.key for o in page.objects] == ["d17/f49", "d18/f00", "d18/f01"]
    assert scanned == ["bkt", "d17", "d18"]
