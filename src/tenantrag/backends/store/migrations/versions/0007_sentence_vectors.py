"""Each chunk's sentence vectors: `chunks.sentences`, written at ingestion.

The extractive answerer compares a question with the sentences of its passages by meaning.
Embedding those sentences while the question waits cost more than everything else a query
does (docs/benchmarks.md, "Wall-time ratios"), so ingestion embeds every sentence of a chunk
once and stores the vectors beside it (rows.sentence_blob: int8, one row per sentence). NULL
for chunks stored before this revision, with a remote embedding model, and when the deployment
turns it off (`TENANTRAG_EMBEDDING__SENTENCE_VECTORS=false`): the answerer then embeds the few it
needs as before.
The column travels with the chunk into every node's read model (store/follower.py).

Revision 0007, after 0006. Plain SQL: see docs/development.md, "Schema migrations".
"""

from __future__ import annotations

from tenantrag.backends.store.migrations.sql import run

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

SQLITE = "ALTER TABLE chunks ADD COLUMN sentences BLOB"
POSTGRESQL = "ALTER TABLE chunks ADD COLUMN sentences bytea"


def upgrade() -> None:
    """Add the nullable column; existing chunks keep NULL (answered as before)."""
    run(sqlite=SQLITE, postgresql=POSTGRESQL)


def downgrade() -> None:
    """Not supported: the store only moves forward (docs/development.md)."""
    raise NotImplementedError("tenantrag migrations only move forward")
