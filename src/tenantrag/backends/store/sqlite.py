"""The store in one SQLite file (WAL).

It is the embedded mode's store of record, and in distributed mode each node's local read
model (a copy of the corpus, kept by follower.py).

Every row carries tenant_id and every query names it. A write is one BEGIN IMMEDIATE
transaction with its records (audit, costs), so writers queue on the file's write lock and a
change never commits without them. The file migrates itself when opened (schema.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tenantrag.backends.ledger import (
    CostEvent,
    MonthUsage,
    StoragePricing,
    UsageReport,
    to_epoch,
)
from tenantrag.backends.ledger import sqlite as ledger_sql
from tenantrag.backends.store import (
    DOCUMENT_CHANGE,
    ERASE_CHANGE,
    TENANT_CHANGE,
    Change,
    ChangeRecords,
    NewDocument,
    StoredDocument,
    TenantUsage,
    extras,
    identity,
    jobs,
    metadata_json,
    schema,
)
from tenantrag.backends.store.chain import (
    GENESIS,
    AuditScrub,
    Head,
    chain_records,
    line,
    prepared,
)
from tenantrag.backends.store.extras import Feedback, FeedbackCounts, SecurityEntry
from tenantrag.backends.store.identity import ApiKey, Erasure
from tenantrag.backends.store.jobs import ClaimedItem, ItemRef, Job, NewJob
from tenantrag.backends.store.rows import (
    DOCUMENT_COLUMNS,
    ERASED,
    NO_ANSWER,
    TENANT_COLUMNS,
    ceiling,
    check_quotas,
    checked_tenant_fields,
    chunk_from,
    document_from,
    embedding_blobs,
    feedback_event,
    hidden_id_conflict,
    normalised,
    sentence_blobs,
    sentence_vectors_from,
    status_change,
    status_event,
    store_event,
    tenant_from,
    tenant_placeholders,
    tenant_values,
    update_event,
    vectors_from,
    with_created,
)
from tenantrag.errors import InsufficientStorage, NotFound, TenantUnavailable
from tenantrag.models import AuditEvent, Chunk, Classification, Metadata, Tenant, TenantStatus

CHUNK_COLUMNS = (
    "rowid, tenant_id, document_id, position, text, title, classification, source, metadata"
)
INSERT_CHUNK = (
    "INSERT INTO chunks (tenant_id, document_id, position, text, title, classification, source,"
    " metadata, embedding, sentences) VALUES (?,?,?,?,?,?,?,?,?,?)"
)


class SQLiteStore:
    """The `Store` (and `CorpusReader`) in one SQLite file; one connection per thread."""

    def __init__(
        self,
        path: Path,
        *,
        pricing: StoragePricing | None = None,
        audit_scrub: AuditScrub | None = None,
    ) -> None:
        self.path = path
        self.pricing = pricing or StoragePricing()
        self.audit_scrub = audit_scrub
        self._local = threading.local()
        self._all: dict[threading.Thread, sqlite3.Connection] = {}  # by the thread using it
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The store's URL, as schema.py takes it."""
        return f"sqlite:///{self.path.resolve()}"

    def open(self) -> None:
        """Create the folder, and migrate the file to this release's schema."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        schema.upgrade(self.url)
        self._conn()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread=False only so close() can close it; each thread uses its own.
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                # Thread pools retire idle threads; their connections (2 fds each) would pile up.
                for thread in [t for t in self._all if not t.is_alive()]:
                    self._all.pop(thread).close()
                self._all[threading.current_thread()] = conn
        return conn

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the file's write lock from its start.

        `durable=False` commits without waiting for the disk (synchronous=NORMAL in WAL: a
        crash of this process loses nothing, a power cut may lose the last commits).
        """
        db = self._conn()
        if not durable:
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if "disk" in str(exc).lower() or "full" in str(exc).lower():
                raise InsufficientStorage(
                    "The data folder's disk is full; nothing was written. Free space and retry."
                ) from exc
            raise
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            if not durable:
                db.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def scrubbing(self) -> Iterator[None]:
        """Deletes in this block overwrite what they delete (an erasure's, docs/identity.md).

        Deleted rows would otherwise linger in the file's free pages until reused; afterwards
        the WAL's frames move into the file and the WAL is truncated (best effort: a reader
        holding an old snapshot keeps its frames until the next checkpoint).
        """
        db = self._conn()
        db.execute("PRAGMA secure_delete=ON")
        try:
            yield
        finally:
            db.execute("PRAGMA secure_delete=OFF")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            for conn in self._all.values():
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def ping(self) -> None:
        """Raise if the store cannot be read."""
        self._conn().execute("SELECT 1").fetchone()

    # -- records committed with a change ---------------------------------------------------------

    def _audit_of(self, records: ChangeRecords | None, default: AuditEvent) -> dict[str, Any]:
        """The change's audit fields, checked and scrubbed before its transaction starts.

        A change given no records gets `default`: every committed change has its record.
        """
        (fields,) = prepared([records.audit if records else default], self.audit_scrub)
        return fields

    def _commit_records(
        self,
        db: sqlite3.Connection,
        tenant_id: str,
        records: ChangeRecords | None,
        audit: dict[str, Any],
    ) -> list[CostEvent]:
        """Append the change's audit record and costs; returns the cost events stored."""
        self._append(db, [audit])
        if records is None:
            return []
        stored = list(records.costs)
        ledger_sql.insert_events(db, stored)
        if records.storage is not None:
            used = self._usage(db, tenant_id)
            stored += ledger_sql.accrue(db, records.storage, tenant_id, used.bytes, time.time())
        return stored

    @staticmethod
    def _announce(records: ChangeRecords | None, stored: list[CostEvent]) -> None:
        if records is not None and records.on_commit is not None:
            records.on_commit(stored)

    # -- tenants -------------------------------------------------------------------------------

    def create_tenant(self, tenant: Tenant, records: ChangeRecords | None = None) -> Tenant:
        """Record a new tenant; ValueError if the id is taken."""
        created = with_created(tenant)
        audit = self._audit_of(records, store_event("tenant_created", tenant.id))
        try:
            with self.transaction() as db:
                db.execute(
                    f"INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ({tenant_placeholders('?')})",
                    tenant_values(created),
                )
                _append_change(db, created.id, "", time.time(), TENANT_CHANGE)
                stored = self._commit_records(db, created.id, records, audit)
        except sqlite3.IntegrityError:
            raise ValueError(f"tenant {tenant.id!r} already exists") from None
        self._announce(records, stored)
        return created

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None when unknown."""
        row = (
            self._conn()
            .execute(f"SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?", (tenant_id,))
            .fetchone()
        )
        return tenant_from(row) if row else None

    def list_tenants(self) -> list[Tenant]:
        """Every tenant, by id."""
        rows = self._conn().execute(f"SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id")
        return [tenant_from(r) for r in rows]

    def set_tenant_status(
        self, tenant_id: str, status: TenantStatus, records: ChangeRecords | None = None
    ) -> None:
        """Suspend or reactivate a tenant; NotFound when unknown."""
        audit = self._audit_of(records, status_event(tenant_id, status))
        assignments, values = status_change(status, time.time())
        with self.transaction() as db:
            cur = db.execute(
                f"UPDATE tenants SET {assignments} WHERE id = ? AND status != 'deleted'",
                (*values, tenant_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"No tenant {tenant_id!r}.")
            _append_change(db, tenant_id, "", time.time(), TENANT_CHANGE)
            stored = self._commit_records(db, tenant_id, records, audit)
        self._announce(records, stored)

    def update_tenant(
        self, tenant_id: str, records: ChangeRecords | None = None, **fields: object
    ) -> None:
        """Change a tenant's limits, retrieval settings or policies, with its records."""
        fields = checked_tenant_fields(fields)
        if not fields:
            return
        audit = self._audit_of(records, update_event(tenant_id, fields))
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.transaction() as db:
            cur = db.execute(
                f"UPDATE tenants SET {assignments} WHERE id = ? AND status != 'deleted'",
                (*fields.values(), tenant_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"No tenant {tenant_id!r}.")
            _append_change(db, tenant_id, "", time.time(), TENANT_CHANGE)
            stored = self._commit_records(db, tenant_id, records, audit)
        self._announce(records, stored)

    # -- documents -----------------------------------------------------------------------------

    def usage(self, tenant_id: str) -> TenantUsage:
        """How many documents, bytes (`NewDocument.stored_bytes`) and chunks the tenant stores."""
        return self._usage(self._conn(), tenant_id)

    @staticmethod
    def _usage(db: sqlite3.Connection, tenant_id: str) -> TenantUsage:
        row = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(chunks), 0)"
            " FROM documents WHERE tenant_id = ?",
            (tenant_id,),
        ).fetchone()
        return TenantUsage(documents=row[0], bytes=row[1], chunks=row[2])

    def put_documents(
        self,
        tenant: Tenant,
        documents: Sequence[NewDocument],
        records: ChangeRecords | None = None,
        *,
        max_classification: Classification | None = None,
    ) -> int:
        """Store (or replace) documents in one transaction, with their records; the new seq.

        Quotas and the ceiling are checked inside the transaction (it holds the write lock), so
        concurrent writers can neither overshoot a quota nor slip a replacement past a document
        raised meanwhile. A batch naming a document above `max_classification`: `Conflict`.
        """
        now = time.time()
        ids = tuple(d.id for d in documents)
        audit = self._audit_of(records, store_event("ingest", tenant.id, ids))
        with self.transaction() as db:
            # The write lock orders this after any erasure, which leaves a tombstone.
            status = db.execute("SELECT status FROM tenants WHERE id = ?", (tenant.id,)).fetchone()
            if status is not None and status[0] == TenantStatus.DELETED.value:
                raise TenantUnavailable(ERASED)
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
                    f"INSERT OR REPLACE INTO documents ({DOCUMENT_COLUMNS}, content_hash)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
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
                        doc.content_hash,
                    ),
                )
                db.executemany(INSERT_CHUNK, _chunk_rows(tenant.id, doc))
                seq = _append_change(db, tenant.id, doc.id, now)
            finished = _settle_items(db, records, now)
            stored = self._commit_records(db, tenant.id, records, audit)
        self._announce(records, stored)
        _announce_finished(records, finished)
        return seq

    def delete_document(
        self,
        tenant_id: str,
        document_id: str,
        records: ChangeRecords | None = None,
        *,
        max_classification: Classification | None = None,
    ) -> int:
        """Remove a document and its chunks; returns the change seq.

        NotFound when absent or above `max_classification` (one error for both).
        """
        audit = self._audit_of(
            records,
            store_event("delete", tenant_id, [document_id]),
        )
        with self.transaction() as db:
            cur = db.execute(
                "DELETE FROM documents WHERE tenant_id = ? AND id = ? AND classification <= ?",
                (tenant_id, document_id, ceiling(max_classification)),
            )
            if cur.rowcount == 0:
                raise NotFound(f"No document {document_id!r}.")
            db.execute(
                "DELETE FROM chunks WHERE tenant_id = ? AND document_id = ?",
                (tenant_id, document_id),
            )
            seq = _append_change(db, tenant_id, document_id, time.time())
            stored = self._commit_records(db, tenant_id, records, audit)
        self._announce(records, stored)
        return seq

    def get_document(
        self, tenant_id: str, document_id: str, *, max_classification: Classification | None = None
    ) -> StoredDocument:
        """The document's fields; NotFound when absent from this tenant or above the ceiling."""
        row = (
            self._conn()
            .execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE tenant_id = ? AND id = ?"
                " AND classification <= ?",
                (tenant_id, document_id, ceiling(max_classification)),
            )
            .fetchone()
        )
        if row is None:
            raise NotFound(f"No document {document_id!r}.")
        return document_from(row)

    def list_documents(
        self,
        tenant_id: str,
        *,
        limit: int,
        after: str | None = None,
        max_classification: Classification | None = None,
    ) -> list[StoredDocument]:
        """Up to `limit` documents at or below the ceiling, ordered by id, after the id `after`."""
        rows = self._conn().execute(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE tenant_id = ?"
            " AND classification <= ? AND id > ? ORDER BY id LIMIT ?",
            (tenant_id, ceiling(max_classification), after or "", limit),
        )
        return [document_from(r) for r in rows]

    def document_hashes(self, tenant_id: str, document_ids: Sequence[str]) -> dict[str, str]:
        """The content hash of each of these documents stored from a job (others are absent)."""
        out: dict[str, str] = {}
        db = self._conn()
        for start in range(0, len(document_ids), 500):
            part = document_ids[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = db.execute(
                f"SELECT id, content_hash FROM documents WHERE tenant_id = ? AND id IN ({marks})"
                " AND content_hash IS NOT NULL",
                (tenant_id, *part),
            )
            out.update((str(i), str(h)) for i, h in rows)
        return out

    # -- background ingestion --------------------------------------------------------------------

    def create_job(self, job: NewJob, records: ChangeRecords | None = None) -> Job:
        """Queue a job with its documents, and its audit record, in one transaction."""
        audit = self._audit_of(records, store_event("job_create", job.tenant_id, (job.id,)))
        with self.transaction() as db:
            jobs.insert_job(db, extras.SQLITE, job, time.time())
            stored = self._commit_records(db, job.tenant_id, records, audit)
            created = jobs.get_job(db, extras.SQLITE, job.tenant_id, job.id)
        self._announce(records, stored)
        return created

    def get_job(self, tenant_id: str, job_id: str) -> Job:
        """The tenant's job; NotFound for an unknown id and another tenant's job alike."""
        db = self._conn()
        db.execute("BEGIN")  # one snapshot: the counts and the status agree
        try:
            return jobs.get_job(db, extras.SQLITE, tenant_id, job_id)
        finally:
            db.execute("COMMIT")

    def list_jobs(
        self,
        tenant_id: str,
        *,
        limit: int,
        before: str | None = None,
        status: str | None = None,
    ) -> list[Job]:
        """The tenant's jobs, newest first, with ids below `before`, of `status` if given."""
        db = self._conn()
        db.execute("BEGIN")
        try:
            return jobs.list_jobs(db, extras.SQLITE, tenant_id, limit, before, status)
        finally:
            db.execute("COMMIT")

    def cancel_job(self, tenant_id: str, job_id: str, records: ChangeRecords | None = None) -> Job:
        """Stop a queued or running job; the job as it now stands."""
        audit = self._audit_of(records, store_event("job_cancel", tenant_id, (job_id,)))
        stored: list[CostEvent] = []
        with self.transaction() as db:
            if jobs.cancel_job(db, extras.SQLITE, tenant_id, job_id, time.time(), locking=False):
                stored = self._commit_records(db, tenant_id, records, audit)
            job = jobs.get_job(db, extras.SQLITE, tenant_id, job_id)
        self._announce(records, stored)
        return job

    def claim_job_items(
        self, owner: str, *, limit: int, lease_s: float
    ) -> tuple[list[ClaimedItem], list[str]]:
        """Lease up to `limit` items of one job to `owner`, tenants in turn; (items, jobs over)."""
        with self.transaction() as db:
            return jobs.claim(db, extras.SQLITE, owner, limit, lease_s, time.time(), locking=False)

    def renew_job_items(self, refs: Sequence[ItemRef], *, lease_s: float) -> int:
        """Extend the leases `refs` still hold; how many they still hold."""
        if not refs:
            return 0
        with self.transaction() as db:
            return jobs.renew(db, extras.SQLITE, refs, lease_s, time.time())

    def settle_job_items(
        self, refs: Sequence[ItemRef], error: tuple[str, str] | None = None
    ) -> list[str]:
        """Mark held items failed with (code, message), or done with nothing stored; jobs over."""
        with self.transaction() as db:
            return jobs.settle(db, extras.SQLITE, refs, time.time(), error, locking=False)

    def job_depth(self) -> dict[str, float]:
        """Items and jobs queued and running over every tenant."""
        return jobs.depth(self._conn(), extras.SQLITE)

    # -- chunks and changes, for the indexes ---------------------------------------------------

    def chunks_by_rowid(self, tenant_id: str, rowids: Sequence[int]) -> dict[int, Chunk]:
        """The tenant's chunks among `rowids`; rows of any other tenant are never returned."""
        if not rowids:
            return {}
        marks = ",".join("?" * len(rowids))
        rows = self._conn().execute(
            f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE tenant_id = ? AND rowid IN ({marks})",
            (tenant_id, *rowids),
        )
        return {r[0]: chunk_from(r) for r in rows}

    def sentence_vectors(self, tenant_id: str, rowids: Sequence[int]) -> dict[int, np.ndarray]:
        """The tenant's chunks' sentence vectors among `rowids` (unit rows, one per sentence).

        Chunks without any (stored before migration 0007, or with the option off) are absent;
        rows of any other tenant are never returned.
        """
        if not rowids:
            return {}
        marks = ",".join("?" * len(rowids))
        rows = self._conn().execute(
            f"SELECT rowid, sentences FROM chunks WHERE tenant_id = ? AND rowid IN ({marks})"
            " AND sentences IS NOT NULL",
            (tenant_id, *rowids),
        )
        return {int(r[0]): sentence_vectors_from(r[1]) for r in rows}

    def fetch_chunks(self, rowids: Sequence[int]) -> dict[int, Chunk]:
        """Chunks by rowid whatever their tenant: only for the leakage check, which drops strays."""
        if not rowids:
            return {}
        marks = ",".join("?" * len(rowids))
        rows = self._conn().execute(
            f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE rowid IN ({marks})", tuple(rowids)
        )
        return {r[0]: chunk_from(r) for r in rows}

    def rowids_matching(self, tenant_id: str, filters: Metadata) -> list[int]:
        """The tenant's chunk rowids whose metadata equals every (key, value) in `filters`."""
        clause, values = _filter_clause(filters)
        rows = self._conn().execute(
            f"SELECT rowid FROM chunks WHERE tenant_id = ? AND {clause}", (tenant_id, *values)
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
                f"SELECT {CHUNK_COLUMNS}, embedding FROM chunks WHERE tenant_id = ?"
                f" AND document_id IN ({marks}) ORDER BY rowid",
                (tenant_id, *part),
            ):
                chunks.append(chunk_from(r))
                vectors.append(r[9])
        return chunks, vectors_from(vectors)

    def iter_chunks(
        self, tenant_id: str, batch: int = 5000
    ) -> Iterator[tuple[list[Chunk], np.ndarray]]:
        """Every chunk of the tenant with its embedding, in batches (for a rebuild)."""
        last = 0
        db = self._conn()
        while True:
            rows = db.execute(
                f"SELECT {CHUNK_COLUMNS}, embedding FROM chunks WHERE tenant_id = ? AND rowid > ?"
                " ORDER BY rowid LIMIT ?",
                (tenant_id, last, batch),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [chunk_from(r) for r in rows], vectors_from([r[9] for r in rows])

    def latest_seq(self, tenant_id: str) -> int:
        """The tenant's newest document change seq: its corpus version (0 before any write)."""
        row = (
            self._conn()
            .execute(
                "SELECT MAX(seq) FROM changes WHERE tenant_id = ? AND kind = ?",
                (tenant_id, DOCUMENT_CHANGE),
            )
            .fetchone()
        )
        return int(row[0] or 0)

    def changed_documents(self, tenant_id: str, after_seq: int) -> tuple[list[str], int]:
        """Ids of documents changed after `after_seq` and the newest seq among those changes."""
        rows = (
            self._conn()
            .execute(
                "SELECT document_id, seq FROM changes WHERE tenant_id = ? AND seq > ?"
                " AND kind = ? ORDER BY seq",
                (tenant_id, after_seq, DOCUMENT_CHANGE),
            )
            .fetchall()
        )
        if not rows:
            return [], after_seq
        return list(dict.fromkeys(r[0] for r in rows)), int(rows[-1][1])

    def changes_after(self, seq: int, *, limit: int) -> list[Change]:
        """Up to `limit` change log entries after `seq`, oldest first."""
        rows = self._conn().execute(
            "SELECT seq, tenant_id, document_id, kind, at FROM changes WHERE seq > ?"
            " ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [Change(int(s), str(t), str(d), str(k), float(a)) for s, t, d, k, a in rows]

    def max_seq(self) -> int:
        """The newest change seq of any tenant and kind (a node's copy: how far it is applied)."""
        row = self._conn().execute("SELECT MAX(seq) FROM changes").fetchone()
        return int(row[0] or 0)

    # -- the cost ledger ---------------------------------------------------------------------------

    def record(self, events: Sequence[CostEvent]) -> None:
        """Store all `events` in one transaction."""
        if events:
            with self.transaction() as db:
                ledger_sql.insert_events(db, events)

    def totals(self, tenant: str, *, start: date, end: date) -> UsageReport:
        """The tenant's totals by type, model and UTC day, `start` to `end` inclusive."""
        return ledger_sql.totals(self._conn(), tenant, start, end)

    def month_to_date(self, tenant: str, *, now: datetime | float) -> MonthUsage:
        """The tenant's tokens and cost in the UTC month holding `now`."""
        return ledger_sql.month_to_date(self._conn(), tenant, to_epoch(now))

    def storage_accrual(
        self, tenant: str, stored_bytes: int, *, now: datetime | float
    ) -> CostEvent | None:
        """Record storage owed since the tenant's last accrual; the latest event, or None."""
        with self.transaction() as db:  # the write lock makes read-decide-write atomic
            events = ledger_sql.accrue(db, self.pricing, tenant, stored_bytes, to_epoch(now))
        return events[-1] if events else None

    # -- the audit chain -------------------------------------------------------------------------

    def append_audit(
        self, events: Sequence[AuditEvent | Mapping[str, Any]], *, durable: bool = True
    ) -> list[dict[str, Any]]:
        """Chain and store records for `events` in one transaction; returns them."""
        if not events:
            return []
        fields = prepared(events, self.audit_scrub)
        with self.transaction(durable=durable) as db:
            return self._append(db, fields)

    @staticmethod
    def _append(
        db: sqlite3.Connection, fields: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Chain records of `fields` (prepared) after the head, inside the caller's transaction."""
        row = db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        records = chain_records(fields, Head(int(row[0]), str(row[1])) if row else GENESIS)
        db.executemany(
            "INSERT INTO audit_log (seq, tenant_id, action, request_id, record, hash)"
            " VALUES (?,?,?,?,?,?)",
            [
                (r["seq"], r["tenant_id"], r["action"], r["request_id"], line(r), r["hash"])
                for r in records
            ],
        )
        return records

    def audit_head(self) -> Head:
        """The chain's last (seq, hash); (0, 64 zeros) when empty."""
        row = (
            self._conn()
            .execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetchone()
        )
        return Head(int(row[0]), str(row[1])) if row else GENESIS

    def audit_records(
        self, tenant_id: str, *, limit: int, before: int | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's newest `limit` records with seq below `before`, newest first."""
        rows = self._conn().execute(
            "SELECT record FROM audit_log WHERE tenant_id = ? AND seq < ?"
            " ORDER BY seq DESC LIMIT ?",
            (tenant_id, before if before is not None else 1 << 62, limit),
        )
        parsed = (_parsed_or_raw(r[0]) for r in rows)
        # A record whose JSON names another tenant than its column (tampering) is not shown;
        # `tenantrag audit verify` reports it.
        return [r for r in parsed if isinstance(r, dict) and r.get("tenant_id") == tenant_id]

    def iter_audit(self, *, after: int = 0) -> Iterator[tuple[dict[str, Any] | str, str | None]]:
        """Every record after seq `after`, in seq order, with its tenant_id column."""
        db = self._conn()
        while True:
            rows = db.execute(
                "SELECT seq, record, tenant_id FROM audit_log WHERE seq > ? ORDER BY seq"
                " LIMIT 1000",
                (after,),
            ).fetchall()
            if not rows:
                return
            for _, text, tenant in rows:
                yield _parsed_or_raw(text), tenant
            after = int(rows[-1][0])

    def keep_anchor(self, node: str, seq: int, digest: str, text: str) -> None:
        """Keep `node`'s newest signed anchor; the durable commit flushes the records too."""
        with self.transaction() as db:
            extras.keep_anchor(db, extras.SQLITE, node, seq, digest, text)

    def audit_anchors(self) -> list[str]:
        """Every node's newest signed anchor, by node."""
        return extras.anchor_texts(self._conn(), extras.SQLITE)

    # -- the security log --------------------------------------------------------------------------

    def append_security(self, entries: Sequence[SecurityEntry]) -> None:
        """Append rows to the security log."""
        if entries:
            with self.transaction() as db:
                extras.insert_security(db, extras.SQLITE, entries)

    def security_log(self, *, limit: int, before: int | None = None) -> list[SecurityEntry]:
        """The newest `limit` rows with an id below `before`, newest first."""
        return extras.security_entries(self._conn(), extras.SQLITE, limit, before)

    def prune_security(self, *, before: float) -> int:
        """Delete rows whose window ended before `before`; how many went."""
        with self.transaction() as db:
            return extras.prune_security(db, extras.SQLITE, before)

    # -- feedback ----------------------------------------------------------------------------------

    def put_feedback(self, feedback: Feedback, records: ChangeRecords | None = None) -> bool:
        """Store a rating of an answered request with its records; True when it is new."""
        audit = self._audit_of(records, feedback_event(feedback))
        with self.transaction() as db:
            if not extras.answered(db, extras.SQLITE, feedback.tenant_id, feedback.request_id):
                raise NotFound(NO_ANSWER)
            created = extras.upsert_feedback(db, extras.SQLITE, feedback, time.time())
            stored = self._commit_records(db, feedback.tenant_id, records, audit)
        self._announce(records, stored)
        return created

    def feedback_counts(self, tenant_id: str, *, start: float, end: float) -> FeedbackCounts:
        """Ratings of the tenant last changed in [start, end)."""
        return extras.feedback_counts(self._conn(), extras.SQLITE, tenant_id, start, end)

    def feedback_between(self, tenant_id: str, *, start: float, end: float) -> list[Feedback]:
        """The tenant's ratings last changed in [start, end), oldest first."""
        return extras.feedback_between(self._conn(), extras.SQLITE, tenant_id, start, end)

    # -- credentials ---------------------------------------------------------------------------

    def create_api_key(self, key: ApiKey, secret_hash: str, records: ChangeRecords) -> None:
        """Store a new key (only its secret's keyed hash) with its audit record."""
        audit = self._audit_of(records, records.audit)
        with self.transaction() as db:
            if not _live_tenant(db, key.tenant_id):
                raise NotFound(f"No tenant {key.tenant_id!r}.")
            identity.insert_key(db, extras.SQLITE, key, secret_hash)
            stored = self._commit_records(db, key.tenant_id, records, audit)
        self._announce(records, stored)

    def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        """The tenant's keys, revoked ones included, oldest first."""
        return identity.keys_of(self._conn(), extras.SQLITE, tenant_id)

    def find_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key with this lookup id and its secret's hash; None when unknown."""
        return identity.key_by_id(self._conn(), extras.SQLITE, key_id)

    def revoke_api_key(self, tenant_id: str, key_id: str, records: ChangeRecords) -> None:
        """Revoke the tenant's key with its audit record; NotFound for another tenant's."""
        audit = self._audit_of(records, records.audit)
        with self.transaction() as db:
            if not identity.revoke_key(db, extras.SQLITE, tenant_id, key_id, time.time()):
                raise NotFound(f"No API key {key_id!r}.")
            stored = self._commit_records(db, tenant_id, records, audit)
        self._announce(records, stored)

    def touch_api_key(self, key_id: str, at: float) -> None:
        """Record a use of the key."""
        with self.transaction(durable=False) as db:
            identity.touch_key(db, extras.SQLITE, key_id, at)

    def revoke_token(self, jti: str, expires_at: float, records: ChangeRecords) -> None:
        """Refuse the token `jti` until `expires_at`, with its audit record."""
        audit = self._audit_of(records, records.audit)
        with self.transaction() as db:
            identity.revoke_token(db, extras.SQLITE, jti, time.time(), expires_at)
            stored = self._commit_records(db, records.audit.tenant_id or "", records, audit)
        self._announce(records, stored)

    def revoked_token_ids(self, *, now: float) -> frozenset[str]:
        """Every revoked jti whose token may still be unexpired at `now`."""
        return identity.revoked_ids(self._conn(), extras.SQLITE, now)

    def erase_tenant(self, tenant_id: str, records: ChangeRecords) -> Erasure:
        """Delete the tenant's content and keys; its row stays as a tombstone."""
        audit = self._audit_of(records, records.audit)
        with self.scrubbing(), self.transaction() as db:
            if db.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)).fetchone() is None:
                raise NotFound(f"No tenant {tenant_id!r}.")
            now = time.time()
            removed = identity.erase(db, extras.SQLITE, tenant_id, now)
            _append_change(db, tenant_id, "", now, ERASE_CHANGE)
            stored = self._commit_records(db, tenant_id, records, audit)
        self._announce(records, stored)
        return Erasure(tenant_id, removed)


def _live_tenant(db: sqlite3.Connection, tenant_id: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM tenants WHERE id = ? AND status != 'deleted'", (tenant_id,)
    ).fetchone()
    return row is not None


def _settle_items(db: sqlite3.Connection, records: ChangeRecords | None, now: float) -> list[str]:
    """Mark the change's job items done inside its transaction (ItemLost rolls it back)."""
    if records is None or not records.job_items:
        return []
    return jobs.settle(db, extras.SQLITE, records.job_items, now, None, locking=False)


def _announce_finished(records: ChangeRecords | None, finished: list[str]) -> None:
    if records is not None and records.on_jobs_finished is not None and finished:
        records.on_jobs_finished(finished)


def _parsed_or_raw(text: str) -> dict[str, Any] | str:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


def _append_change(
    db: sqlite3.Connection, tenant_id: str, document_id: str, at: float, kind: str = DOCUMENT_CHANGE
) -> int:
    cur = db.execute(
        "INSERT INTO changes (tenant_id, document_id, at, kind) VALUES (?,?,?,?)",
        (tenant_id, document_id, at, kind),
    )
    return int(cur.lastrowid or 0)


def _chunk_rows(tenant_id: str, doc: NewDocument) -> list[tuple[object, ...]]:
    blobs, sentences = embedding_blobs(doc), sentence_blobs(doc)
    return [
        (
            tenant_id,
            doc.id,
            c.position,
            c.text,
            c.title,
            int(c.classification),
            c.source,
            metadata_json(c.metadata),
            blobs[i],
            sentences[i],
        )
        for i, c in enumerate(doc.chunks)
    ]


def _check_replaceable(
    db: sqlite3.Connection,
    tenant_id: str,
    documents: Sequence[NewDocument],
    max_classification: Classification,
) -> None:
    """Conflict if any id of the batch belongs to a document stored above the caller's clearance."""
    ids = [d.id for d in documents]
    marks = ",".join("?" * len(ids))
    row = db.execute(
        f"SELECT id FROM documents WHERE tenant_id = ? AND id IN ({marks})"
        " AND classification > ? ORDER BY id LIMIT 1",
        (tenant_id, *ids, int(max_classification)),
    ).fetchone()
    if row is not None:
        raise hidden_id_conflict(str(row[0]))


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
    check_quotas(tenant, documents, tuple(current), tuple(replaced))


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
        values.extend([key, normalised(value)])
    return " AND ".join(parts), values
