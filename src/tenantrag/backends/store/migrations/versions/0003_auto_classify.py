"""A tenant's auto-classification policy: `tenants.auto_classify`.

What ingestion does with a document in which it finds personal data (models.AutoClassify,
README "Auto-classification"): `off` keeps the uploader's label, `raise` (the default, and what
every existing tenant did before) raises it to at least `confidential`, `raise-and-redact` also
replaces the values before anything is stored. The CHECK keeps any other value out of the
table, whichever release or tool writes it.

Revision 0003, after 0002. Plain SQL: see docs/development.md, "Schema migrations".
"""

from __future__ import annotations

from tenantrag.backends.store.migrations.sql import run

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# SQLite checks a new column's CHECK against the rows already there; the default passes it.
SQLITE = """
ALTER TABLE tenants ADD COLUMN auto_classify TEXT NOT NULL DEFAULT 'raise'
    CHECK (auto_classify IN ('off', 'raise', 'raise-and-redact'))
"""

POSTGRESQL = """
ALTER TABLE tenants ADD COLUMN auto_classify text NOT NULL DEFAULT 'raise'
    CONSTRAINT tenants_auto_classify_check
    CHECK (auto_classify IN ('off', 'raise', 'raise-and-redact'))
"""


def upgrade() -> None:
    """Add the policy column; existing tenants keep what they had (`raise`)."""
    run(sqlite=SQLITE, postgresql=POSTGRESQL)


def downgrade() -> None:
    """Not supported: the store only moves forward (docs/development.md)."""
    raise NotImplementedError("tenantrag migrations only move forward")
