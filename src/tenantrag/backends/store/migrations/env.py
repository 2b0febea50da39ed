"""Alembic's environment: run the migrations on the store named by `schema.config(url)`.

Alembic executes this file; importing it any other way (a scan of the package) does nothing.
"""

from __future__ import annotations

from alembic import context

from tenantrag.backends.store.schema import UPGRADE_LOCK, connect


def run(url: str) -> None:
    """Apply the pending revisions to the store at `url`, one upgrader at a time."""
    with connect(url) as conn:
        if conn.dialect.name == "postgresql":
            # Session-level, so it spans every migration; released when we disconnect.
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({UPGRADE_LOCK})")
            conn.commit()
        context.configure(connection=conn, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()


if hasattr(context, "config"):  # alembic's proxy exists only while alembic runs this file
    run(context.config.attributes["store_url"])
