"""TempFile: plain write(2)/writev(2) on a temporary file, short writes included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s3proxy.storage import fstemp
from s3proxy.storage.fstemp import TemporaryFiles


def _short(real, limit: int):  # type: ignore[no-untyped-def]
    """A system call that moves at most ``limit`` bytes, as on a nearly full disk."""

    def call(fd, data):  # type: ignore[no-untyped-def]
        if isinstance(data, list):
            taken, budget = [], limit
            for chunk in data:
                if budget <= 0:
                    break
                taken.append(bytes(chunk[:budget]))
                budget -= len(taken[-1])
            return real(fd, taken)
        return real(fd, bytes(data[:limit]))

    return call


def test_writelines_survives_short_writes_and_long_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, f = TemporaryFiles(str(tmp_path)).create()
    chunks = [os.urandom(n % 7 + 1) for n in range(3 * fstemp.IOV_MAX + 5)] + [b""]
    monkeypatch.setattr(fstemp.os, "writev", _short(os.writev, 1000))
    with f:
        f.writelines(chunks)
        f.flush()
    assert Path(path).read_bytes() == b"".join(chunks)
    assert f.closed


def test_write_survives_short_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, f = TemporaryFiles(str(tmp_path)).create()
    data = os.urandom(100_000)
    monkeypatch.setattr(fstemp.os, "write", _short(os.write, 4096))
    with f:
        assert f.write(data) == len(data)
        f.write(memoryview(data)[:10])
    assert Path(path).read_bytes() == data + data[:10]


def test_a_full_disk_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, f = TemporaryFiles(str(tmp_path)).create()

    def full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fstemp.os, "writev", full)
    with f, pytest.raises(OSError):
        f.writelines([b"x", b"y"])
    with pytest.raises(ValueError):
        f.fileno()  # closed


def test_names_are_unique_and_a_taken_name_is_skipped(tmp_path: Path) -> None:
    files = TemporaryFiles(str(tmp_path))
    # Another process holding the next name: creation takes the one after it.
    taken = tmp_path / f"{files._prefix}0.part"
    taken.write_bytes(b"someone else's")
    paths = {files.create()[0] for _ in range(50)}
    assert len(paths) == 50 and str(taken) not in paths
    assert taken.read_bytes() == b"someone else's"


def test_a_file_unlinked_by_a_sweeper_before_the_lock_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = TemporaryFiles(str(tmp_path))
    real_flock = fstemp.fcntl.flock
    swept: list[str] = []

    def sweep_first(fd: int, op: int) -> None:
        if not swept:  # the sweeper got there between open and flock
            name = f"{files._prefix}0.part"
            os.unlink(tmp_path / name)
            swept.append(name)
        real_flock(fd, op)

    monkeypatch.setattr(fstemp.fcntl, "flock", sweep_first)
    path, f = files.create()
    with f:
        f.write(b"kept")
    assert swept and not path.endswith(swept[0])
    assert Path(path).read_bytes() == b"kept"
