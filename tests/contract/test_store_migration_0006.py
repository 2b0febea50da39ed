"""Migration 0006 on a store that already has tenants (SQLite and PostgreSQL alike).

Existing tenants count credentials from their creation (`tokens_valid_after = created_at`), so
tokens issued since keep working and none issued before the tenant existed starts to.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from tests.contract.test_store_migrations import bare_postgres_url  # noqa: F401  # a fixture

from tenantrag.backends.store import schema, store_at

BEFORE = "0004"  # main's last before identity (from it, jobs' 0005 also runs once relinked)
COLUMNS = (
    "id, status, rate_limit, storage_quota_bytes, document_quota, monthly_token_budget,"
    " monthly_cost_budget_usd, bm25_weight, vector_weight, fusion, injection_policy,"
    " redact_search_pii, created_at, auto_classify"
)


def upgrade_with_a_tenant(url: str, mark: str) -> None:
    """A tenant created at 1,700,000,000 under the old schema, then the upgrade."""
    command.upgrade(schema.config(url), BEFORE)
    values = ("acme", "active", 100, 10**9, 1000, 10**6, 100.0, 0.5, 0.5, "zscore", "block")
    with schema.connect(url) as conn:
        conn.exec_driver_sql(
            f"INSERT INTO tenants ({COLUMNS}) VALUES ({','.join([mark] * 14)})",
            (*values, True, 1_700_000_000.5, "raise"),
        )
        conn.commit()
    schema.upgrade(url)


def check(url: str) -> None:
    store = store_at(url)
    store.open()
    try:
        tenant = store.get_tenant("acme")
        assert tenant is not None and tenant.tokens_valid_after == 1_700_000_000.5
        assert store.list_api_keys("acme") == []
        assert store.revoked_token_ids(now=0) == frozenset()
    finally:
        store.close()


def test_sqlite_tenants_count_credentials_from_their_creation(tmp_path: Path) -> None:
    """SQLite: tokens_valid_after is the tenant's created_at."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade_with_a_tenant(url, "?")
    check(url)


@pytest.mark.postgres
def test_postgres_tenants_count_credentials_from_their_creation(
    bare_postgres_url: str,  # noqa: F811
) -> None:
    """PostgreSQL: the same."""
    upgrade_with_a_tenant(bare_postgres_url, "%s")
    check(bare_postgres_url)
