"""What a migration calls: plain SQL, one text for both dialects or one text each."""

from __future__ import annotations

from alembic import op


def run(*, sqlite: str, postgresql: str | None = None) -> None:
    """Execute the statements for this database's dialect (`sqlite` serves both when alone).

    Statements are split at a `;` that ends a line, so keep one statement's lines free of that.
    """
    dialect = op.get_bind().dialect.name
    script = postgresql if dialect == "postgresql" and postgresql is not None else sqlite
    for statement in script.split(";\n"):
        if statement.strip():
            op.execute(statement)
