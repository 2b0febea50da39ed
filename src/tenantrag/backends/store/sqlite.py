"""The durable source of truth: tenants, documents and chunks (with embeddings) in SQLite (WAL).

Every row carries tenant_id and every query names it. The search indexes are derived from this
store: each write appends to `changes`, and an index replays the changes it has not seen.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from tenantrag.backends.store import NewDocument, StoredDocument, TenantUsage, metadata_json
from tenantrag.errors import Conflict, InsufficientStorage, NotFound, QuotaExceeded
from tenantrag.models import AutoClassify, Chunk, Classification, Metadata, Tenant, TenantStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'active',
    rate_limit INTEGER NOT NULL,
    storage_quota_bytes INTEGER NOT NULL,
    document_quota INTEGER NOT NULL,
    monthly_token_budget INTEGER NOT NULL,
    monthly_cost_budget_usd REAL NOT NULL,
    bm25_weight REAL NOT NULL,
    vector_weight REAL NOT NULL,
    fusion TEXT NOT NULL,
    injection_policy TEXT NOT NULL,
    redact_search_pii INTEGER NOT NULL,
    created_at REAL NOT NULL,
    auto_classify TEXT NOT NULL DEFAULT 'raise'
        CHECK (auto_classify IN ('off', 'raise', 'raise-and-redact'))
);
CREATE TABLE IF NOT EXISTS documents (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    classification INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    title TEXT NOT NULL,
    classification INTEGER NOT NULL,
    source TEXT NOT NULL,
    metadata TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (tenant_id, document_id);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_tenant ON changes (tenant_id, seq);
"""


# Columns added after a table's first release, each with the statement that adds it to an
# existing database (`open` runs the ones a table lacks). PostgreSQL's migrations hold the same.
ADDED_COLUMNS = {
    ("tenants", "auto_classify"): (
        "ALTER TABLE tenants ADD COLUMN auto_classify TEXT NOT NULL DEFAULT 'raise'"
        " CHECK (auto_classify IN ('off', 'raise', 'raise-and-redact'))"
    ),
}

CHUNK_COLUMNS = (
    "rowid, tenant_id, document_id, position, text, title, classification, source, metadata"
)


