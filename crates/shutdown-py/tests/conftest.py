"""Shared by the tests: the example's book (examples/nautilus/book.py) on the import path, and each
test in a temp directory of its own (the flush step's fallback file, report files)."""

from __future__ import annotations

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "examples" / "nautilus"))


@pytest.fixture(autouse=True)
def _own_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    yield tmp_path
