"""Background ingestion: jobs, their items (each holding one document), and content hashes.

- `jobs`: one row per accepted batch, with the creator, their clearance (the worker writes
  with it as the ceiling, as the request would have) and the timestamps; `last_claim_at` is
  what the claim's round robin across tenants orders by; `progress_at` when an item of it last
  finished (the queue's stall alert reads it).
- `job_items`: one row per document, holding the document itself (`payload`, JSON) so a dead
  worker loses nothing; `state` queued/running/done/failed/cancelled, a lease (`lease_owner`,
  `lease_until`) while running, `attempts` (a document that kills every worker that takes it
  fails after a few), and the error code and message of a failed one.
- `documents.content_hash`: the hash of what the document was stored from, so a job item
  whose document is already stored with the same hash is not stored twice.
"""

from __future__ import annotations

from tenantrag.backends.store.migrations.sql import run

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

SQLITE = """
ALTER TABLE documents ADD COLUMN content_hash TEXT;
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    clearance INTEGER NOT NULL,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    detail TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    last_claim_at REAL NOT NULL,
    progress_at REAL
);
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, created_at);
CREATE INDEX jobs_active ON jobs (status, tenant_id);
CREATE TABLE job_items (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    position INTEGER NOT NULL,
    tenant_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    finished_at REAL,
    PRIMARY KEY (job_id, position)
);
CREATE INDEX job_items_by_state ON job_items (job_id, state, position)
"""

POSTGRESQL = """
ALTER TABLE documents ADD COLUMN content_hash text;
CREATE TABLE jobs (
    id text PRIMARY KEY,
    tenant_id text NOT NULL,
    user_id text NOT NULL,
    request_id text NOT NULL,
    clearance integer NOT NULL,
    status text NOT NULL,
    total integer NOT NULL,
    detail text NOT NULL,
    created_at double precision NOT NULL,
    started_at double precision,
    finished_at double precision,
    last_claim_at double precision NOT NULL,
    progress_at double precision
);
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, created_at);
CREATE INDEX jobs_active ON jobs (status, tenant_id);
CREATE TABLE job_items (
    job_id text NOT NULL REFERENCES jobs (id),
    position integer NOT NULL,
    tenant_id text NOT NULL,
    document_id text NOT NULL,
    payload text NOT NULL,
    content_hash text NOT NULL,
    state text NOT NULL,
    lease_owner text,
    lease_until double precision,
    attempts integer NOT NULL DEFAULT 0,
    error_code text,
    error_message text,
    finished_at double precision,
    PRIMARY KEY (job_id, position)
);
CREATE INDEX job_items_by_state ON job_items (job_id, state, position)
"""


def upgrade() -> None:
    """Add the jobs and job items tables and the documents' content hash."""
    run(sqlite=SQLITE, postgresql=POSTGRESQL)


def downgrade() -> None:
    """Not supported: the store only moves forward (docs/development.md)."""
    raise NotImplementedError("tenantrag migrations only move forward")
