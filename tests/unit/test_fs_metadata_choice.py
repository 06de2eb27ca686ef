"""The filesystem backend checks at start-up where it can keep metadata, and refuses
to start rather than drop metadata silently."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool

from s3proxy.storage import fsmeta
from s3proxy.storage.filesystem import FilesystemStorage
from s3proxy.storage.fsmeta import SidecarMetadata, XattrMetadata


def storage(root: Path, metadata: str = "auto") -> FilesystemStorage:
    return FilesystemStorage(str(root), reactor, ThreadPool(1, 1), metadata=metadata, fsync=False)


def test_xattrs_are_used_where_the_filesystem_keeps_them(tmp_path: Path) -> None:
    assert fsmeta.xattrs_work(str(tmp_path))
    assert isinstance(storage(tmp_path / "root").metadata, XattrMetadata)


def test_without_xattrs_metadata_goes_to_the_sidecar_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("s3proxy.storage.filesystem.xattrs_work", lambda _: False)
    fs = storage(tmp_path / "root")
    assert isinstance(fs.metadata, SidecarMetadata)
    assert (tmp_path / "root" / ".s3proxy" / "meta").is_dir()


def test_xattr_mode_on_a_filesystem_without_them_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("s3proxy.storage.filesystem.xattrs_work", lambda _: False)
    with pytest.raises(RuntimeError, match="does not keep user xattrs"):
        storage(tmp_path / "root", metadata="xattr")


def test_neither_xattrs_nor_a_writable_sidecar_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("s3proxy.storage.filesystem.xattrs_work", lambda _: False)
    root = tmp_path / "root"
    (root / ".s3proxy").mkdir(parents=True)
    # A file where the sidecar tree must go: it cannot be created (root ignores modes).
    (root / ".s3proxy" / "meta").write_bytes(b"")
    with pytest.raises(RuntimeError, match="cannot keep object metadata"):
        storage(root)
    assert not os.path.isdir(root / ".s3proxy" / "meta")
