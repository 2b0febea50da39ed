"""A node's local read model: a SQLite copy of the database's corpus, kept by tailing its log.

In distributed mode every node keeps, under its data folder, what search needs (tenants,
documents, chunk text, metadata, classification and embeddings) in a `SQLiteStore` of its own,
so a search reads only local state. `Follower` fills it: a thread wakes on the database's
`tenantrag_changes` notifications (or every `poll_s` seconds, if none came or the listening
connection is down), reads the changes after the copy's newest seq in one consistent snapshot,
applies them in one local transaction, then has the indexes replay them (`on_applied`). A node
on an empty data folder first copies everything (`bootstrap`, with progress). The copy is a
cache: deleting it costs a rebuild, never data. Several worker processes on one data folder
share the copy; a flock orders their applies, each skipping what another already applied.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import structlog

from tenantrag.backends.store import DOCUMENT_CHANGE, ERASE_CHANGE, TENANT_CHANGE, Change
from tenantrag.backends.store.postgres import CHANNEL, Conn, PostgresStore, changes_after
from tenantrag.backends.store.rows import DOCUMENT_COLUMNS, TENANT_COLUMNS
from tenantrag.backends.store.sqlite import SQLiteStore

log = structlog.get_logger("tenantrag.follower")
CHUNK_COPY = (
    "id, tenant_id, document_id, position, text, title, classification, source, metadata,"
    " embedding, sentences"
)
# The same columns as the node's copy names them (its `rowid` is the database's `id`).
CHUNK_INSERT = (
    "chunks (rowid, tenant_id, document_id, position, text, title, classification, source,"
    " metadata, embedding, sentences) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
Rows = Sequence[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class FollowerStatus:
    """How current the node's copy is."""

    bootstrapped: bool  # the first full copy is done (until then the node is not ready)
    applied_seq: int  # the newest change applied locally
    lag_s: float  # seconds since the copy was last known to hold every committed change


