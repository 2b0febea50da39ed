"""The store of record in PostgreSQL, for distributed mode: any number of stateless nodes.

Connections come from a psycopg pool. A write is one transaction with its records; it locks
the tenant's row first (quotas are exact under concurrent writers), does its work, then takes
one advisory lock for the commit order and appends the change log, the costs and the audit
record, and notifies `tenantrag_changes`. Holding that lock until the commit makes change seqs
and audit seqs commit in their own order, so a node reading `seq > cursor` never skips a
change that committed late. Nodes never search here: they copy the log into a local read
model (follower.py). The schema comes from `tenantrag db upgrade` only (schema.py).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, ParamSpec, TypeVar

import numpy as np
import psycopg
import sqlalchemy.exc
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from tenantrag.backends.ledger import (
    CostEvent,
    MonthUsage,
    StoragePricing,
    UsageReport,
    to_epoch,
)
from tenantrag.backends.ledger import postgres as ledger_sql
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
    sentence_blobs,
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
from tenantrag.errors import (
    DependencyUnavailable,
    NotFound,
    TenantUnavailable,
    ValidationFailed,
)
from tenantrag.models import AuditEvent, Chunk, Classification, Tenant, TenantStatus

Conn = psycopg.Connection[TupleRow]
CHANNEL = "tenantrag_changes"
# The advisory lock that orders commits of the change log and the audit chain.
COMMIT_ORDER_LOCK = 0x7472_6167_636F  # "tragco"
CHUNK_COLUMNS = (
    "id, tenant_id, document_id, position, text, title, classification, source, metadata"
)
UNREACHABLE = "The database is unreachable; retry shortly."
NUL_REFUSED = "cannot contain NUL"  # psycopg's DataError for a str holding "\x00"
NUL_MESSAGE = "Text may not contain the NUL character (\\u0000)."


def _redacted(text: str) -> str:
    """`text` with any password=... or user:password@ of a connection string blanked."""
    text = re.sub(r"(password\s*=\s*)\S+", r"\1***", text, flags=re.IGNORECASE)
    return re.sub(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)


class ConnectionLost(DependencyUnavailable):
    """The connection died inside a transaction's statements, before its commit was asked.

    Nothing of that transaction committed, so running it again on a fresh connection is safe
    (`_again_if_lost`). A failure at the commit itself stays a plain DependencyUnavailable: it
    may have committed, so it is not repeated.
    """


P = ParamSpec("P")
R = TypeVar("R")


def _again_if_lost(method: Callable[P, R]) -> Callable[P, R]:
    """Run `method` once more when its connection was lost before committing.

    A PostgreSQL restart or failover kills the connections of requests in flight; their work
    rolled back, and the retry takes a fresh connection (`PostgresStore._checked`).
    """

    @functools.wraps(method)
    def again(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except ConnectionLost:
            return method(*args, **kwargs)

    return again


def _read_again(method: Callable[P, R]) -> Callable[P, R]:
    """For reads: run `method` once more when its connection died, even at the commit.

    A read-only transaction commits nothing, so where it failed does not matter; a pool that
    timed out (the database is away) is not retried.
    """

    @functools.wraps(method)
    def again(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except DependencyUnavailable as exc:
            if not isinstance(exc, ConnectionLost) and not isinstance(
                exc.__cause__, psycopg.OperationalError
            ):
                raise
            return method(*args, **kwargs)

    return again


class PostgresStore:
    """The `Store` in PostgreSQL through a pool of at most `max_connections` connections."""

    def __init__(
        self,
        conninfo: str,
        *,
        pricing: StoragePricing | None = None,
        max_connections: int = 10,
        timeout_s: float = 10.0,
        audit_scrub: AuditScrub | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.pricing = pricing or StoragePricing()
        self.audit_scrub = audit_scrub
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_connections,
            timeout=timeout_s,
            open=False,
            # No `check=`: the pool sleeps 1, 2, 4... s after each connection failing its check,
            # so after a PostgreSQL restart (every idle connection dead) a request waited out the
            # whole timeout. `_checked` checks and discards without sleeping (docs/deployment.md).
            kwargs={"connect_timeout": max(1, int(timeout_s))},
        )
        self.timeout_s = timeout_s
        self._opened = False
        self._lock = threading.Lock()

    def open(self) -> None:
        """Check the schema (SchemaOutdated names the command to run), then open the pool."""
        with self._lock:
            if self._opened:
                return
            try:
                schema.check(self.conninfo)  # through SQLAlchemy, which wraps psycopg's errors
                self._pool.open(wait=True)
            except (psycopg.OperationalError, PoolTimeout, sqlalchemy.exc.OperationalError) as exc:
                # One line that says why (`serve` prints it instead of a traceback); psycopg's
                # connection messages name host, port and database, never the password.
                cause = getattr(exc, "orig", None) or exc
                why = _redacted(str(cause).strip().splitlines()[0] if str(cause).strip() else "")
                message = f"The database is unreachable: {why}" if why else UNREACHABLE
                raise DependencyUnavailable(message, retry_after=5) from exc
            self._opened = True

    def close(self) -> None:
        """Close the pool and its connections."""
        self._pool.close()

    def ping(self) -> None:
        """Raise if the database cannot be read."""
        with self.connection() as conn:
            conn.execute("SELECT 1")

    @contextmanager
    def connection(self, *, durable: bool = True) -> Iterator[Conn]:
        """A pooled connection inside one transaction, committed when the block succeeds."""
        if not self._opened:
            self.open()
        try:
            conn = self._checked(time.monotonic() + self.timeout_s)
            try:
                with conn:  # commits when the block succeeds, rolls back when it raises
                    try:
                        if not durable:
                            conn.execute("SET LOCAL synchronous_commit = off")
                        yield conn
                    except psycopg.OperationalError as exc:
                        if conn.broken:  # died mid-transaction: nothing of it committed
                            raise ConnectionLost(UNREACHABLE, retry_after=5) from exc
                        raise
            finally:
                self._pool.putconn(conn)  # a broken one is closed and replaced by the pool
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DependencyUnavailable(UNREACHABLE, retry_after=5) from exc
        except psycopg.DataError as exc:
            # psycopg refuses, before sending, a text holding NUL (PostgreSQL text cannot), where
            # SQLite stores it. Whatever the entry point (a path id, a filter, a title, a
            # metadata key), that is the caller's input: a 422, never a 500. The transaction
            # rolled back, so nothing is half-written.
            if NUL_REFUSED in str(exc):
                raise ValidationFailed(NUL_MESSAGE) from None
            raise

    def _checked(self, deadline: float) -> Conn:
        """A pooled connection that answers: dead ones (server restarted) are dropped at once.

        Each dead connection fails its check in microseconds (its socket is closed), goes back
        to the pool, which closes it and opens a replacement in the background; the next one is
        tried straight away. PoolTimeout once `deadline` passes without a live one.
        """
        while True:
            conn = self._pool.getconn(timeout=max(0.001, deadline - time.monotonic()))
            try:
                ConnectionPool.check_connection(conn)
            except psycopg.Error:
                self._pool.putconn(conn)
                continue
            except BaseException:  # cancelled mid-check: give the connection back, stop
                self._pool.putconn(conn)
                raise
            return conn

    @contextmanager
    def snapshot(self) -> Iterator[Conn]:
        """A read-only REPEATABLE READ transaction: one consistent view for a node's copy."""
        with self.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    # -- records committed with a change ---------------------------------------------------------

    def _audit_of(self, records: ChangeRecords | None, default: AuditEvent) -> dict[str, Any]:
        """The change's audit fields, checked and scrubbed before its transaction starts.

        A change given no records gets `default`: every committed change has its record.
        """
        (fields,) = prepared([records.audit if records else default], self.audit_scrub)
        return fields

    def _commit(
        self,
        conn: Conn,
        tenant_id: str,
        changes: Sequence[tuple[str, str]],
        records: ChangeRecords | None,
        audit: dict[str, Any],
    ) -> tuple[int, list[CostEvent]]:
        """Append the change log entries (document id, kind) and the records, in commit order.

        Returns the last change seq and the cost events stored.
        """
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_ORDER_LOCK,))
        now, seq = time.time(), 0
        for document_id, kind in changes:
            row = conn.execute(
                "INSERT INTO changes (tenant_id, document_id, at, kind) VALUES (%s,%s,%s,%s)"
                " RETURNING seq",
                (tenant_id, document_id, now, kind),
            ).fetchone()
            seq = int(row[0]) if row else seq
        stored: list[CostEvent] = []
        if records is not None:
            stored = list(records.costs)
            ledger_sql.insert_events(conn, stored)
            if records.storage is not None:
                used = self._usage(conn, tenant_id)
                stored += ledger_sql.accrue(conn, records.storage, tenant_id, used.bytes, now)
        self._append(conn, [audit])
        if changes:  # nodes follow the change log; a change outside it (feedback) wakes none
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(seq)))
        return seq, stored

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
            with self.connection() as conn:
                conn.execute(
                    f"INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ({tenant_placeholders('%s')})",
                    tenant_values(created),
                )
                changes = [("", TENANT_CHANGE)]
                _, stored = self._commit(conn, created.id, changes, records, audit)
        except psycopg.errors.UniqueViolation:
            raise ValueError(f"tenant {tenant.id!r} already exists") from None
        self._announce(records, stored)
        return created

    @_read_again
    def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None when unknown."""
        with self.connection() as conn:
            row = conn.execute(
                f"SELECT {TENANT_COLUMNS} FROM tenants WHERE id = %s", (tenant_id,)
            ).fetchone()
        return tenant_from(row) if row else None

    def list_tenants(self) -> list[Tenant]:
        """Every tenant, by id."""
        with self.connection() as conn:
            rows = conn.execute(f"SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id").fetchall()
        return [tenant_from(r) for r in rows]

    def set_tenant_status(
        self, tenant_id: str, status: TenantStatus, records: ChangeRecords | None = None
    ) -> None:
        """Suspend or reactivate a tenant; NotFound when unknown."""
        audit = self._audit_of(records, status_event(tenant_id, status))
        assignments, values = status_change(status, time.time())
        with self.connection() as conn:
            cur = conn.execute(
                f"UPDATE tenants SET {assignments.replace('?', '%s')}"
                " WHERE id = %s AND status != 'deleted'",
                (*values, tenant_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"No tenant {tenant_id!r}.")
            _, stored = self._commit(conn, tenant_id, [("", TENANT_CHANGE)], records, audit)
        self._announce(records, stored)

    def update_tenant(
        self, tenant_id: str, records: ChangeRecords | None = None, **fields: object
    ) -> None:
        """Change a tenant's limits, retrieval settings or policies, with its records."""
        fields = checked_tenant_fields(fields)
        if not fields:
            return
        audit = self._audit_of(records, update_event(tenant_id, fields))
        assignments = ", ".join(f"{name} = %s" for name in fields)
        with self.connection() as conn:
            cur = conn.execute(
                f"UPDATE tenants SET {assignments} WHERE id = %s AND status != 'deleted'",
                (*fields.values(), tenant_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"No tenant {tenant_id!r}.")
            _, stored = self._commit(conn, tenant_id, [("", TENANT_CHANGE)], records, audit)
        self._announce(records, stored)

    # -- documents -----------------------------------------------------------------------------

    def usage(self, tenant_id: str) -> TenantUsage:
        """How many documents, bytes (`NewDocument.stored_bytes`) and chunks the tenant stores."""
        with self.connection() as conn:
            return self._usage(conn, tenant_id)

    @staticmethod
    def _usage(conn: Conn, tenant_id: str) -> TenantUsage:
        row = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(chunks), 0)"
            " FROM documents WHERE tenant_id = %s",
            (tenant_id,),
        ).fetchone()
        assert row is not None  # an aggregate always returns a row
        return TenantUsage(documents=int(row[0]), bytes=int(row[1]), chunks=int(row[2]))

    def put_documents(
        self,
        tenant: Tenant,
        documents: Sequence[NewDocument],
        records: ChangeRecords | None = None,
        *,
        max_classification: Classification | None = None,
    ) -> int:
        """Store (or replace) documents in one transaction, with their records; the new seq.

        A batch naming a document above `max_classification` is refused whole: `Conflict`.
        """
        now = time.time()
        ids = tuple(d.id for d in documents)
        audit = self._audit_of(records, store_event("ingest", tenant.id, ids))
        with self.connection() as conn:
            # The tenant's row lock queues its writers, so the quota check and the ceiling
            # check see every write committed before them (a document raised meanwhile too).
            # An erased tenant's writes in flight lose the race: erasure takes this lock too.
            row = conn.execute(
                "SELECT status FROM tenants WHERE id = %s FOR UPDATE", (tenant.id,)
            ).fetchone()
            if row is not None and row[0] == TenantStatus.DELETED.value:
                raise TenantUnavailable(ERASED)
            if max_classification is not None:
                self._check_replaceable(conn, tenant.id, documents, max_classification)
            self._check_quotas(conn, tenant, documents)
            for doc in documents:
                self._put(conn, tenant.id, doc, now)
            finished: list[str] = []
            if records is not None and records.job_items:  # ItemLost rolls the whole back
                refs = records.job_items
                finished = jobs.settle(conn, extras.POSTGRESQL, refs, now, None, locking=True)
            changes = [(doc.id, DOCUMENT_CHANGE) for doc in documents]
            seq, stored = self._commit(conn, tenant.id, changes, records, audit)
        self._announce(records, stored)
        if records is not None and records.on_jobs_finished is not None and finished:
            records.on_jobs_finished(finished)
        return seq

    @staticmethod
    def _put(conn: Conn, tenant_id: str, doc: NewDocument, now: float) -> None:
        conn.execute(
            "DELETE FROM chunks WHERE tenant_id = %s AND document_id = %s", (tenant_id, doc.id)
        )
        conn.execute(
            f"INSERT INTO documents ({DOCUMENT_COLUMNS}, content_hash)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT (tenant_id, id) DO UPDATE SET title = excluded.title,"
            " source = excluded.source, classification = excluded.classification,"
            " metadata = excluded.metadata, bytes = excluded.bytes, chunks = excluded.chunks,"
            " updated_at = excluded.updated_at, content_hash = excluded.content_hash",
            (
                tenant_id,
                doc.id,
                doc.title,
                doc.source,
                int(doc.classification),
                Jsonb(dict(doc.metadata)),
                doc.stored_bytes,
                len(doc.chunks),
                now,
                now,
                doc.content_hash,
            ),
        )
        blobs, sentences = embedding_blobs(doc), sentence_blobs(doc)
        with conn.cursor().copy(
            "COPY chunks (tenant_id, document_id, position, text, title, classification, source,"
            " metadata, embedding, sentences) FROM STDIN"
        ) as copy:
            for i, c in enumerate(doc.chunks):
                copy.write_row(
                    (
                        tenant_id,
                        doc.id,
                        c.position,
                        c.text,
                        c.title,
                        int(c.classification),
                        c.source,
                        Jsonb(dict(c.metadata)),
                        blobs[i],
                        sentences[i],
                    )
                )

    @staticmethod
    def _check_replaceable(
        conn: Conn,
        tenant_id: str,
        documents: Sequence[NewDocument],
        max_classification: Classification,
    ) -> None:
        """Conflict if any id of the batch is a document stored above the caller's clearance."""
        row = conn.execute(
            "SELECT id FROM documents WHERE tenant_id = %s AND id = ANY(%s)"
            " AND classification > %s ORDER BY id LIMIT 1",
            (tenant_id, [d.id for d in documents], int(max_classification)),
        ).fetchone()
        if row is not None:
            raise hidden_id_conflict(str(row[0]))

    @staticmethod
    def _check_quotas(conn: Conn, tenant: Tenant, documents: Sequence[NewDocument]) -> None:
        ids = [d.id for d in documents]
        current = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM documents WHERE tenant_id = %s",
            (tenant.id,),
        ).fetchone()
        replaced = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM documents"
            " WHERE tenant_id = %s AND id = ANY(%s)",
            (tenant.id, ids),
        ).fetchone()
        assert current is not None and replaced is not None  # aggregates always return a row
        check_quotas(
            tenant,
            documents,
            (int(current[0]), int(current[1])),
            (int(replaced[0]), int(replaced[1])),
        )

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
        with self.connection() as conn:
            cur = conn.execute(
                "DELETE FROM documents WHERE tenant_id = %s AND id = %s AND classification <= %s",
                (tenant_id, document_id, ceiling(max_classification)),
            )
            if cur.rowcount == 0:
                raise NotFound(f"No document {document_id!r}.")
            conn.execute(
                "DELETE FROM chunks WHERE tenant_id = %s AND document_id = %s",
                (tenant_id, document_id),
            )
            changes = [(document_id, DOCUMENT_CHANGE)]
            seq, stored = self._commit(conn, tenant_id, changes, records, audit)
        self._announce(records, stored)
        return seq

    @_read_again
    def get_document(
        self, tenant_id: str, document_id: str, *, max_classification: Classification | None = None
    ) -> StoredDocument:
        """The document's fields; NotFound when absent from this tenant or above the ceiling."""
        with self.connection() as conn:
            row = conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE tenant_id = %s AND id = %s"
                " AND classification <= %s",
                (tenant_id, document_id, ceiling(max_classification)),
            ).fetchone()
        if row is None:
            raise NotFound(f"No document {document_id!r}.")
        return document_from(row)

    @_read_again
    def list_documents(
        self,
        tenant_id: str,
        *,
        limit: int,
        after: str | None = None,
        max_classification: Classification | None = None,
    ) -> list[StoredDocument]:
        """Up to `limit` documents at or below the ceiling, ordered by id, after the id `after`."""
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE tenant_id = %s"
                " AND classification <= %s AND id > %s ORDER BY id LIMIT %s",
                (tenant_id, ceiling(max_classification), after or "", limit),
            ).fetchall()
        return [document_from(r) for r in rows]

    def document_hashes(self, tenant_id: str, document_ids: Sequence[str]) -> dict[str, str]:
        """The content hash of each of these documents stored from a job (others are absent)."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT id, content_hash FROM documents WHERE tenant_id = %s AND id = ANY(%s)"
                " AND content_hash IS NOT NULL",
                (tenant_id, list(document_ids)),
            ).fetchall()
        return {str(i): str(h) for i, h in rows}

    # -- background ingestion --------------------------------------------------------------------

    def create_job(self, job: NewJob, records: ChangeRecords | None = None) -> Job:
        """Queue a job with its documents, and its audit record, in one transaction."""
        audit = self._audit_of(records, store_event("job_create", job.tenant_id, (job.id,)))
        with self.connection() as conn:
            jobs.insert_job(conn, extras.POSTGRESQL, job, time.time())
            _, stored = self._commit(conn, job.tenant_id, [], records, audit)
            created = jobs.get_job(conn, extras.POSTGRESQL, job.tenant_id, job.id)
        self._announce(records, stored)
        return created

    def get_job(self, tenant_id: str, job_id: str) -> Job:
        """The tenant's job; NotFound for an unknown id and another tenant's job alike."""
        with self.snapshot() as conn:
            return jobs.get_job(conn, extras.POSTGRESQL, tenant_id, job_id)

    def list_jobs(
        self,
        tenant_id: str,
        *,
        limit: int,
        before: str | None = None,
        status: str | None = None,
    ) -> list[Job]:
        """The tenant's jobs, newest first, with ids below `before`, of `status` if given."""
        with self.snapshot() as conn:
            return jobs.list_jobs(conn, extras.POSTGRESQL, tenant_id, limit, before, status)

    def cancel_job(self, tenant_id: str, job_id: str, records: ChangeRecords | None = None) -> Job:
        """Stop a queued or running job; the job as it now stands."""
        audit = self._audit_of(records, store_event("job_cancel", tenant_id, (job_id,)))
        stored: list[CostEvent] = []
        with self.connection() as conn:
            now = time.time()
            if jobs.cancel_job(conn, extras.POSTGRESQL, tenant_id, job_id, now, locking=True):
                _, stored = self._commit(conn, tenant_id, [], records, audit)
            job = jobs.get_job(conn, extras.POSTGRESQL, tenant_id, job_id)
        self._announce(records, stored)
        return job

    def claim_job_items(
        self, owner: str, *, limit: int, lease_s: float
    ) -> tuple[list[ClaimedItem], list[str]]:
        """Lease up to `limit` items of one job to `owner`, tenants in turn; (items, jobs over).

        Job rows are locked FOR UPDATE SKIP LOCKED: workers on other nodes claiming at the
        same moment take other jobs (or wait a turn), never the same items.
        """
        with self.connection() as conn:
            return jobs.claim(
                conn, extras.POSTGRESQL, owner, limit, lease_s, time.time(), locking=True
            )

    def renew_job_items(self, refs: Sequence[ItemRef], *, lease_s: float) -> int:
        """Extend the leases `refs` still hold; how many they still hold."""
        if not refs:
            return 0
        with self.connection() as conn:
            return jobs.renew(conn, extras.POSTGRESQL, refs, lease_s, time.time())

    def settle_job_items(
        self, refs: Sequence[ItemRef], error: tuple[str, str] | None = None
    ) -> list[str]:
        """Mark held items failed with (code, message), or done with nothing stored; jobs over."""
        with self.connection() as conn:
            return jobs.settle(conn, extras.POSTGRESQL, refs, time.time(), error, locking=True)

    def job_depth(self) -> dict[str, float]:
        """Items and jobs queued and running over every tenant."""
        with self.connection() as conn:
            return jobs.depth(conn, extras.POSTGRESQL)

    # -- the corpus and its change log ---------------------------------------------------------

    def latest_seq(self, tenant_id: str) -> int:
        """The tenant's newest document change seq (0 before any write)."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT MAX(seq) FROM changes WHERE tenant_id = %s AND kind = %s",
                (tenant_id, DOCUMENT_CHANGE),
            ).fetchone()
        return int(row[0] or 0) if row else 0

    def changed_documents(self, tenant_id: str, after_seq: int) -> tuple[list[str], int]:
        """Ids of documents changed after `after_seq` and the newest seq among those changes."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT document_id, seq FROM changes WHERE tenant_id = %s AND seq > %s"
                " AND kind = %s ORDER BY seq",
                (tenant_id, after_seq, DOCUMENT_CHANGE),
            ).fetchall()
        if not rows:
            return [], after_seq
        return list(dict.fromkeys(str(r[0]) for r in rows)), int(rows[-1][1])

    def chunks_of_documents(
        self, tenant_id: str, document_ids: Sequence[str]
    ) -> tuple[list[Chunk], np.ndarray]:
        """The current chunks of these documents with their embeddings (rows aligned)."""
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {CHUNK_COLUMNS}, embedding FROM chunks WHERE tenant_id = %s"
                " AND document_id = ANY(%s) ORDER BY id",
                (tenant_id, list(document_ids)),
            ).fetchall()
        return [chunk_from(r) for r in rows], vectors_from([r[9] for r in rows])

    def changes_after(self, seq: int, *, limit: int) -> list[Change]:
        """Up to `limit` change log entries after `seq`, oldest first."""
        with self.connection() as conn:
            return changes_after(conn, seq, limit)

    # -- the cost ledger ---------------------------------------------------------------------------

    def record(self, events: Sequence[CostEvent]) -> None:
        """Store all `events` in one transaction."""
        if events:
            with self.connection() as conn:
                ledger_sql.insert_events(conn, events)

    def totals(self, tenant: str, *, start: date, end: date) -> UsageReport:
        """The tenant's totals by type, model and UTC day, `start` to `end` inclusive."""
        with self.connection() as conn:
            return ledger_sql.totals(conn, tenant, start, end)

    @_read_again
    def month_to_date(self, tenant: str, *, now: datetime | float) -> MonthUsage:
        """The tenant's tokens and cost in the UTC month holding `now`."""
        with self.connection() as conn:
            return ledger_sql.month_to_date(conn, tenant, to_epoch(now))

    def storage_accrual(
        self, tenant: str, stored_bytes: int, *, now: datetime | float
    ) -> CostEvent | None:
        """Record storage owed since the tenant's last accrual; the latest event, or None."""
        with self.connection() as conn:
            events = ledger_sql.accrue(conn, self.pricing, tenant, stored_bytes, to_epoch(now))
        return events[-1] if events else None

    # -- the audit chain -------------------------------------------------------------------------

    @_again_if_lost
    def append_audit(
        self, events: Sequence[AuditEvent | Mapping[str, Any]], *, durable: bool = True
    ) -> list[dict[str, Any]]:
        """Chain and store records for `events` in one transaction; returns them."""
        if not events:
            return []
        fields = prepared(events, self.audit_scrub)
        written: list[dict[str, Any]] = []
        try:
            with self.connection(durable=durable) as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_ORDER_LOCK,))
                written = self._append(conn, fields)
        except ConnectionLost:
            raise  # before the commit: _again_if_lost runs it again
        except DependencyUnavailable as exc:
            if not written or not isinstance(exc.__cause__, psycopg.OperationalError):
                raise
            # The connection died at the commit (a restart): committed or not, the chain says.
            # Its last record's (seq, hash) is there only if this transaction committed, so
            # the retry never writes a record twice.
            last = written[-1]
            with self.connection() as conn:
                found = conn.execute(
                    "SELECT 1 FROM audit_log WHERE seq = %s AND hash = %s",
                    (last["seq"], last["hash"]),
                ).fetchone()
            if not found:
                raise ConnectionLost(UNREACHABLE, retry_after=5) from exc
        return written

    @staticmethod
    def _append(conn: Conn, fields: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Chain records of `fields` (prepared) after the head; the caller holds the lock."""
        row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        records = chain_records(fields, Head(int(row[0]), str(row[1])) if row else GENESIS)
        conn.cursor().executemany(
            "INSERT INTO audit_log (seq, tenant_id, action, request_id, record, hash)"
            " VALUES (%s,%s,%s,%s,%s,%s)",
            [
                (r["seq"], r["tenant_id"], r["action"], r["request_id"], line(r), r["hash"])
                for r in records
            ],
        )
        return records

    def audit_head(self) -> Head:
        """The chain's last (seq, hash); (0, 64 zeros) when empty."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return Head(int(row[0]), str(row[1])) if row else GENESIS

    def audit_records(
        self, tenant_id: str, *, limit: int, before: int | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's newest `limit` records with seq below `before`, newest first."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT record FROM audit_log WHERE tenant_id = %s AND seq < %s"
                " ORDER BY seq DESC LIMIT %s",
                (tenant_id, before if before is not None else 1 << 62, limit),
            ).fetchall()
        parsed = (_parsed_or_raw(str(r[0])) for r in rows)
        return [r for r in parsed if isinstance(r, dict) and r.get("tenant_id") == tenant_id]

    def iter_audit(self, *, after: int = 0) -> Iterator[tuple[dict[str, Any] | str, str | None]]:
        """Every record after seq `after`, in seq order, with its tenant_id column."""
        while True:
            with self.connection() as conn:
                rows = conn.execute(
                    "SELECT seq, record, tenant_id FROM audit_log WHERE seq > %s ORDER BY seq"
                    " LIMIT 1000",
                    (after,),
                ).fetchall()
            if not rows:
                return
            for _, text, tenant in rows:
                yield _parsed_or_raw(str(text)), tenant
            after = int(rows[-1][0])

    def keep_anchor(self, node: str, seq: int, digest: str, text: str) -> None:
        """Keep `node`'s newest signed anchor; the durable commit flushes the records too."""
        with self.connection() as conn:
            extras.keep_anchor(conn, extras.POSTGRESQL, node, seq, digest, text)

    def audit_anchors(self) -> list[str]:
        """Every node's newest signed anchor, by node."""
        with self.connection() as conn:
            return extras.anchor_texts(conn, extras.POSTGRESQL)

    # -- the security log --------------------------------------------------------------------------

    def append_security(self, entries: Sequence[SecurityEntry]) -> None:
        """Append rows to the security log."""
        if entries:
            with self.connection() as conn:
                extras.insert_security(conn, extras.POSTGRESQL, entries)

    def security_log(self, *, limit: int, before: int | None = None) -> list[SecurityEntry]:
        """The newest `limit` rows with an id below `before`, newest first."""
        with self.connection() as conn:
            return extras.security_entries(conn, extras.POSTGRESQL, limit, before)

    def prune_security(self, *, before: float) -> int:
        """Delete rows whose window ended before `before`; how many went."""
        with self.connection() as conn:
            return extras.prune_security(conn, extras.POSTGRESQL, before)

    # -- feedback ----------------------------------------------------------------------------------

    def put_feedback(self, feedback: Feedback, records: ChangeRecords | None = None) -> bool:
        """Store a rating of an answered request with its records; True when it is new."""
        audit = self._audit_of(records, feedback_event(feedback))
        with self.connection() as conn:
            if not extras.answered(
                conn, extras.POSTGRESQL, feedback.tenant_id, feedback.request_id
            ):
                raise NotFound(NO_ANSWER)
            created = extras.upsert_feedback(conn, extras.POSTGRESQL, feedback, time.time())
            _, stored = self._commit(conn, feedback.tenant_id, [], records, audit)
        self._announce(records, stored)
        return created

    def feedback_counts(self, tenant_id: str, *, start: float, end: float) -> FeedbackCounts:
        """Ratings of the tenant last changed in [start, end)."""
        with self.connection() as conn:
            return extras.feedback_counts(conn, extras.POSTGRESQL, tenant_id, start, end)

    def feedback_between(self, tenant_id: str, *, start: float, end: float) -> list[Feedback]:
        """The tenant's ratings last changed in [start, end), oldest first."""
        with self.connection() as conn:
            return extras.feedback_between(conn, extras.POSTGRESQL, tenant_id, start, end)

    # -- credentials ---------------------------------------------------------------------------

    def create_api_key(self, key: ApiKey, secret_hash: str, records: ChangeRecords) -> None:
        """Store a new key (only its secret's keyed hash) with its audit record."""
        audit = self._audit_of(records, records.audit)
        with self.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM tenants WHERE id = %s AND status != 'deleted' FOR SHARE",
                (key.tenant_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"No tenant {key.tenant_id!r}.")
            identity.insert_key(conn, extras.POSTGRESQL, key, secret_hash)
            _, stored = self._commit(conn, key.tenant_id, [], records, audit)
        self._announce(records, stored)

    def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        """The tenant's keys, revoked ones included, oldest first."""
        with self.connection() as conn:
            return identity.keys_of(conn, extras.POSTGRESQL, tenant_id)

    def find_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key with this lookup id and its secret's hash; None when unknown."""
        with self.connection() as conn:
            return identity.key_by_id(conn, extras.POSTGRESQL, key_id)

    def revoke_api_key(self, tenant_id: str, key_id: str, records: ChangeRecords) -> None:
        """Revoke the tenant's key with its audit record; NotFound for another tenant's."""
        audit = self._audit_of(records, records.audit)
        with self.connection() as conn:
            if not identity.revoke_key(conn, extras.POSTGRESQL, tenant_id, key_id, time.time()):
                raise NotFound(f"No API key {key_id!r}.")
            _, stored = self._commit(conn, tenant_id, [], records, audit)
        self._announce(records, stored)

    def touch_api_key(self, key_id: str, at: float) -> None:
        """Record a use of the key."""
        with self.connection(durable=False) as conn:
            identity.touch_key(conn, extras.POSTGRESQL, key_id, at)

    def revoke_token(self, jti: str, expires_at: float, records: ChangeRecords) -> None:
        """Refuse the token `jti` until `expires_at`, with its audit record."""
        audit = self._audit_of(records, records.audit)
        with self.connection() as conn:
            identity.revoke_token(conn, extras.POSTGRESQL, jti, time.time(), expires_at)
            _, stored = self._commit(conn, records.audit.tenant_id or "", [], records, audit)
        self._announce(records, stored)

    def revoked_token_ids(self, *, now: float) -> frozenset[str]:
        """Every revoked jti whose token may still be unexpired at `now`."""
        with self.connection() as conn:
            return identity.revoked_ids(conn, extras.POSTGRESQL, now)

    def erase_tenant(self, tenant_id: str, records: ChangeRecords) -> Erasure:
        """Delete the tenant's content and keys; its row stays as a tombstone."""
        audit = self._audit_of(records, records.audit)
        with self.connection() as conn:
            # The row lock waits for the tenant's writes in flight (they take it too), and
            # makes every later one see the tombstone.
            row = conn.execute(
                "SELECT 1 FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"No tenant {tenant_id!r}.")
            removed = identity.erase(conn, extras.POSTGRESQL, tenant_id, time.time())
            _, stored = self._commit(conn, tenant_id, [("", ERASE_CHANGE)], records, audit)
        self._announce(records, stored)
        return Erasure(tenant_id, removed)


def changes_after(conn: Conn, seq: int, limit: int) -> list[Change]:
    """Up to `limit` change log entries after `seq` on `conn`, oldest first."""
    rows = conn.execute(
        "SELECT seq, tenant_id, document_id, kind, at FROM changes WHERE seq > %s"
        " ORDER BY seq LIMIT %s",
        (seq, limit),
    ).fetchall()
    return [Change(int(s), str(t), str(d), str(k), float(a)) for s, t, d, k, a in rows]


def _parsed_or_raw(text: str) -> dict[str, Any] | str:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) else text
