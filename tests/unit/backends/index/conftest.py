"""Fixtures for the index tests: a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.backends.index.index_helpers import make_store

from tenantrag.backends.store.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A fresh store with the tenants acme and globex."""
    opened = make_store(tmp_path / "store.db", "acme", "globex")
    yield opened
    opened.close()
