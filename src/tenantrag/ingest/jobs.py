"""Background ingestion: queue a job of documents, and the worker that stores them.

`queue_job` turns a request's documents into a job in the store (each item holds its document,
so the request may return 202 at once and nothing is lost if a process dies). `JobWorker`
threads claim items a few at a time (the tenants taking turns, backends/store/jobs.py), embed
each document while yielding to queries, and store the batch in one transaction that also
marks its items done, so a document is stored once per item whatever crashes where:

- killed before the commit: nothing of the batch is stored; its leases run out and another
  worker (or this one, restarted) takes the items again;
- killed after it: the items are done, and never taken again;
- an item taken again whose document is already stored with the same content hash (the same
  document queued twice) is marked done without storing it again.

A document that cannot be stored (nothing to index, over the tenant's quota, an id held above
the writer's clearance) fails alone, with its error's code and message; the job goes on. A
failure of ours (the store unreachable, the disk full) fails no document: the batch is left to
its leases and retried.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog

from tenantrag.backends.priority import QueryPriority
from tenantrag.backends.store import ChangeRecords, NewDocument, Store
from tenantrag.backends.store.jobs import (
    ClaimedItem,
    ItemLost,
    ItemRef,
    Job,
    NewJob,
    NewJobItem,
    new_job_id,
)
from tenantrag.errors import TenantRagError, ValidationFailed
from tenantrag.ingest.service import DocumentInput, Ingestor, IngestResult
from tenantrag.models import Classification, DetailValue, Tenant, TenantStatus
from tenantrag.observability import metrics

log = structlog.get_logger("tenantrag.jobs")

# Makes the records of one job write: (an item of the batch, its results, seconds spent).
JobRecordsFor = Callable[[ClaimedItem, list[IngestResult], float], ChangeRecords]


def payload_of(doc: DocumentInput) -> dict[str, Any]:
    """A document as a job item holds it (and hashes it): JSON, every field kept."""
    return {
        "text": doc.text,
        "title": doc.title,
        "classification": None if doc.classification is None else doc.classification.label,
        "metadata": dict(doc.metadata),
        "source": doc.source,
    }


def document_of(payload: dict[str, Any] | Any) -> DocumentInput:
    """The document a job item holds."""
    level = payload.get("classification")
    return DocumentInput(
        text=str(payload["text"]),
        title=payload.get("title"),
        classification=Classification.parse(level) if level else None,
        metadata=dict(payload.get("metadata") or {}),
        source=str(payload.get("source") or "api"),
    )


def queue_job(
    store: Store,
    tenant_id: str,
    documents: Sequence[DocumentInput],
    *,
    user_id: str,
    request_id: str,
    clearance: Classification,
    records: ChangeRecords | None,
    detail: dict[str, DetailValue] | None = None,
    job_id: str | None = None,
) -> Job:
    """Queue `documents` as one job (ids given now: a retried item keeps its id); the job.

    ValidationFailed when two documents share an id, as the synchronous form refuses.
    """
    ids = [d.id or uuid.uuid4().hex for d in documents]
    if len(set(ids)) != len(ids):
        raise ValidationFailed("Two documents in the batch share an id; send each id once.")
    items = [NewJobItem(i, payload_of(d)) for i, d in zip(ids, documents, strict=True)]
    job = NewJob(
        tenant_id, user_id, request_id, clearance, items, detail or {}, job_id or new_job_id()
    )
    created = store.create_job(job, records)
    metrics.JOBS_CREATED.inc()
    return created


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker runs (settings.JobSettings)."""

    concurrency: int = 1
    batch: int = 8
    lease_s: float = 60.0
    poll_s: float = 0.5
    yield_max_s: float = 0.25
    nice: int = 10  # each worker thread's CPU priority below the serving threads' (Linux)
    # A tenant's indexes are brought up to date at most this often while its job runs, and
    # when the worker runs out of work: each refresh rewrites the tenant's vector snapshot,
    # which per batch made a 5,000-document job quadratic. Searches replay what is missing.
    index_every_s: float = 5.0


