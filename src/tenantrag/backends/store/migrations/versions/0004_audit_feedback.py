"""The audit chain's look-ups and anchors, the security log, and answer feedback.

- `audit_log.action`, `audit_log.request_id`: fields of the record repeated for look-ups
  (feedback names a request the caller's tenant was answered: a `query` record of that
  tenant with that request id). Filled in for the records already there.
- `audit_anchors`: each node's newest signed head (its anchor file holds the same); writing
  it durably also flushes the records it signs to disk before the file is written.
- `security_log`: authentication failures before a verified credential, apart from every
  tenant's chain: one row per client address per interval, with a count.
- `feedback`: a user's thumbs up or down (and comment) on one answered request.
"""

from __future__ import annotations

from tenantrag.backends.store.migrations.sql import run

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

SQLITE = """
ALTER TABLE audit_log ADD COLUMN action TEXT;
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
UPDATE audit_log SET action = json_extract(record, '$.action'),
    request_id = json_extract(record, '$.request_id') WHERE json_valid(record);
CREATE INDEX audit_log_by_request ON audit_log (tenant_id, request_id);
CREATE TABLE audit_anchors (
    node TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    anchor TEXT NOT NULL
);
CREATE TABLE security_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    window_start REAL NOT NULL,
    window_end REAL NOT NULL,
    client TEXT NOT NULL,
    event TEXT NOT NULL,
    count INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX security_log_by_time ON security_log (window_start);
CREATE TABLE feedback (
    tenant_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, request_id, user_id)
);
CREATE INDEX feedback_by_time ON feedback (tenant_id, updated_at);
"""

# A stored record that is not JSON (tampering, which `audit verify` reports) must not stop the
# upgrade: the look-up fields of such a row stay NULL.
POSTGRESQL = """
ALTER TABLE audit_log ADD COLUMN action text;
ALTER TABLE audit_log ADD COLUMN request_id text;
CREATE FUNCTION pg_temp.record_field(body text, name text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    AS $$ BEGIN RETURN body::jsonb ->> name; EXCEPTION WHEN others THEN RETURN NULL; END $$;
UPDATE audit_log SET action = pg_temp.record_field(record, 'action'),
    request_id = pg_temp.record_field(record, 'request_id');
CREATE INDEX audit_log_by_request ON audit_log (tenant_id, request_id);
CREATE TABLE audit_anchors (
    node text PRIMARY KEY,
    seq bigint NOT NULL,
    hash text NOT NULL,
    anchor text NOT NULL
);
CREATE TABLE security_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    window_start double precision NOT NULL,
    window_end double precision NOT NULL,
    client text NOT NULL,
    event text NOT NULL,
    count bigint NOT NULL,
    detail text NOT NULL
);
CREATE INDEX security_log_by_time ON security_log (window_start);
CREATE TABLE feedback (
    tenant_id text NOT NULL,
    request_id text NOT NULL,
    user_id text NOT NULL,
    rating text NOT NULL CHECK (rating IN ('up', 'down')),
    comment text,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (tenant_id, request_id, user_id)
);
CREATE INDEX feedback_by_time ON feedback (tenant_id, updated_at);
"""


def upgrade() -> None:
    """Add the audit look-ups and anchors, the security log and the feedback table."""
    run(sqlite=SQLITE, postgresql=POSTGRESQL)


def downgrade() -> None:
    """Not supported: the store only moves forward (docs/development.md)."""
    raise NotImplementedError("tenantrag migrations only move forward")