class SQLiteStore:
    """The `Store` in one SQLite file: one connection per thread, WAL, full fsync on commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def open(self) -> None:
        """Create the folder and schema if needed, and add columns an older file lacks."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._conn()
        db.executescript(SCHEMA)  # executescript manages its own transaction
        with self._tx():
            for (table, column), statement in ADDED_COLUMNS.items():
                present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    db.execute(statement)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            db.execute("ROLLBACK") if db.in_transaction else None
            if "disk" in str(exc).lower() or "full" in str(exc).lower():
                raise InsufficientStorage(
                    "The data folder's disk is full; nothing was written. Free space and retry."
                ) from exc
            raise
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def ping(self) -> None:
        """Raise if the store cannot be read."""
        self._conn().execute("SELECT 1").fetchone()

    # -- tenants -------------------------------------------------------------------------------

    def create_tenant(self, tenant: Tenant) -> Tenant:
        """Record a new tenant; ValueError if the id is taken."""
        created = tenant if tenant.created_at else _with_created(tenant)
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO tenants VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        created.id,
                        created.status.value,
                        created.rate_limit,
                        created.storage_quota_bytes,
                        created.document_quota,
                        created.monthly_token_budget,
                        created.monthly_cost_budget_usd,
                        created.bm25_weight,
                        created.vector_weight,
                        created.fusion,
                        created.injection_policy,
                        int(created.redact_search_pii),
                        created.created_at,
                        AutoClassify(created.auto_classify).value,
                    ),
                )
        except sqlite3.IntegrityError:
            raise ValueError(f"tenant {tenant.id!r} already exists") from None
        return created

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None when unknown."""
        row = self._conn().execute("SELECT * FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
        return _tenant(row) if row else None

    def list_tenants(self) -> list[Tenant]:
        """Every tenant, by id."""
        rows = self._conn().execute("SELECT * FROM tenants ORDER BY id").fetchall()
        return [_tenant(r) for r in rows]

    def set_tenant_status(self, tenant_id: str, status: TenantStatus) -> None:
        """Suspend or reactivate a tenant; NotFound when unknown."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE tenants SET status = ? WHERE id = ?", (status.value, tenant_id)
            )
            if cur.rowcount == 0:
                raise NotFound(f"No tenant {tenant_id!r}.")

    def update_tenant(self, tenant_id: str, **fields: object) -> None:
        """Change a tenant's limits or retrieval settings."""
        allowed = {
            "rate_limit",
            "storage_quota_bytes",
            "document_quota",
            "monthly_token_budget",
            "monthly_cost_budget_usd",
            "bm25_weight",
            "vector_weight",
            "fusion",
            "injection_policy",
            "redact_search_pii",
            "auto_classify",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if not fields:
            return
        if "auto_classify" in fields:  # ValueError for anything but a policy's name
            fields["auto_classify"] = AutoClassify(str(fields["auto_classify"])).value
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE tenants SET {assignments} WHERE id = ?", (*fields.values(), tenant_id)
            )
            if cur.rowcount == 0:
                raise NotFound(f"No tenant {tenant_id!r}.")

    # -- documents -----------------------------------------------------------------------------

    def usage(self, tenant_id: str) -> TenantUsage:
        """How many documents, bytes and chunks the tenant stores."""
        row = (
            self._conn()
            .execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(chunks), 0)"
                " FROM documents WHERE tenant_id = ?",
                (tenant_id,),
            )
            .fetchone()
        )
        return TenantUsage(documents=row[0], bytes=row[1], chunks=row[2])

    def put_documents(
        self,
        tenant: Tenant,
        documents: Sequence[NewDocument],
        *,
        max_classification: Classification | None = None,
    ) -> int:
        """Store (or replace) documents in one transaction; returns the tenant's new change seq.

        Quotas and the ceiling are checked inside the transaction, so concurrent writers can
        neither overshoot a quota nor slip a replacement past a document raised meanwhile.
        """
        now = time.time()
        with self._tx() as db:
            if max_classification is not None:
                _check_replaceable(db, tenant.id, documents, max_classification)
            _check_quotas(db, tenant, documents)
            seq = 0
            for doc in documents:
                old = db.execute(
                    "SELECT created_at FROM documents WHERE tenant_id = ? AND id = ?",
                    (tenant.id, doc.id),
                ).fetchone()
                db.execute(
                    "DELETE FROM chunks WHERE tenant_id = ? AND document_id = ?",
                    (tenant.id, doc.id),
                )
                db.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        tenant.id,
                        doc.id,
                        doc.title,
                        doc.source,
                        int(doc.classification),
                        metadata_json(doc.metadata),
                        doc.stored_bytes,
                        len(doc.chunks),
                        old[0] if old else now,
                        now,
                    ),
                )
                vectors = np.ascontiguousarray(doc.embeddings, dtype=np.float32)
                db.executemany(
                    "INSERT INTO chunks (tenant_id, document_id, position, text, title,"
                    " classification, source, metadata, embedding) VALUES (?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            tenant.id,
                            doc.id,
                            c.position,
                            c.text,
                            c.title,
                            int(c.classification),
                            c.source,
                            metadata_json(c.metadata),
                            vectors[i].tobytes(),
                        )
                        for i, c in enumerate(doc.chunks)
                    ],
                )
                seq = _append_change(db, tenant.id, doc.id, now)
        return seq

    def delete_document(
        self, tenant_id: str, document_id: str, *, max_classification: Classification | None = None
    ) -> int:
        """Remove a document and its chunks; returns the change seq.

        NotFound when absent or above `max_classification` (one error for both).
        """
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM documents WHERE tenant_id = ? AND id = ? AND classification <= ?",
                (tenant_id, document_id, _ceiling(max_classification)),
            )
            if cur.rowcount == 0:
                raise NotFound(f"No document {document_id!r}.")
            db.execute(
                "DELETE FROM chunks WHERE tenant_id = ? AND document_id = ?",
                (tenant_id, document_id),
            )
            return _append_change(db, tenant_id, document_id, time.time())

    def get_document(
        self, tenant_id: str, document_id: str, *, max_classification: Classification | None = None
    ) -> StoredDocument:
        """The document's fields; NotFound when absent from this tenant or above the ceiling."""
        row = (
            self._conn()
            .execute(
                "SELECT * FROM documents WHERE tenant_id = ? AND id = ? AND classification <= ?",
                (tenant_id, document_id, _ceiling(max_classification)),
            )
            .fetchone()
        )
        if row is None:
            raise NotFound(f"No document {document_id!r}.")
        return _document(row)

    def list_documents(
        self,
        tenant_id: str,
        *,
        limit: int,
        after: str | None = None,
        max_classification: Classification | None = None,
    ) -> list[StoredDocument]:
        """Up to `limit` documents at or below the ceiling, ordered by id, after the id `after`."""
        rows = (
            self._conn()
            .execute(
                "SELECT * FROM documents WHERE tenant_id = ? AND classification <= ? AND id > ?"
                " ORDER BY id LIMIT ?",
                (tenant_id, _ceiling(max_classification), after or "", limit),
            )
            .fetchall()
        )
        return [_document(r) for r in rows]

    # -- chunks and changes, for the indexes ---------------------------------------------------

    def chunks_by_rowid(self, tenant_id: str, rowids: Sequence[int]) -> dict[int, Chunk]:
        """The tenant's chunks among `rowids`; rows of any other tenant are never returned."""
        if not rowids:
            return {}
        marks = ",".join("?" * len(rowids))
        rows = (
            self._conn()
            .execute(
                f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE tenant_id = ? AND rowid IN ({marks})",
                (tenant_id, *rowids),
            )
            .fetchall()
        )
        return {r[0]: _chunk(r) for r in rows}

    def fetch_chunks(self, rowids: Sequence[int]) -> dict[int, Chunk]:
        """Chunks by rowid whatever their tenant: only for the leakage check, which drops strays."""
        if not rowids:
            return {}
        marks = ",".join("?" * len(rowids))
        rows = (
            self._conn()
            .execute(
                f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE rowid IN ({marks})",
                tuple(rowids),
            )
            .fetchall()
        )
        return {r[0]: _chunk(r) for r in rows}

    def rowids_matching(self, tenant_id: str, filters: Metadata) -> list[int]:
        """The tenant's chunk rowids whose metadata equals every (key, value) in `filters`."""
        clause, values = _filter_clause(filters)
        rows = (
            self._conn()
            .execute(
                f"SELECT rowid FROM chunks WHERE tenant_id = ? AND {clause}", (tenant_id, *values)
            )
            .fetchall()
        )
        return [int(r[0]) for r in rows]

    def chunks_of_documents(
        self, tenant_id: str, document_ids: Sequence[str]
    ) -> tuple[list[Chunk], np.ndarray]:
        """The current chunks of these documents with their embeddings (rows aligned)."""
        chunks: list[Chunk] = []
        vectors: list[bytes] = []
        db = self._conn()
        for start in range(0, len(document_ids), 500):
            part = document_ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for r in db.execute(
                "SELECT rowid, tenant_id, document_id, position, text, title, classification,"
                f" source, metadata, embedding FROM chunks WHERE tenant_id = ?"
                f" AND document_id IN ({marks}) ORDER BY rowid",
                (tenant_id, *part),
            ):
                chunks.append(_chunk(r))
                vectors.append(r[9])
        return chunks, _vectors(vectors)

    def iter_chunks(
        self, tenant_id: str, batch: int = 5000
    ) -> Iterator[tuple[list[Chunk], np.ndarray]]:
        """Every chunk of the tenant with its embedding, in batches (for a rebuild)."""
        last = 0
        db = self._conn()
        while True:
            rows = db.execute(
                "SELECT rowid, tenant_id, document_id, position, text, title, classification,"
                " source, metadata, embedding FROM chunks WHERE tenant_id = ? AND rowid > ?"
                " ORDER BY rowid LIMIT ?",
                (tenant_id, last, batch),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [_chunk(r) for r in rows], _vectors([r[9] for r in rows])

    def latest_seq(self, tenant_id: str) -> int:
        """The tenant's newest change seq: its corpus version (0 before any write)."""
        row = (
            self._conn()
            .execute("SELECT MAX(seq) FROM changes WHERE tenant_id = ?", (tenant_id,))
            .fetchone()
        )
        return int(row[0] or 0)

    def changed_documents(self, tenant_id: str, after_seq: int) -> tuple[list[str], int]:
        """Ids of documents changed after `after_seq` and the newest seq among those changes."""
        rows = (
            self._conn()
            .execute(
                "SELECT document_id, seq FROM changes WHERE tenant_id = ? AND seq > ? ORDER BY seq",
                (tenant_id, after_seq),
            )
            .fetchall()
        )
        if not rows:
            return [], after_seq
        return list(dict.fromkeys(r[0] for r in rows)), int(rows[-1][1])


def _append_change(db: sqlite3.Connection, tenant_id: str, document_id: str, at: float) -> int:
    cur = db.execute(
        "INSERT INTO changes (tenant_id, document_id, at) VALUES (?,?,?)",
        (tenant_id, document_id, at),
    )
    return int(cur.lastrowid or 0)


def _ceiling(max_classification: Classification | None) -> int:
    """The highest classification a query may see: the top level when no ceiling is given."""
    return int(max(Classification) if max_classification is None else max_classification)


def _check_replaceable(
    db: sqlite3.Connection,
    tenant_id: str,
    documents: Sequence[NewDocument],
    max_classification: Classification,
) -> None:
    """Refuse the batch if any id belongs to a document stored above the caller's clearance.

    Creating under such an id is impossible (the id is taken) and replacing the document would
    overwrite or downgrade what the caller may not read. Any refusal shows that the id is in
    use, so the message says no more than that: not the title, not the level, not why.
    """
    ids = [d.id for d in documents]
    marks = ",".join("?" * len(ids))
    row = db.execute(
        f"SELECT id FROM documents WHERE tenant_id = ? AND id IN ({marks})"
        " AND classification > ? ORDER BY id LIMIT 1",
        (tenant_id, *ids, int(max_classification)),
    ).fetchone()
    if row is not None:
        raise Conflict(
            f"The document id {row[0]!r} cannot be used; choose another id."
            " Nothing in this batch was stored."
        )


def _check_quotas(db: sqlite3.Connection, tenant: Tenant, documents: Sequence[NewDocument]) -> None:
    ids = [d.id for d in documents]
    marks = ",".join("?" * len(ids))
    current = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM documents WHERE tenant_id = ?", (tenant.id,)
    ).fetchone()
    replaced = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM documents"
        f" WHERE tenant_id = ? AND id IN ({marks})",
        (tenant.id, *ids),
    ).fetchone()
    count = current[0] - replaced[0] + len(set(ids))
    size = current[1] - replaced[1] + sum(d.stored_bytes for d in documents)
    if count > tenant.document_quota:
        raise QuotaExceeded(
            f"Document quota of {tenant.document_quota} reached;"
            " delete documents or raise the quota.",
            retry_after=3600,
        )
    if size > tenant.storage_quota_bytes:
        raise QuotaExceeded(
            f"Storage quota of {tenant.storage_quota_bytes} bytes reached; delete documents or"
            " raise the quota.",
            retry_after=3600,
        )


