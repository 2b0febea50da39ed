"""${message}

Revision ${up_revision}, after ${down_revision | comma,n}. Plain SQL: see docs/development.md,
"Schema migrations".
"""

from __future__ import annotations

from tenantrag.backends.store.migrations.sql import run

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    run(
        sqlite="""
""",
        postgresql="""
""",
    )


def downgrade() -> None:
    """Not supported: the store only moves forward (docs/development.md)."""
    raise NotImplementedError("tenantrag migrations only move forward")
