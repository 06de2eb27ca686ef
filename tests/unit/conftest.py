"""Fixtures shared by the unit tests of the command-line options."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default data directory, never the user's own."""
    path = tmp_path / "data"
    monkeypatch.setenv("S3PROXY_DATA", str(path))
    return path
