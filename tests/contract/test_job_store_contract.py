"""The background ingestion queue's part of the Store contract, on SQLite and real PostgreSQL.

Jobs are queued with their documents and audit record, claimed under a lease with the tenants
taking turns, marked done in the transaction that stores their document (never twice), and
cancelled; another tenant's job is not found. (Kept apart from test_store_contract.py only so
parallel work on that file does not collide; it is the same contract, run on both stores.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from tests.contract.test_store_contract import ACME, GLOBEX, doc

from tenantrag.backends.store import ChangeRecords, NewDocument, Store, store_at
from tenantrag.backends.store.jobs import (
    ItemLost,
    NewJob,
    NewJobItem,
)
from tenantrag.errors import NotFound
from tenantrag.models import AuditEvent, Classification, RequestIds, Tenant


def new_job(tenant: str, *ids: str, user: str = "u1") -> NewJob:
    items = [NewJobItem(i, {"id": i, "text": f"text of {i}"}) for i in ids]
    return NewJob(tenant, user, "req-1", Classification.INTERNAL, items, {"source": "api"})


def records(tenant: str, action: str, *ids: str) -> ChangeRecords:
    return ChangeRecords(AuditEvent(action, "success", tenant, "u1", RequestIds("r1"), ids))


def stored(tenant: str, doc_id: str, digest: str) -> NewDocument:
    d = doc(tenant, doc_id, "body")
    return NewDocument(d.id, d.title, d.chunks, d.embeddings, content_hash=digest)


class JobsContract:
    """Subclass with a `url` fixture."""

    @pytest.fixture
    def store(self, url: str) -> Iterator[Store]:
        store = store_at(url)
        store.open()
        store.create_tenant(Tenant(id=ACME))
        store.create_tenant(Tenant(id=GLOBEX))
        yield store
        store.close()

    def test_a_job_is_queued_with_its_audit_record(self, store: Store) -> None:
        """The job comes back queued with its totals; its record is in the tenant's chain."""
        job = store.create_job(new_job(ACME, "a", "b"), records(ACME, "job_create"))
        assert (job.status, job.total, job.done, job.failed, job.errors) == ("queued", 2, 0, 0, ())
        assert job.detail == {"source": "api"} and job.finished_at is None
        assert store.get_job(ACME, job.id) == job
        actions = [r["action"] for r in store.audit_records(ACME, limit=10)]
        assert actions[0] == "job_create"

    def test_another_tenants_job_is_not_found(self, store: Store) -> None:
        """Read, list and cancel: another tenant's job is NotFound, exactly like no job."""
        job = store.create_job(new_job(ACME, "a"))
        with pytest.raises(NotFound) as theirs:
            store.get_job(GLOBEX, job.id)
        with pytest.raises(NotFound) as nobody:
            store.get_job(GLOBEX, "no-such-job")
        assert theirs.value.message == nobody.value.message
        with pytest.raises(NotFound):
            store.cancel_job(GLOBEX, job.id)
        assert store.list_jobs(GLOBEX, limit=10) == []
        assert store.get_job(ACME, job.id).status == "queued"

    def test_jobs_list_newest_first_by_page_and_status(self, store: Store) -> None:
        """Pages follow `before`; a status filter keeps only that status."""
        ids = []
        for n in range(3):
            ids.append(store.create_job(new_job(ACME, f"d{n}")).id)
            time.sleep(0.002)  # ids sort by creation time, to the millisecond
        page = store.list_jobs(ACME, limit=2)
        assert [j.id for j in page] == [ids[2], ids[1]]
        rest = store.list_jobs(ACME, limit=2, before=page[-1].id)
        assert [j.id for j in rest] == [ids[0]]
        store.cancel_job(ACME, ids[1])
        assert [j.id for j in store.list_jobs(ACME, limit=9, status="cancelled")] == [ids[1]]

    def test_items_are_claimed_stored_once_and_the_job_finishes(self, store: Store) -> None:
        """Done in the storing transaction; a second store of a done item rolls back whole."""
        job = store.create_job(new_job(ACME, "a", "b"))
        items, _ = store.claim_job_items("w1", limit=5, lease_s=30)
        assert [(i.document_id, i.attempts, i.owner) for i in items] == [
            ("a", 1, "w1"),
            ("b", 1, "w1"),
        ]
        assert store.get_job(ACME, job.id).status == "running"
        assert store.claim_job_items("w2", limit=5, lease_s=30) == ([], [])
        finished: list[str] = []
        acme = store.get_tenant(ACME)
        assert acme is not None
        first = ChangeRecords(
            records(ACME, "ingest", "a").audit,
            job_items=[items[0].ref],
            on_jobs_finished=finished.extend,
        )
        store.put_documents(acme, [stored(ACME, "a", items[0].content_hash)], first)
        assert store.document_hashes(ACME, ["a", "b"]) == {"a": items[0].content_hash}
        seq = store.latest_seq(ACME)
        with pytest.raises(ItemLost):  # the same item again: nothing written, not even a seq
            store.put_documents(acme, [stored(ACME, "a", "x")], first)
        assert store.latest_seq(ACME) == seq
        assert store.document_hashes(ACME, ["a"]) == {"a": items[0].content_hash}
        assert finished == []
        store.settle_job_items([items[1].ref], ("validation_error", "no text to index"))
        done = store.get_job(ACME, job.id)
        assert (done.status, done.done, done.failed) == ("succeeded", 1, 1)
        assert [(e.id, e.code) for e in done.errors] == [("b", "validation_error")]
        assert done.finished_at is not None

    def test_a_job_whose_every_document_failed_has_failed(self, store: Store) -> None:
        """No document stored: the job's status is failed, with every error listed."""
        job = store.create_job(new_job(ACME, "a"))
        items, _ = store.claim_job_items("w1", limit=5, lease_s=30)
        assert store.settle_job_items([items[0].ref], ("quota_exceeded", "over")) == [job.id]
        assert store.get_job(ACME, job.id).status == "failed"

    def test_an_expired_lease_is_taken_over_and_the_old_worker_is_refused(
        self, store: Store
    ) -> None:
        """A dead worker's item goes to the next claimer; the late first worker writes nothing."""
        store.create_job(new_job(ACME, "a"))
        (old,), _ = store.claim_job_items("w1", limit=1, lease_s=0.05)
        time.sleep(0.1)
        (new,), _ = store.claim_job_items("w2", limit=1, lease_s=30)
        assert (new.document_id, new.attempts) == ("a", 2)
        assert store.renew_job_items([old.ref], lease_s=30) == 0
        assert store.renew_job_items([new.ref], lease_s=30) == 1
        with pytest.raises(ItemLost):
            store.settle_job_items([old.ref], ("x", "y"))
        assert store.settle_job_items([new.ref]) != []

    def test_an_item_that_kills_every_worker_fails_after_three_tries(self, store: Store) -> None:
        """After MAX_ATTEMPTS claims the item fails as worker_lost and the job ends."""
        job = store.create_job(new_job(ACME, "a"))
        for _ in range(3):
            store.claim_job_items("w", limit=1, lease_s=0.01)
            time.sleep(0.03)
        items, finished = store.claim_job_items("w", limit=1, lease_s=30)
        assert (items, finished) == ([], [job.id])
        failed = store.get_job(ACME, job.id)
        assert failed.status == "failed" and failed.errors[0].code == "worker_lost"

    def test_tenants_take_turns(self, store: Store) -> None:
        """A big job of one tenant and a small one of another are claimed in alternation."""
        store.create_job(new_job(ACME, *[f"a{n}" for n in range(20)]))
        store.create_job(new_job(GLOBEX, "g0", "g1"))
        order = []
        for _ in range(4):
            items, _ = store.claim_job_items("w", limit=1, lease_s=30)
            order.append(items[0].tenant_id)
        assert order[:2] in ([ACME, GLOBEX], [GLOBEX, ACME])
        assert sorted(order) == [ACME, ACME, GLOBEX, GLOBEX]

    def test_cancel_stops_queued_and_running_items(self, store: Store) -> None:
        """After cancel, a running item's worker can store nothing; done documents stay."""
        job = store.create_job(new_job(ACME, "a", "b", "c"))
        items, _ = store.claim_job_items("w1", limit=2, lease_s=30)
        store.settle_job_items([items[0].ref])
        cancelled = store.cancel_job(ACME, job.id, records(ACME, "job_cancel", job.id))
        assert (cancelled.status, cancelled.done) == ("cancelled", 1)
        acme = store.get_tenant(ACME)
        assert acme is not None
        late = ChangeRecords(records(ACME, "ingest").audit, job_items=[items[1].ref])
        with pytest.raises(ItemLost):
            store.put_documents(acme, [stored(ACME, "b", items[1].content_hash)], late)
        with pytest.raises(NotFound):
            store.get_document(ACME, "b")
        assert store.claim_job_items("w1", limit=5, lease_s=30) == ([], [])
        again = store.cancel_job(ACME, job.id)  # over already: unchanged
        assert again.status == "cancelled" and again.finished_at == cancelled.finished_at

    def test_depth_counts_active_work(self, store: Store) -> None:
        """Queue depth: items and jobs queued and running, over every tenant."""
        assert store.job_depth()["progress_at"] == 0  # nothing active
        store.create_job(new_job(ACME, "a", "b"))
        queued = store.create_job(new_job(GLOBEX, "c"))
        assert store.job_depth()["progress_at"] == queued.created_at
        (item,), _ = store.claim_job_items("w", limit=1, lease_s=30)
        depth = store.job_depth()
        assert depth["items_running"] == 1 and depth["items_queued"] == 2
        assert depth["jobs_running"] == 1 and depth["jobs_queued"] == 1
        assert depth["progress_at"] == queued.created_at  # a claim is not progress
        # progress_at is wall time by design (the stall alert compares it with time()), and this
        # machine's clock steps back by up to 12 ms now and then: the sleep outlasts a step.
        time.sleep(0.1)
        store.settle_job_items([item.ref])
        assert store.job_depth()["progress_at"] > queued.created_at  # a settled item is

    def test_concurrent_claimers_never_share_an_item(self, store: Store) -> None:
        """Four threads claiming at once get disjoint items covering the whole job."""
        store.create_job(new_job(ACME, *[f"d{n}" for n in range(40)]))
        taken: list[tuple[str, int]] = []
        lock = threading.Lock()

        def claimer(name: str) -> None:
            while True:
                items, _ = store.claim_job_items(name, limit=3, lease_s=30)
                if not items:
                    return
                with lock:
                    taken.extend((i.job_id, i.position) for i in items)

        threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(taken) == 40 and len(set(taken)) == 40


class TestSQLiteJobs(JobsContract):
    """The SQLite store's queue."""

    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url


@pytest.mark.postgres
class TestPostgresJobs(JobsContract):
    """The PostgreSQL store's queue."""

    @pytest.fixture
    def url(self, postgres_url: str) -> str:
        return postgres_url