def _with_created(tenant: Tenant) -> Tenant:
    from dataclasses import replace

    return replace(tenant, created_at=time.time())


def _tenant(row: Any) -> Tenant:
    return Tenant(
        id=str(row[0]),
        status=TenantStatus(row[1]),
        rate_limit=int(row[2]),
        storage_quota_bytes=int(row[3]),
        document_quota=int(row[4]),
        monthly_token_budget=int(row[5]),
        monthly_cost_budget_usd=float(row[6]),
        bm25_weight=float(row[7]),
        vector_weight=float(row[8]),
        fusion=str(row[9]),
        injection_policy=str(row[10]),
        redact_search_pii=bool(row[11]),
        created_at=float(row[12]),
        auto_classify=AutoClassify(row[13]),
    )


def _document(row: Any) -> StoredDocument:
    return StoredDocument(
        tenant_id=str(row[0]),
        id=str(row[1]),
        title=str(row[2]),
        source=str(row[3]),
        classification=Classification(row[4]),
        metadata=json.loads(str(row[5])),
        bytes=int(row[6]),
        chunks=int(row[7]),
        created_at=float(row[8]),
        updated_at=float(row[9]),
    )


def _chunk(row: Any) -> Chunk:
    return Chunk(
        rowid=int(row[0]),
        tenant_id=str(row[1]),
        document_id=str(row[2]),
        position=int(row[3]),
        text=str(row[4]),
        title=str(row[5]),
        classification=Classification(row[6]),
        source=str(row[7]),
        metadata=json.loads(str(row[8])),
    )


