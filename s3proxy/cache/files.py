"""The cache's disk I/O. Every function here blocks and runs on the thread pool."""

from __future__ import annotations

import os
import shutil
import uuid
import zlib
from typing import BinaryIO


class CorruptBlock(Exception):
    """A block file is missing, short or fails its checksum."""


def read_block(path: str, length: int, crc32: int) -> bytes:
    """The whole block, verified: a block is checked before any byte of it is served."""
    try:
        with open(path, "rb") as f:
            data = f.read(length + 1)
    except FileNotFoundError:
        raise CorruptBlock(f"{path}: missing") from None
    if len(data) != length or zlib.crc32(data) != crc32:
        raise CorruptBlock(f"{path}: checksum or length mismatch")
    return data


def open_temp(directory: str, index: int) -> tuple[BinaryIO, str]:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f".tmp-{index}-{uuid.uuid4().hex[:8]}")
    return open(path, "wb"), path


def write_chunk(f: BinaryIO, data: bytes, crc32: int) -> int:
    f.write(data)
    return zlib.crc32(data, crc32)


def publish(f: BinaryIO, temp: str, final: str) -> None:
    """Close and rename into place: a reader never sees a partly written block. No
    fsync: a block torn by a crash fails its checksum (and the index starts empty)."""
    f.close()
    os.rename(temp, final)


def discard(f: BinaryIO | None, temp: str | None) -> None:
    if f is not None:
        f.close()
    if temp is not None:
        remove_file(temp)


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def remove_all(paths: list[str]) -> None:
    for path in paths:
        if os.path.isdir(path):
            remove_tree(path)
        else:
            remove_file(path)


def set_aside(root: str) -> list[str]:
    """Move the blocks of an earlier run out of the way (the index starts empty) and
    return where they went, for deletion in the background. Quick enough for start-up:
    one rename."""
    os.makedirs(root, exist_ok=True)
    blocks = os.path.join(root, "blocks")
    stale = [os.path.join(root, n) for n in os.listdir(root) if n.startswith(".trash-")]
    if os.path.exists(blocks):
        trash = os.path.join(root, f".trash-{uuid.uuid4().hex[:8]}")
        os.rename(blocks, trash)
        stale.append(trash)
    os.makedirs(blocks)
    return stale
