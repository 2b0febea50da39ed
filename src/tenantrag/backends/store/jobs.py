"""Background ingestion's queue: jobs and their items, in the store of record (migration 0005).

Why a queue in the store rather than a queue library: the store of record is SQLite in
embedded mode and PostgreSQL in distributed mode, and the queue must work in both with no new
server. procrastinate runs on PostgreSQL only; arq, RQ and dramatiq need Redis, which embedded
mode lacks (and where Redis is set it is a cache, not a store whose loss may lose work). A
table of items claimed with a lease works in both: PostgreSQL claims with `FOR UPDATE SKIP
LOCKED` (workers on many nodes never take the same item), SQLite in its single-writer
transaction; a lease that runs out makes the item claimable again, so a worker killed with
SIGKILL loses nothing. docs/jobs.md says more.

An item holds its document (`payload`, the JSON of what the request sent), so nothing is lost
when the process that accepted it dies. It is marked done inside the very transaction that
stores its document (`ChangeRecords.job_items`), and only while the marking worker still holds
its lease: a document is stored once per item, however many workers a slow item met.

Both stores run these statements inside their own transactions; they are written with `?`
marks (`extras.Dialect`). `locking` is PostgreSQL's row locks, which SQLite's write lock makes
unnecessary.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenantrag.backends.store.extras import Dialect, Executor
from tenantrag.errors import NotFound
from tenantrag.models import Classification, DetailValue

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
JOB_STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE = (QUEUED, RUNNING)
DONE = "done"  # an item's state once its document is stored (or was already, unchanged)
ITEM_STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
# A job's answer lists at most this many failed documents (the first by position): a job of
# 100,000 bad documents must not make every status poll a megabyte.
MAX_ERRORS_SHOWN = 100
# An item whose worker died this many times fails: a document that kills every worker taking
# it (out of memory, say) must not stop the queue forever.
MAX_ATTEMPTS = 3
NO_JOB = "No such job."


class ItemLost(Exception):
    """The item is no longer this worker's: cancelled, or its lease ran out and it was retaken.

    The transaction that tried to mark it done rolls back, document and records with it.
    """


def new_job_id() -> str:
    """A job id that sorts by creation time: milliseconds in hex, then 48 random bits."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def content_hash(payload: Mapping[str, Any]) -> str:
    """The hash of a document as sent: text, title, metadata, classification and source."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class JobError:
    """A document of a job that could not be stored, and why."""

    id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Job:
    """A job as its tenant sees it: status, counts and the documents that failed."""

    id: str
    tenant_id: str
    user_id: str
    status: str
    total: int
    done: int
    failed: int
    errors: tuple[JobError, ...]
    created_at: float
    started_at: float | None
    finished_at: float | None
    detail: Mapping[str, DetailValue] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Whether the job is over (succeeded, failed or cancelled)."""
        return self.status not in ACTIVE


@dataclass(frozen=True, slots=True)
class NewJobItem:
    """One document of a new job: its id and what to store (`payload`, JSON-able)."""

    document_id: str
    payload: Mapping[str, Any]

    @property
    def content_hash(self) -> str:
        """The hash the stored document will carry."""
        return content_hash(self.payload)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to queue: who asked, with which clearance, and its documents in order."""

    tenant_id: str
    user_id: str
    request_id: str
    clearance: Classification
    items: Sequence[NewJobItem]
    detail: Mapping[str, DetailValue] = field(default_factory=dict)
    id: str = field(default_factory=new_job_id)


@dataclass(frozen=True, slots=True)
class ItemRef:
    """One claimed item, as the worker holding its lease names it."""

    job_id: str
    position: int
    owner: str


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """An item a worker now holds the lease of, with what it needs to store its document."""

    job_id: str
    position: int
    tenant_id: str
    document_id: str
    payload: Mapping[str, Any]
    content_hash: str
    attempts: int
    owner: str
    user_id: str
    request_id: str
    clearance: Classification

    @property
    def ref(self) -> ItemRef:
        """This item's reference, for marking it done or failed."""
        return ItemRef(self.job_id, self.position, self.owner)


# -- statements -----------------------------------------------------------------------------------


