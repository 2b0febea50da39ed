"""Tenants, documents, chunks with their embeddings, and the change log the indexes replay.

The schema SQLiteStore created before migrations existed, hence IF NOT EXISTS: a data folder
made by an older release is adopted as it stands.
"""

from __future__ import annotations

from tenantrag.backends.store.migrations.sql import run

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SQLITE = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'active',
    rate_limit INTEGER NOT NULL,
    storage_quota_bytes INTEGER NOT NULL,
    document_quota INTEGER NOT NULL,
    monthly_token_budget INTEGER NOT NULL,
    monthly_cost_budget_usd REAL NOT NULL,
    bm25_weight REAL NOT NULL,
    vector_weight REAL NOT NULL,
    fusion TEXT NOT NULL,
    injection_policy TEXT NOT NULL,
    redact_search_pii INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    classification INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    title TEXT NOT NULL,
    classification INTEGER NOT NULL,
    source TEXT NOT NULL,
    metadata TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (tenant_id, document_id);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_tenant ON changes (tenant_id, seq);
"""

# The same tables; `chunks.rowid` is named `id` (rowid is SQLite's own). Document ids sort
# bytewise ("C"), as in SQLite, so list pages and their cursors agree between the stores.
POSTGRESQL = """
CREATE TABLE tenants (
    id text PRIMARY KEY,
    status text NOT NULL DEFAULT 'active',
    rate_limit integer NOT NULL,
    storage_quota_bytes bigint NOT NULL,
    document_quota bigint NOT NULL,
    monthly_token_budget bigint NOT NULL,
    monthly_cost_budget_usd double precision NOT NULL,
    bm25_weight double precision NOT NULL,
    vector_weight double precision NOT NULL,
    fusion text NOT NULL,
    injection_policy text NOT NULL,
    redact_search_pii boolean NOT NULL,
    created_at double precision NOT NULL
);
CREATE TABLE documents (
    tenant_id text NOT NULL REFERENCES tenants(id),
    id text COLLATE "C" NOT NULL,
    title text NOT NULL,
    source text NOT NULL,
    classification smallint NOT NULL,
    metadata jsonb NOT NULL,
    bytes bigint NOT NULL,
    chunks integer NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE chunks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL,
    document_id text NOT NULL,
    position integer NOT NULL,
    text text NOT NULL,
    title text NOT NULL,
    classification smallint NOT NULL,
    source text NOT NULL,
    metadata jsonb NOT NULL,
    embedding bytea NOT NULL
);
CREATE INDEX chunks_by_document ON chunks (tenant_id, document_id);
CREATE TABLE changes (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL,
    document_id text NOT NULL,
    at double precision NOT NULL
);
CREATE INDEX changes_by_tenant ON changes (tenant_id, seq);
"""


def upgrade() -> None:
    """Create the corpus tables."""
    run(sqlite=SQLITE, postgresql=POSTGRESQL)


def downgrade() -> None:
    """Not supported: the store only moves forward (docs/development.md)."""
    raise NotImplementedError("tenantrag migrations only move forward")
