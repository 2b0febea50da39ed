"""Credentials: API keys, revoked token ids, and when a tenant's credentials start to count.

- `tenants.tokens_valid_after`: credentials issued before it are refused. Set to the creation
  time (existing tenants: their `created_at`) and moved to the present at every suspension.
- `api_keys`: a tenant's keys, `trk_<id>_<secret>`; only an HMAC-SHA256 of the secret is kept
  (auth/keys.py says why a keyed hash and not bcrypt or argon2). `id` is the lookup prefix.
- `revoked_tokens`: `jti`s refused until their token would have expired anyway.

Nothing here is replicated to the nodes' read models: every node checks keys and revocations
against the store of record (auth/credentials.py), so a revocation reaches all of them within
a second. Erasing a tenant (`erase_tenant`) leaves its row as a tombstone with status
`deleted`.
"""

from __future__ import annotations

from tenantrag.backends.store.migrations.sql import run

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

SQLITE = """
ALTER TABLE tenants ADD COLUMN tokens_valid_after REAL NOT NULL DEFAULT 0;
UPDATE tenants SET tokens_valid_after = created_at;
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    permissions TEXT NOT NULL,
    clearance INTEGER NOT NULL,
    rate_limit INTEGER,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL,
    last_used_at REAL
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    revoked_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX revoked_tokens_by_time ON revoked_tokens (revoked_at)
"""

POSTGRESQL = """
ALTER TABLE tenants ADD COLUMN tokens_valid_after double precision NOT NULL DEFAULT 0;
UPDATE tenants SET tokens_valid_after = created_at;
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    tenant_id text NOT NULL,
    name text NOT NULL,
    secret_hash text NOT NULL,
    permissions text NOT NULL,
    clearance smallint NOT NULL,
    rate_limit integer,
    created_by text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision,
    revoked_at double precision,
    last_used_at double precision
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);
CREATE TABLE revoked_tokens (
    jti text PRIMARY KEY,
    revoked_at double precision NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX revoked_tokens_by_time ON revoked_tokens (revoked_at)
"""


def upgrade() -> None:
    """Add the credential tables and the tenants' `tokens_valid_after`."""
    run(sqlite=SQLITE, postgresql=POSTGRESQL)


def downgrade() -> None:
    """Not supported: the store only moves forward (docs/development.md)."""
    raise NotImplementedError("tenantrag migrations only move forward")