def insert_job(db: Executor, d: Dialect, job: NewJob, now: float) -> None:
    """Insert the job and its items (all queued)."""
    db.execute(
        d.sql(
            "INSERT INTO jobs (id, tenant_id, user_id, request_id, clearance, status, total,"
            " detail, created_at, last_claim_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
        ),
        (
            job.id,
            job.tenant_id,
            job.user_id,
            job.request_id,
            int(job.clearance),
            QUEUED,
            len(job.items),
            json.dumps(dict(job.detail), sort_keys=True),
            now,
            0.0,
        ),
    )
    rows = [
        (
            job.id,
            n,
            job.tenant_id,
            item.document_id,
            json.dumps(dict(item.payload), ensure_ascii=False),
            item.content_hash,
            QUEUED,
        )
        for n, item in enumerate(job.items)
    ]
    insert = d.sql(
        "INSERT INTO job_items (job_id, position, tenant_id, document_id, payload, content_hash,"
        " state) VALUES (?,?,?,?,?,?,?)"
    )
    executemany = getattr(db, "executemany", None)
    if executemany is not None:  # sqlite3's connection has it; psycopg's cursor does
        executemany(insert, rows)
    else:
        with db.cursor() as cur:  # type: ignore[attr-defined]  # psycopg.Connection
            cur.executemany(insert, rows)


JOB_COLUMNS = "id, tenant_id, user_id, status, total, created_at, started_at, finished_at, detail"


def _job_from(db: Executor, d: Dialect, row: Sequence[Any]) -> Job:
    job_id = str(row[0])
    counts = dict(
        db.execute(
            d.sql(
                "SELECT state, COUNT(*) FROM job_items WHERE job_id = ?"
                " AND state IN (?, ?) GROUP BY state"
            ),
            (job_id, DONE, FAILED),
        ).fetchall()
    )
    errors = db.execute(
        d.sql(
            "SELECT document_id, error_code, error_message FROM job_items WHERE job_id = ?"
            " AND state = ? ORDER BY position LIMIT ?"
        ),
        (job_id, FAILED, MAX_ERRORS_SHOWN),
    ).fetchall()
    return Job(
        id=job_id,
        tenant_id=str(row[1]),
        user_id=str(row[2]),
        status=str(row[3]),
        total=int(row[4]),
        done=int(counts.get(DONE, 0)),
        failed=int(counts.get(FAILED, 0)),
        errors=tuple(JobError(str(i), str(c), str(m)) for i, c, m in errors),
        created_at=float(row[5]),
        started_at=None if row[6] is None else float(row[6]),
        finished_at=None if row[7] is None else float(row[7]),
        detail=json.loads(row[8]),
    )


def get_job(db: Executor, d: Dialect, tenant_id: str, job_id: str) -> Job:
    """The tenant's job; NotFound for an unknown id and for another tenant's job alike."""
    row = db.execute(
        d.sql(f"SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = ? AND id = ?"),
        (tenant_id, job_id),
    ).fetchone()
    if row is None:
        raise NotFound(NO_JOB)
    return _job_from(db, d, row)


def list_jobs(
    db: Executor, d: Dialect, tenant_id: str, limit: int, before: str | None, status: str | None
) -> list[Job]:
    """The tenant's newest `limit` jobs with an id below `before`, of `status` if given."""
    clause, params = "", [tenant_id, before if before is not None else "~"]
    if status is not None:
        clause, params = " AND status = ?", [*params, status]
    rows = db.execute(
        d.sql(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = ? AND id < ?{clause}"
            " ORDER BY id DESC LIMIT ?"
        ),
        (*params, limit),
    ).fetchall()
    return [_job_from(db, d, r) for r in rows]


def _lock_job(db: Executor, d: Dialect, job_id: str, *, locking: bool, skip: bool = False) -> bool:
    """Take the job row's lock (PostgreSQL); whether the job exists (and was not skipped)."""
    if not locking:
        return True
    tail = " FOR UPDATE SKIP LOCKED" if skip else " FOR UPDATE"
    row = db.execute(d.sql("SELECT 1 FROM jobs WHERE id = ?" + tail), (job_id,)).fetchone()
    return row is not None


def cancel_job(
    db: Executor, d: Dialect, tenant_id: str, job_id: str, now: float, *, locking: bool
) -> bool:
    """Stop the tenant's job: its queued and running items are cancelled; True if it was active.

    NotFound for an unknown id and another tenant's job alike. A running item's worker then
    finds its item gone (`ItemLost`), so nothing more is stored once this commits.
    """
    row = db.execute(
        d.sql("SELECT status FROM jobs WHERE tenant_id = ? AND id = ?"), (tenant_id, job_id)
    ).fetchone()
    if row is None:
        raise NotFound(NO_JOB)
    _lock_job(db, d, job_id, locking=locking)
    cur = db.execute(
        d.sql("UPDATE jobs SET status = ?, finished_at = ? WHERE id = ? AND status IN (?, ?)"),
        (CANCELLED, now, job_id, *ACTIVE),
    )
    if cur.rowcount == 0:
        return False
    db.execute(
        d.sql(
            "UPDATE job_items SET state = ?, lease_owner = NULL, lease_until = NULL,"
            " finished_at = ? WHERE job_id = ? AND state IN (?, ?)"
        ),
        (CANCELLED, now, job_id, *ACTIVE),
    )
    return True


