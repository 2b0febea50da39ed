"""The records a change commits with: the cost ledger, the audit chain; kinds of change.

- `changes.kind`: 'document' (the indexes replay it) or 'tenant' (nodes refresh their copy of
  the tenant row). Later kinds (an erased tenant, a revoked key) are added the same way.
- `cost_events`, `storage_accruals`: the ledger, moved into the store so a write's costs
  commit with it (before, a separate ledger file or database).
- `audit_log`: the hash-chained audit records (before, audit.jsonl). `record` is the record's
  JSON exactly as hashed; `seq`, `tenant_id` and `hash` repeat fields of it for look-ups.
"""

from __future__ import annotations

from tenantrag.backends.store.migrations.sql import run

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

SQLITE = """
ALTER TABLE changes ADD COLUMN kind TEXT NOT NULL DEFAULT 'document';
CREATE TABLE cost_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    cost_type TEXT NOT NULL,
    amount_usd REAL NOT NULL,
    tokens INTEGER NOT NULL,
    model TEXT,
    request_id TEXT,
    details TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX cost_events_by_tenant_at ON cost_events (tenant_id, at);
CREATE TABLE storage_accruals (
    tenant_id TEXT PRIMARY KEY,
    accrued_until REAL NOT NULL,
    stored_bytes INTEGER NOT NULL
);
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    tenant_id TEXT,
    record TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, seq);
"""

# IF NOT EXISTS on the ledger: a deployment that pointed the old TENANTRAG_LEDGER_URL at this
# database already has those two tables, with these columns.
POSTGRESQL = """
ALTER TABLE changes ADD COLUMN kind text NOT NULL DEFAULT 'document';
CREATE TABLE IF NOT EXISTS cost_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL,
    cost_type text NOT NULL,
    amount_usd double precision NOT NULL,
    tokens bigint NOT NULL,
    model text,
    request_id text,
    details jsonb NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS cost_events_by_tenant_at ON cost_events (tenant_id, at);
CREATE TABLE IF NOT EXISTS storage_accruals (
    tenant_id text PRIMARY KEY,
    accrued_until double precision NOT NULL,
    stored_bytes bigint NOT NULL
);
CREATE TABLE audit_log (
    seq bigint PRIMARY KEY,
    tenant_id text,
    record text NOT NULL,
    hash text NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, seq);
"""


def upgrade() -> None:
    """Add the change kind, the ledger and the audit chain."""
    run(sqlite=SQLITE, postgresql=POSTGRESQL)


def downgrade() -> None:
    """Not supported: the store only moves forward (docs/development.md)."""
    raise NotImplementedError("tenantrag migrations only move forward")
