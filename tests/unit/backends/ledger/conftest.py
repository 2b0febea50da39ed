"""Fixtures for the ledger tests: a fresh SQLite file, and a private schema in this run's own
PostgreSQL database (tests/conftest.py's `postgres_database`), dropped after the test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A ledger url for a new SQLite file."""
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A ledger url whose search_path is a new, empty schema (dropped afterwards)."""
    schema = f"ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{postgres_database}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