def claim(
    db: Executor,
    d: Dialect,
    owner: str,
    limit: int,
    lease_s: float,
    now: float,
    *,
    locking: bool,
) -> tuple[list[ClaimedItem], list[str]]:
    """Lease up to `limit` items of one job, the tenants taking turns; (items, jobs finished).

    The job chosen is that of the tenant whose last claim is oldest (a new job's is 0), so one
    tenant's 100,000 documents and another's 10 are claimed in alternation, a batch each. An
    item whose lease ran out is claimable again; one that has been claimed MAX_ATTEMPTS times
    fails (`worker_lost`) instead. Jobs that this finishes are returned.
    """
    candidates = db.execute(
        d.sql(
            "SELECT j.id FROM jobs j WHERE j.status IN (?, ?) AND EXISTS (SELECT 1 FROM"
            " job_items i WHERE i.job_id = j.id AND (i.state = ? OR (i.state = ? AND"
            " i.lease_until < ?))) ORDER BY (SELECT MAX(k.last_claim_at) FROM jobs k WHERE"
            " k.tenant_id = j.tenant_id AND k.status IN (?, ?)), j.last_claim_at, j.id LIMIT 8"
        ),
        (*ACTIVE, QUEUED, RUNNING, now, *ACTIVE),
    ).fetchall()
    finished: list[str] = []
    for (job_id,) in candidates:
        if not _lock_job(db, d, str(job_id), locking=locking, skip=True):
            continue  # another worker is claiming from it or finishing an item: try the next
        job = db.execute(
            d.sql("SELECT user_id, request_id, clearance, status FROM jobs WHERE id = ?"),
            (job_id,),
        ).fetchone()
        if job is None or job[3] not in ACTIVE:
            continue  # cancelled since the candidates were read
        rows = db.execute(
            d.sql(
                "SELECT position, tenant_id, document_id, payload, content_hash, attempts"
                " FROM job_items WHERE job_id = ? AND (state = ? OR (state = ? AND"
                " lease_until < ?)) ORDER BY position LIMIT ?"
            ),
            (job_id, QUEUED, RUNNING, now, limit),
        ).fetchall()
        claimed: list[ClaimedItem] = []
        for position, tenant_id, document_id, payload, digest, attempts in rows:
            if int(attempts) >= MAX_ATTEMPTS:
                _settle(
                    db,
                    d,
                    str(job_id),
                    int(position),
                    FAILED,
                    now,
                    ("worker_lost", f"Workers died {attempts} times storing it; not retried."),
                )
                db.execute(d.sql("UPDATE jobs SET progress_at = ? WHERE id = ?"), (now, job_id))
                continue
            db.execute(
                d.sql(
                    "UPDATE job_items SET state = ?, lease_owner = ?, lease_until = ?,"
                    " attempts = attempts + 1 WHERE job_id = ? AND position = ?"
                ),
                (RUNNING, owner, now + lease_s, job_id, position),
            )
            claimed.append(
                ClaimedItem(
                    job_id=str(job_id),
                    position=int(position),
                    tenant_id=str(tenant_id),
                    document_id=str(document_id),
                    payload=json.loads(payload),
                    content_hash=str(digest),
                    attempts=int(attempts) + 1,
                    owner=owner,
                    user_id=str(job[0]),
                    request_id=str(job[1]),
                    clearance=Classification(int(job[2])),
                )
            )
        db.execute(
            d.sql(
                "UPDATE jobs SET status = ?, started_at = COALESCE(started_at, ?),"
                " last_claim_at = ? WHERE id = ?"
            ),
            (RUNNING, now, now, job_id),
        )
        if _finish_if_over(db, d, str(job_id), now):
            finished.append(str(job_id))
        if claimed:
            return claimed, finished
    return [], finished