def _vectors(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([np.frombuffer(b, dtype=np.float32) for b in blobs])


# A stored metadata value as the text Tantivy indexes it (backends/keyword/tantivy.py
# attribute_term): booleans are true/false, whole floats lose their ".0", the rest is str().
# The key is a bound parameter compared with json_each's keys, never spliced into a JSON path:
# SQLite's path syntax has no escape for a quote, so a key holding one made a path error (a 500).
_MATCHES = """EXISTS (SELECT 1 FROM json_each(chunks.metadata) AS m WHERE m.key = ? AND (
    CASE m.type
        WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
        WHEN 'real' THEN CASE
            WHEN m.atom = CAST(m.atom AS INTEGER) THEN CAST(CAST(m.atom AS INTEGER) AS TEXT)
            ELSE CAST(m.atom AS TEXT) END
        ELSE CAST(m.atom AS TEXT) END) = ?)"""


def _filter_clause(filters: Metadata) -> tuple[str, list[object]]:
    """SQL matching metadata exactly as the keyword index's filter terms do; any key is safe."""
    parts: list[str] = ["1"]  # no filters: every chunk
    values: list[object] = []
    for key, value in filters.items():
        parts.append(_MATCHES)
        values.extend([key, _normalised(value)])
    return " AND ".join(parts), values


def _normalised(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)
