"""Migration 0004 on a store that already holds audit records (SQLite and PostgreSQL alike).

Records written before it get their look-up fields filled in, so an answer given before the
upgrade can still be rated; a stored line that is not JSON (tampering) does not stop it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command

from tenantrag.backends.store import schema, store_at
from tenantrag.backends.store.chain import GENESIS, audit_fields, chain_records, line
from tenantrag.backends.store.extras import Feedback
from tenantrag.errors import NotFound
from tenantrag.models import Tenant
from tenantrag.observability.audit import verify_records


def old_records() -> list[tuple[int, str | None, str, str]]:
    """Rows as revision 0002 stored them: two records, then a line that is not JSON."""
    records = chain_records(
        [
            audit_fields(
                action=action,
                outcome="success",
                tenant_id="acme",
                user_id="u1",
                request_id=request_id,
                trace_id=None,
            )
            for action, request_id in [("query", "req-before-1"), ("search", "req-before-2")]
        ],
        GENESIS,
    )
    rows = [(r["seq"], r["tenant_id"], line(r), r["hash"]) for r in records]
    return [*rows, (3, "acme", '{"torn', "0" * 64)]


def upgrade_with_old_records(url: str, insert: str) -> None:
    command.upgrade(schema.config(url), "0002")
    with schema.connect(url) as conn:
        for row in old_records():
            conn.exec_driver_sql(insert, row)
        conn.commit()
    schema.upgrade(url)


def check_old_answers_can_be_rated(url: str) -> None:
    store = store_at(url)
    store.open()
    try:
        store.create_tenant(Tenant(id="acme"))
        assert store.put_feedback(Feedback("acme", "req-before-1", "u1", "up")) is True
        with pytest.raises(NotFound):  # a search is no answer
            store.put_feedback(Feedback("acme", "req-before-2", "u1", "up"))
        result = verify_records(store.iter_audit())
        assert (result.ok, result.torn_lines) == (False, (3,))  # the torn line still shows
    finally:
        store.close()


def test_sqlite_records_before_0004_can_be_rated(tmp_path: Path) -> None:
    """SQLite: the records' action and request id are filled in from their JSON."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade_with_old_records(
        url, "INSERT INTO audit_log (seq, tenant_id, record, hash) VALUES (?,?,?,?)"
    )
    check_old_answers_can_be_rated(url)


@pytest.fixture
def bare_postgres_url(postgres_database: str) -> Iterator[str]:
    """A new, empty schema in this run's database (not migrated)."""
    name = f"mig_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{postgres_database}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.mark.postgres
def test_postgres_records_before_0004_can_be_rated(bare_postgres_url: str) -> None:
    """PostgreSQL: the same, and a line that is not JSON leaves its fields empty."""
    upgrade_with_old_records(
        bare_postgres_url,
        "INSERT INTO audit_log (seq, tenant_id, record, hash) VALUES (%s,%s,%s,%s)",
    )
    check_old_answers_can_be_rated(bare_postgres_url)