def renew(db: Executor, d: Dialect, refs: Sequence[ItemRef], lease_s: float, now: float) -> int:
    """Extend the leases this worker still holds; how many it still holds."""
    held = 0
    for ref in refs:
        cur = db.execute(
            d.sql(
                "UPDATE job_items SET lease_until = ? WHERE job_id = ? AND position = ?"
                " AND state = ? AND lease_owner = ?"
            ),
            (now + lease_s, ref.job_id, ref.position, RUNNING, ref.owner),
        )
        held += int(cur.rowcount)
    return held


def _settle(
    db: Executor,
    d: Dialect,
    job_id: str,
    position: int,
    state: str,
    now: float,
    error: tuple[str, str] | None = None,
    owner: str | None = None,
) -> bool:
    """Mark an item done or failed; with `owner`, only while that worker holds it."""
    code, message = error if error else (None, None)
    guard, params = "", [state, now, code, message, job_id, position]
    if owner is not None:
        guard, params = " AND state = ? AND lease_owner = ?", [*params, RUNNING, owner]
    # A done item's document is in the documents table now: its copy here is dropped.
    payload = ", payload = ''" if state == DONE else ""
    cur = db.execute(
        d.sql(
            "UPDATE job_items SET state = ?, finished_at = ?, error_code = ?, error_message = ?,"
            f" lease_owner = NULL, lease_until = NULL{payload} WHERE job_id = ? AND position = ?"
            + guard
        ),
        tuple(params),
    )
    return bool(cur.rowcount)


def _finish_if_over(db: Executor, d: Dialect, job_id: str, now: float) -> bool:
    """Close the job when no item is left to do: failed if none was stored, else succeeded."""
    counts = dict(
        db.execute(
            d.sql("SELECT state, COUNT(*) FROM job_items WHERE job_id = ? GROUP BY state"),
            (job_id,),
        ).fetchall()
    )
    if counts.get(QUEUED, 0) or counts.get(RUNNING, 0):
        return False
    status = FAILED if counts.get(FAILED, 0) and not counts.get(DONE, 0) else SUCCEEDED
    cur = db.execute(
        d.sql("UPDATE jobs SET status = ?, finished_at = ? WHERE id = ? AND status IN (?, ?)"),
        (status, now, job_id, *ACTIVE),
    )
    return bool(cur.rowcount)


def settle(
    db: Executor,
    d: Dialect,
    refs: Sequence[ItemRef],
    now: float,
    error: tuple[str, str] | None,
    *,
    locking: bool,
) -> list[str]:
    """Mark items done (or failed with `error`) while their worker holds them; jobs finished.

    Raises ItemLost if any item is no longer its worker's: the caller's transaction (with the
    documents it stores) must roll back.
    """
    finished: list[str] = []
    for job_id in sorted({r.job_id for r in refs}):  # one lock order for every worker
        _lock_job(db, d, job_id, locking=locking)
        for ref in (r for r in refs if r.job_id == job_id):
            state = FAILED if error else DONE
            if not _settle(db, d, job_id, ref.position, state, now, error, ref.owner):
                raise ItemLost(f"item {ref.position} of job {job_id} is no longer held")
        db.execute(d.sql("UPDATE jobs SET progress_at = ? WHERE id = ?"), (now, job_id))
        if _finish_if_over(db, d, job_id, now):
            finished.append(job_id)
    return finished


def depth(db: Executor, d: Dialect) -> dict[str, float]:
    """Items and jobs queued and running over every tenant, and `progress_at` (for metrics).

    `progress_at`: when an item of an active job last finished, or the newest active job was
    queued if later (0 with no active job): the stall alert fires when it stops moving.
    """
    out: dict[str, float] = {f"{kind}_{s}": 0.0 for kind in ("items", "jobs") for s in ACTIVE}
    row = db.execute(
        d.sql(
            "SELECT MAX(COALESCE(progress_at, created_at)), MAX(created_at) FROM jobs"
            " WHERE status IN (?, ?)"
        ),
        ACTIVE,
    ).fetchone()
    out["progress_at"] = max(float(row[0] or 0), float(row[1] or 0)) if row else 0.0
    for state, count in db.execute(
        d.sql("SELECT status, COUNT(*) FROM jobs WHERE status IN (?, ?) GROUP BY status"), ACTIVE
    ).fetchall():
        out[f"jobs_{state}"] = int(count)
    for state, count in db.execute(
        d.sql(
            "SELECT i.state, COUNT(*) FROM job_items i JOIN jobs j ON j.id = i.job_id"
            " WHERE j.status IN (?, ?) AND i.state IN (?, ?) GROUP BY i.state"
        ),
        (*ACTIVE, *ACTIVE),
    ).fetchall():
        out[f"items_{state}"] = int(count)
    return out