class Follower:
    """Keeps `replica` a copy of `source`'s corpus; `on_applied(tenants)` after each apply."""

    def __init__(
        self,
        source: PostgresStore,
        replica: SQLiteStore,
        *,
        lock_path: Path,
        on_applied: Callable[[set[str]], None],
        on_status: Callable[[FollowerStatus], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        on_erased: Callable[[set[str]], None] | None = None,
        poll_s: float = 1.0,
        batch: int = 2000,
    ) -> None:
        self.source, self.replica = source, replica
        self.on_erased = on_erased  # after an erased tenant's rows left the copy: its indexes
        self.lock_path = lock_path
        self.on_applied, self.on_status, self.on_progress = on_applied, on_status, on_progress
        self.poll_s, self.batch = poll_s, batch
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bootstrapped = False
        self._current_at = time.time()

    # -- state ---------------------------------------------------------------------------------

    def status(self) -> FollowerStatus:
        """Whether the first copy is done, the newest seq applied, and the lag in seconds."""
        lag = max(0.0, time.time() - self._current_at)
        return FollowerStatus(self._bootstrapped, self.replica.max_seq(), lag)

    # -- the thread ----------------------------------------------------------------------------

    def start(self) -> None:
        """Follow in a daemon thread until `stop`."""
        self._thread = threading.Thread(target=self._run, name="change-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following (within one poll interval)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 10)

    def _run(self) -> None:
        listener: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            try:
                self.catch_up()
            except Exception as exc:  # the database is away: keep serving, the lag shows it
                log.warning("follower_catch_up_failed", error=type(exc).__name__)
            self._publish()
            listener = self._wait(listener)
        if listener is not None:
            listener.close()

    def _wait(self, listener: psycopg.Connection[Any] | None) -> psycopg.Connection[Any] | None:
        """Sleep until a notification or `poll_s`; returns the listening connection (or None)."""
        try:
            if listener is None or listener.closed:
                listener = psycopg.connect(self.source.conninfo, autocommit=True, connect_timeout=5)
                listener.execute(f"LISTEN {CHANNEL}")
            for _ in listener.notifies(timeout=self.poll_s, stop_after=1):
                pass
            return listener
        except psycopg.Error:
            if listener is not None:
                listener.close()
            self._stop.wait(self.poll_s)  # polling is the fallback
            return None

    def _publish(self) -> None:
        if self.on_status is not None:
            self.on_status(self.status())

    # -- catching up ---------------------------------------------------------------------------

    def catch_up(self, at_least: int = 0) -> None:
        """Apply every change committed so far (or at least up to seq `at_least`)."""
        started = time.time()
        with self._lock:
            if at_least and self.replica.max_seq() >= at_least:
                return
            if self.replica.max_seq() == 0:
                self._bootstrap()
            while self._step():
                pass
            self._bootstrapped = True
            self._current_at = started

    def _step(self) -> bool:
        """Apply the next batch of changes; True when a full batch suggests more are waiting."""
        cursor = self.replica.max_seq()
        with self.source.snapshot() as conn:
            changes = changes_after(conn, cursor, self.batch)
            if not changes:
                return False
            documents, chunks = _document_rows(conn, changes)
            named = {c.tenant_id for c in changes if c.kind in (TENANT_CHANGE, ERASE_CHANGE)}
            tenants = _tenant_rows(conn, named)
        with self._flock():
            touched = apply_changes(self.replica, changes, tenants, documents, chunks)
        erased = {c.tenant_id for c in changes if c.kind == ERASE_CHANGE}
        if erased and self.on_erased is not None:
            self.on_erased(erased)  # idempotent: another process may have applied the change
        if touched - erased:
            self.on_applied(touched - erased)
        return len(changes) == self.batch

    def _bootstrap(self) -> None:
        """Copy the whole corpus in one consistent snapshot, then its compacted change log."""
        with self.source.snapshot() as conn:
            head = _scalar(conn, "SELECT COALESCE(MAX(seq), 0) FROM changes")
            if head == 0:
                return
            total = _scalar(conn, "SELECT COUNT(*) FROM chunks")
            log.info("replica_rebuild_started", chunks=total, head_seq=head)
            with self._flock():
                if self.replica.max_seq() > 0:  # another process on this folder copied it
                    return
                reset(self.replica)
                tenants = conn.execute(f"SELECT {TENANT_COLUMNS} FROM tenants").fetchall()
                documents = conn.execute(f"SELECT {DOCUMENT_COLUMNS} FROM documents").fetchall()
                copy_rows(self.replica, tenants, documents, [])
                done = 0
                for rows in _stream(conn, f"SELECT {CHUNK_COPY} FROM chunks ORDER BY id", 2000):
                    copy_rows(self.replica, [], [], rows)
                    done += len(rows)
                    log.info("replica_rebuild_progress", chunks=done, of=total)
                    if self.on_progress is not None:
                        self.on_progress(done, total)
                # The compacted log comes last: until it commits the copy reads as empty, and
                # an interrupted rebuild starts over.
                latest = conn.execute(
                    "SELECT DISTINCT ON (tenant_id, document_id, kind)"
                    " seq, tenant_id, document_id, kind, at FROM changes"
                    " ORDER BY tenant_id, document_id, kind, seq DESC"
                ).fetchall()
                with self.replica.transaction(durable=False) as db:
                    db.executemany(
                        "INSERT INTO changes (seq, tenant_id, document_id, kind, at)"
                        " VALUES (?,?,?,?,?)",
                        latest,
                    )
        log.info("replica_rebuild_copied", chunks=total, head_seq=head)
        self.on_applied({str(t[0]) for t in tenants})
        log.info("replica_rebuild_indexed", tenants=len(tenants))

    @contextmanager
    def _flock(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def _scalar(conn: Conn, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _stream(conn: Conn, sql: str, size: int) -> Iterator[list[Any]]:
    """The rows of `sql` in batches, through a server-side cursor (the snapshot's)."""
    with conn.cursor(name="tenantrag_copy") as cursor:
        cursor.execute(sql)
        while rows := cursor.fetchmany(size):
            yield rows


def _tenant_rows(conn: Conn, tenant_ids: set[str]) -> list[Any]:
    if not tenant_ids:
        return []
    return conn.execute(
        f"SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ANY(%s)", (sorted(tenant_ids),)
    ).fetchall()


def _document_rows(conn: Conn, changes: Sequence[Change]) -> tuple[list[Any], list[Any]]:
    """The current rows of every document the changes name: (documents, chunks)."""
    keys = sorted({(c.tenant_id, c.document_id) for c in changes if c.kind == DOCUMENT_CHANGE})
    if not keys:
        return [], []
    tenants, ids = [k[0] for k in keys], [k[1] for k in keys]
    join = " JOIN unnest(%s::text[], %s::text[]) AS k(t, i) ON x.tenant_id = k.t AND {} = k.i"
    documents = conn.execute(
        f"SELECT {_qualified(DOCUMENT_COLUMNS)} FROM documents x" + join.format("x.id"),
        (tenants, ids),
    ).fetchall()
    chunks = conn.execute(
        f"SELECT {_qualified(CHUNK_COPY)} FROM chunks x"
        + join.format("x.document_id")
        + " ORDER BY x.id",
        (tenants, ids),
    ).fetchall()
    return documents, chunks


def _qualified(columns: str) -> str:
    return ", ".join(f"x.{c.strip()}" for c in columns.split(","))


def reset(replica: SQLiteStore) -> None:
    """Empty the copy's corpus tables (before a full copy)."""
    with replica.transaction(durable=False) as db:
        for table in ("chunks", "documents", "changes", "tenants"):
            db.execute(f"DELETE FROM {table}")


def copy_rows(replica: SQLiteStore, tenants: Rows, documents: Rows, chunks: Rows) -> None:
    """Insert or replace rows read from the database (PostgreSQL's column order)."""
    with replica.transaction(durable=False) as db:
        _upsert_tenants(db, tenants)
        db.executemany(
            f"INSERT OR REPLACE INTO documents ({DOCUMENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [_json_at(row, 5) for row in documents],
        )
        db.executemany(
            f"INSERT OR REPLACE INTO {CHUNK_INSERT}",
            [_json_at(row, 8) for row in chunks],
        )


def apply_changes(
    replica: SQLiteStore, changes: Sequence[Change], tenants: Rows, documents: Rows, chunks: Rows
) -> set[str]:
    """Apply a batch in one local transaction; returns the tenants whose documents changed.

    Changes another process applied meanwhile are skipped; documents are replaced whole, so
    applying one twice gives the same copy.
    """
    erasing = any(c.kind == ERASE_CHANGE for c in changes)
    with (
        replica.scrubbing() if erasing else nullcontext(),
        replica.transaction(durable=False) as db,
    ):
        row = db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()
        fresh = [c for c in changes if c.seq > int(row[0])]
        if not fresh:
            return set()
        _upsert_tenants(db, tenants)
        # An erasure removes every row of the tenant that came before it in the log.
        for change in fresh:
            if change.kind == ERASE_CHANGE:
                for table in ("chunks", "documents"):
                    db.execute(f"DELETE FROM {table} WHERE tenant_id = ?", (change.tenant_id,))
                db.execute(
                    "DELETE FROM changes WHERE tenant_id = ? AND seq < ?",
                    (change.tenant_id, change.seq),
                )
        erased_at = {c.tenant_id: c.seq for c in fresh if c.kind == ERASE_CHANGE}
        keys = {
            (c.tenant_id, c.document_id)
            for c in fresh
            if c.kind == DOCUMENT_CHANGE and c.seq > erased_at.get(c.tenant_id, 0)
        }
        for tenant_id, document_id in keys:
            db.execute(
                "DELETE FROM chunks WHERE tenant_id = ? AND document_id = ?",
                (tenant_id, document_id),
            )
            db.execute(
                "DELETE FROM documents WHERE tenant_id = ? AND id = ?", (tenant_id, document_id)
            )
        db.executemany(
            f"INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [_json_at(r, 5) for r in documents if (r[0], r[1]) in keys],
        )
        db.executemany(
            f"INSERT INTO {CHUNK_INSERT}",
            [_json_at(r, 8) for r in chunks if (r[1], r[2]) in keys],
        )
        db.executemany(
            "INSERT INTO changes (seq, tenant_id, document_id, kind, at) VALUES (?,?,?,?,?)",
            [(c.seq, c.tenant_id, c.document_id, c.kind, c.at) for c in fresh],
        )
    return {tenant for tenant, _ in keys}


def _upsert_tenants(db: Any, tenants: Rows) -> None:
    """Insert or update tenant rows; an UPDATE, not a REPLACE, keeps their documents' keys."""
    columns = [c.strip() for c in TENANT_COLUMNS.split(",")]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    db.executemany(
        f"INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ({','.join('?' * len(columns))})"
        f" ON CONFLICT (id) DO UPDATE SET {updates}",
        # redact_search_pii is a boolean in PostgreSQL, an integer in SQLite; every other
        # column (auto_classify and any added later) is copied as it is.
        [(*row[:11], int(bool(row[11])), *row[12:]) for row in tenants],
    )


def _json_at(row: Sequence[Any], index: int) -> tuple[Any, ...]:
    """`row` with its jsonb value at `index` as JSON text (and bytes, not memoryviews)."""
    values = list(row)
    values[index] = json.dumps(values[index])
    return tuple(bytes(v) if isinstance(v, memoryview) else v for v in values)
