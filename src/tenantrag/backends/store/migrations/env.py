"""Alembic's environment: run the migrations on the store named by `schema.config(url)`."""

from __future__ import annotations

from alembic import context

from tenantrag.backends.store.schema import UPGRADE_LOCK, connect

url = context.config.attributes["store_url"]
with connect(url) as conn:
    if conn.dialect.name == "postgresql":
        # Session-level, so it spans every migration's transaction; released when we disconnect.
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({UPGRADE_LOCK})")
        conn.commit()
    context.configure(connection=conn, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
    conn.commit()