class JobWorker:
    """Threads that run queued jobs until `stop`; `run_once` does one batch (tests, CLI)."""

    def __init__(
        self,
        store: Store,
        ingestor: Ingestor,
        records_for: JobRecordsFor,
        options: WorkerOptions | None = None,
        *,
        priority: QueryPriority | None = None,
        name: str | None = None,
    ) -> None:
        self.store, self.ingestor, self.records_for = store, ingestor, records_for
        self.options = options or WorkerOptions()
        self.priority = priority
        self.name = name or f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._unindexed: dict[str, float] = {}  # tenant -> when its first unindexed write was
        self._index_lock = threading.Lock()

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start `concurrency` daemon threads."""
        for n in range(self.options.concurrency):
            thread = threading.Thread(
                target=self._loop, args=(f"{self.name}/{n}",), name=f"job-worker-{n}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        log.info("job_worker_started", worker=self.name, concurrency=self.options.concurrency)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop; a batch still embedding is left to its leases (retaken later, not lost)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        self._threads.clear()

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called."""
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        """Whether the threads were started and not told to stop."""
        return bool(self._threads) and not self._stop.is_set()

    def _loop(self, owner: str) -> None:
        _lower_thread_priority(self.options.nice)
        while not self._stop.is_set():
            try:
                worked = self.run_once(owner)
            except Exception as exc:  # the store is down, say: wait and try again
                log.error("job_batch_failed", worker=owner, error=type(exc).__name__)
                worked = 0
            if not worked:
                self._stop.wait(self.options.poll_s)

    def run_once(self, owner: str | None = None) -> int:
        """Claim and run one batch; how many items it held (0: nothing to do)."""
        owner = owner or self.name
        items, finished = self.store.claim_job_items(
            owner, limit=self.options.batch, lease_s=self.options.lease_s
        )
        self._finished(finished)
        if items:
            self._run(items)
        self._index(everything=not items)
        return len(items)

    def _index(self, *, everything: bool) -> None:
        """Refresh the indexes of tenants written to: those due, or all when idle."""
        now = time.monotonic()
        with self._index_lock:
            due = [
                t
                for t, since in self._unindexed.items()
                if everything or now - since >= self.options.index_every_s
            ]
            for tenant_id in due:
                del self._unindexed[tenant_id]
        for tenant_id in due:
            try:
                self.ingestor.refresh(tenant_id, 0)
            except Exception as exc:  # durable already: the next search replays the change
                log.error("index_update_deferred", tenant_id=tenant_id, error=type(exc).__name__)

    # -- one batch (one job, one tenant) ----------------------------------------------------------

    def _run(self, items: list[ClaimedItem]) -> None:
        started = time.perf_counter()
        tenant = self.store.get_tenant(items[0].tenant_id)
        if tenant is None or tenant.status is not TenantStatus.ACTIVE:
            why = "The tenant is suspended or gone; its documents are not stored."
            self._fail(items, "tenant_unavailable", why)
            return
        stored = self.store.document_hashes(tenant.id, [i.document_id for i in items])
        unchanged = [i for i in items if stored.get(i.document_id) == i.content_hash]
        if unchanged:  # already stored from this very content: done, not stored twice
            self._settle([i.ref for i in unchanged], None, "unchanged")
        todo = [i for i in items if stored.get(i.document_id) != i.content_hash]
        lease = _Lease(self.store, [i.ref for i in todo], self.options.lease_s)
        ready: list[tuple[ClaimedItem, NewDocument, IngestResult]] = []
        for item in todo:
            try:
                doc, result = self.ingestor.embed_document(
                    tenant,
                    item.document_id,
                    document_of(item.payload),
                    between=partial_yield(self, lease),
                    content_hash=item.content_hash,
                )
            except TenantRagError as exc:
                if exc.status_code >= 500:
                    raise
                self._fail([item], exc.code, exc.message)
                continue
            except _Stopping:
                log.info("job_batch_left", job_id=item.job_id, reason="worker stopping")
                return
            ready.append((item, doc, result))
        if ready and not self._store(tenant, ready, started):
            for one in ready:  # a quota, a conflict or a lost item: each on its own
                self._store(tenant, [one], started)

    def _store(
        self,
        tenant: Tenant,
        ready: list[tuple[ClaimedItem, NewDocument, IngestResult]],
        started: float,
    ) -> bool:
        """Store documents and mark their items done in one transaction; False to retry singly."""
        first = ready[0][0]
        results = [r for _, _, r in ready]
        records = replace(
            self.records_for(first, results, time.perf_counter() - started),
            job_items=[i.ref for i, _, _ in ready],
            on_jobs_finished=self._finished,
        )
        try:
            self.ingestor.store_documents(
                tenant,
                [d for _, d, _ in ready],
                records,
                max_classification=first.clearance,
                index=False,
            )
        except ItemLost:
            if len(ready) > 1:
                return False
            log.info("job_item_lost", job_id=first.job_id, position=first.position)
            return True
        except TenantRagError as exc:
            if exc.status_code >= 500:  # the store down, the disk full: retried, not failed
                raise
            if len(ready) > 1:
                return False
            self._fail([first], exc.code, exc.message)
            return True
        metrics.JOB_DOCUMENTS.labels(outcome="done").inc(len(ready))
        with self._index_lock:
            self._unindexed.setdefault(tenant.id, time.monotonic())
        return True

    def _fail(self, items: Sequence[ClaimedItem], code: str, message: str) -> None:
        for item in items:
            self._settle([item.ref], (code, message[:500]), "failed")

    def _settle(self, refs: list[ItemRef], error: tuple[str, str] | None, outcome: str) -> None:
        try:
            finished = self.store.settle_job_items(refs, error)
        except ItemLost:
            return  # cancelled, or retaken after our lease ran out: theirs now
        metrics.JOB_DOCUMENTS.labels(outcome=outcome).inc(len(refs))
        self._finished(finished)

    def _finished(self, job_ids: list[str]) -> None:
        """Jobs that a transaction of this worker closed: count their duration, once each."""
        now = time.time()
        for job_id in job_ids:
            metrics.JOBS_FINISHED.inc()
            created = int(job_id[:12], 16) / 1000  # ids begin with their creation time in ms
            metrics.JOB_DURATION.observe(max(0.0, now - created))
            log.info("job_finished", job_id=job_id)


