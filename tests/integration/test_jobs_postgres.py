"""Distributed mode: two workers (as on two nodes) share one PostgreSQL queue.

Each has two threads; they claim with FOR UPDATE SKIP LOCKED and store batches that mark their
items done in the same transaction. Two tenants' jobs both finish, every document stored once.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg
import pytest
from tests.api.conftest import embedder
from tests.contract.conftest import migrated_schema

from tenantrag.backends import Embedder
from tenantrag.backends.store import Store, store_at
from tenantrag.ingest.jobs import JobWorker, WorkerOptions, queue_job
from tenantrag.ingest.service import DocumentInput
from tenantrag.metering import CostRecorder
from tenantrag.models import Classification, Tenant
from tenantrag.services import build_corpus, job_records
from tenantrag.settings import Settings

__all__ = ["embedder"]  # the session's model, re-exported as a fixture
pytestmark = pytest.mark.postgres


def node(
    url: str, data: Path, model: Embedder, model_dir: Path
) -> tuple[Store, JobWorker, CostRecorder]:
    """One node's store and a worker of two threads, three documents a batch.

    `model_dir` is the session's export (tests/conftest.py): without it each node would export
    the model again into its own data folder (torch and about 10 s per run).
    """
    settings = Settings(database_url=url, data_dir=data, redis_url=None, model_dir=model_dir.parent)
    store = store_at(url)
    store.open()
    corpus = build_corpus(settings, store, model, follow=False)
    costs = CostRecorder(store)
    options = WorkerOptions(concurrency=2, batch=3, lease_s=30, poll_s=0.05, nice=0)
    worker = JobWorker(store, corpus.ingestor, job_records(settings, costs), options)
    return store, worker, costs


def docs(prefix: str, n: int) -> list[DocumentInput]:
    return [
        DocumentInput(text=f"Record {prefix}{i}: a short note.", id=f"{prefix}{i}")
        for i in range(n)
    ]


def test_two_workers_on_one_postgres_queue_store_each_document_once(
    postgres_database: str, embedder: Embedder, model_dir: Path, tmp_path: Path
) -> None:
    """Both jobs succeed; one document row and one change log entry per document id."""
    with migrated_schema(postgres_database) as url:
        store, first, costs_a = node(url, tmp_path / "a", embedder, model_dir)
        other, second, costs_b = node(url, tmp_path / "b", embedder, model_dir)
        store.create_tenant(Tenant(id="acme"))
        store.create_tenant(Tenant(id="globex"))
        jobs = [
            queue_job(
                store,
                tenant,
                docs(tenant[0], n),
                user_id="u",
                request_id=uuid.uuid4().hex,
                clearance=Classification.INTERNAL,
                records=None,
            )
            for tenant, n in (("acme", 24), ("globex", 5))
        ]
        first.start()
        second.start()
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if all(store.get_job(j.tenant_id, j.id).finished for j in jobs):
                    break
                time.sleep(0.1)
        finally:
            first.stop()
            second.stop()
            costs_a.flush()
            costs_b.flush()
        for job in jobs:
            over = store.get_job(job.tenant_id, job.id)
            assert (over.status, over.done, over.failed) == ("succeeded", job.total, 0)
        with psycopg.connect(url) as conn:
            changes = conn.execute(
                "SELECT tenant_id, document_id, COUNT(*) FROM changes WHERE kind = 'document'"
                " GROUP BY tenant_id, document_id"
            ).fetchall()
        assert len(changes) == 29 and {c[2] for c in changes} == {1}
        assert store.usage("acme").documents == 24 and store.usage("globex").documents == 5
        store.close()
        other.close()
