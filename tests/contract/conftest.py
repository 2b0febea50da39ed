"""Stores for the contract suites: a new SQLite file, or a new schema (migrated to head) in this
run's own PostgreSQL database (tests/conftest.py's `postgres_database`), dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tenantrag.backends.store import schema


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The url of a new SQLite store file (it migrates itself when opened)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@contextmanager
def migrated_schema(postgres_database: str) -> Iterator[str]:
    """The url of a new schema in `postgres_database` (its search_path), migrated to head."""
    name = f"store_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    url = f"{postgres_database}?options=-csearch_path%3D{name}"
    try:
        schema.upgrade(url)
        yield url
    finally:
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """The url of a new, migrated schema in this run's database (its search_path)."""
    with migrated_schema(postgres_database) as url:
        yield url
