"""The store's schema: alembic migrations, applied by `tenantrag db upgrade`, checked at start.

One chain of revisions serves SQLite and PostgreSQL (migrations/versions/, plain SQL, a text
per dialect where the two differ). SQLAlchemy is only alembic's engine here: the store itself
talks to sqlite3 and psycopg directly. Embedded SQLite upgrades itself when opened (it is one
node, and its file is its own); PostgreSQL never does: `check` refuses a database behind this
release and names the command to run. See docs/development.md, "Schema migrations".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).with_name("migrations")
# One advisory lock id: two `db upgrade` runs against one database take turns.
UPGRADE_LOCK = 0x7472_6167_6462  # "tragdb"


class SchemaOutdated(RuntimeError):
    """The database's schema is older than this release needs (or has none yet)."""


def sqlalchemy_url(url: str) -> str:
    """`url` (sqlite:///path or postgresql://...) as SQLAlchemy names it, on psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    if url.startswith("sqlite:///"):
        return url
    raise ValueError("a store url starts with sqlite:/// or postgresql://")


def config(url: str) -> Config:
    """Alembic's configuration for the store at `url` (no alembic.ini: it is all here)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["store_url"] = url
    return cfg


def head() -> str:
    """The newest revision this release knows."""
    revision = ScriptDirectory.from_config(config("sqlite:///")).get_current_head()
    if revision is None:  # only if the versions folder were empty
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return revision


def known(revision: str) -> bool:
    """Whether `revision` belongs to this release's chain (a newer release's does not)."""
    script = ScriptDirectory.from_config(config("sqlite:///"))
    return any(r.revision == revision for r in script.walk_revisions())


@contextmanager
def connect(url: str) -> Iterator[sa.Connection]:
    """A SQLAlchemy connection to the store; SQLite's transactions take the write lock at BEGIN.

    pysqlite would otherwise run DDL outside any transaction, and two processes upgrading one
    file at once would both see it old.
    """
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        sa.event.listen(engine, "connect", _sqlite_manual_transactions)
        sa.event.listen(engine, "begin", _sqlite_begin_immediate)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _sqlite_manual_transactions(dbapi_connection: object, _record: object) -> None:
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]  # sqlite3.Connection
    dbapi_connection.execute("PRAGMA busy_timeout=30000")  # type: ignore[attr-defined]


def _sqlite_begin_immediate(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def current(url: str) -> str | None:
    """The revision the store at `url` is at; None for an empty database (or a missing file)."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    with connect(url) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str) -> tuple[str | None, str]:
    """Apply every migration the store at `url` lacks; returns (revision before, after)."""
    before = current(url)
    command.upgrade(config(url), "head")
    return before, head()


def check(url: str) -> None:
    """Raise SchemaOutdated unless the store is at this release's schema (or a newer one).

    A revision this release does not know is taken as a newer release's (rolling upgrades run
    `db upgrade` first; migrations only add, so the previous release still works on it).
    """
    revision, wanted = current(url), head()
    if revision == wanted:
        return
    if revision is not None and not known(revision):
        return
    where = "has no schema yet" if revision is None else f"is at schema {revision}"
    raise SchemaOutdated(
        f"The database {where}; this release needs {wanted}. Run `tenantrag db upgrade` with"
        " the same TENANTRAG_DATABASE_URL, then start again."
    )