class _Stopping(Exception):
    """The worker was told to stop mid-batch (a long document would hold up the shutdown)."""


class _Lease:
    """Renews a batch's leases while it is embedded, a third of the way into each lease."""

    def __init__(self, store: Store, refs: list[ItemRef], lease_s: float) -> None:
        self.store, self.refs, self.lease_s = store, refs, lease_s
        self.renewed = time.monotonic()

    def keep(self) -> None:
        if time.monotonic() - self.renewed > self.lease_s / 3:
            self.store.renew_job_items(self.refs, lease_s=self.lease_s)
            self.renewed = time.monotonic()


def partial_yield(worker: JobWorker, lease: _Lease) -> Callable[[], None]:
    """What runs before each text is embedded: queries first, then the lease."""

    def between() -> None:
        if worker.stopping:  # shutting down: leave the batch to its leases, store none of it
            raise _Stopping
        if worker.priority is not None and worker.options.yield_max_s > 0:
            waited = worker.priority.yield_to_queries(worker.options.yield_max_s)
            if waited > 0.001:
                metrics.JOB_YIELD_SECONDS.inc(waited)
        lease.keep()

    return between


def _lower_thread_priority(nice: int) -> None:
    """Lower this thread's CPU priority (Linux schedules threads apart); elsewhere, nothing."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError:  # not permitted: the bounded yield to queries still applies
        log.warning("job_worker_priority_unchanged")


def publish_depth(store: Store) -> None:
    """Set the queue depth gauges from the store (every serving node and worker does)."""
    depth = store.job_depth()
    for state in ("queued", "running"):
        metrics.JOB_QUEUE_ITEMS.labels(state=state).set(depth.get(f"items_{state}", 0))
        metrics.JOBS_ACTIVE.labels(status=state).set(depth.get(f"jobs_{state}", 0))
    metrics.JOB_PROGRESS.set(depth.get("progress_at", 0.0))
