"""The behaviour every Store has, run against SQLite and the real PostgreSQL: tenants, documents,
chunks and embeddings, the change log, and the audit chain with the records a change commits;
document-level authorization (the caller's clearance as a ceiling), the bytes the storage quota
counts, and the tenant's auto-classification policy.

(The cost ledger's part is test_ledger_contract.py.) A new table (jobs, API keys) adds its
tests to `StoreContract`, so both stores keep them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import psycopg
import pytest
from tests.contract.identity_contract import IdentityContract

from tenantrag.backends.ledger import CostEvent, CostType, StoragePricing
from tenantrag.backends.store import (
    ChangeRecords,
    CorpusReader,
    NewDocument,
    Store,
    metadata_json,
    store_at,
)
from tenantrag.backends.store.extras import Feedback, FeedbackCounts, SecurityEntry
from tenantrag.backends.store.postgres import PostgresStore
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.errors import Conflict, NotFound, QuotaExceeded
from tenantrag.models import (
    AuditEvent,
    AutoClassify,
    Chunk,
    Classification,
    Metadata,
    RequestIds,
    Tenant,
    TenantStatus,
)
from tenantrag.observability.audit import verify_records

ACME, GLOBEX = "acme", "globex"


PUBLIC, INTERNAL = Classification.PUBLIC, Classification.INTERNAL
CONFIDENTIAL, RESTRICTED = Classification.CONFIDENTIAL, Classification.RESTRICTED


def doc(
    tenant: str, doc_id: str, *texts: str, level: int = 1, metadata: Metadata | None = None
) -> NewDocument:
    """A document with one chunk per text and distinct embeddings."""
    texts = texts or ("text",)
    meta = dict(metadata or {})
    chunks = [
        Chunk(
            tenant,
            doc_id,
            i,
            t,
            title=f"T {doc_id}",
            classification=Classification(level),
            metadata=meta,
        )
        for i, t in enumerate(texts)
    ]
    vectors = np.arange(len(texts) * 4, dtype=np.float32).reshape(len(texts), 4) + 0.5
    return NewDocument(doc_id, f"T {doc_id}", chunks, vectors, Classification(level), metadata=meta)


def store_iter(url: str) -> list[tuple[dict[str, Any] | str, str | None]]:
    """The whole chain of the store at `url`."""
    store = store_at(url)
    store.open()
    try:
        return list(store.iter_audit())
    finally:
        store.close()


def audited(action: str, tenant: str, *ids: str) -> ChangeRecords:
    return ChangeRecords(AuditEvent(action, "success", tenant, "u1", RequestIds("r1"), ids))


class StoreContract(IdentityContract):
    """Subclass with a `url` fixture."""

    @pytest.fixture
    def store(self, url: str) -> Iterator[Store]:
        store = store_at(url, pricing=StoragePricing(0.10, 3600))
        store.open()
        store.create_tenant(Tenant(id=ACME, document_quota=3, storage_quota_bytes=1000))
        store.create_tenant(Tenant(id=GLOBEX))
        yield store
        store.close()

    def tenant(self, store: Store, tenant_id: str) -> Tenant:
        found = store.get_tenant(tenant_id)
        assert found is not None
        return found

    def execute(self, store: Store, sql: str) -> None:
        """Run `sql` on the store's own database, past every check of the code."""
        raise NotImplementedError

    # -- tenants

    def test_tenants_are_created_listed_suspended_and_updated(self, store: Store) -> None:
        """A tenant is stored with its limits; a duplicate id is refused; unknown ids are 404."""
        assert [t.id for t in store.list_tenants()] == [ACME, GLOBEX]
        with pytest.raises(ValueError, match="exists"):
            store.create_tenant(Tenant(id=ACME))
        store.set_tenant_status(ACME, TenantStatus.SUSPENDED)
        store.update_tenant(ACME, rate_limit=7, redact_search_pii=True)
        acme = self.tenant(store, ACME)
        assert (acme.active, acme.rate_limit, acme.redact_search_pii) == (False, 7, True)
        assert store.get_tenant("nobody") is None
        with pytest.raises(NotFound):
            store.set_tenant_status("nobody", TenantStatus.ACTIVE)
        with pytest.raises(ValueError):
            store.update_tenant(ACME, id="other")

    # -- documents, chunks, embeddings

    def test_documents_and_embeddings_round_trip(self, store: Store) -> None:
        """Chunks come back in order with their exact embeddings; a replace keeps created_at."""
        acme = self.tenant(store, ACME)
        original = doc(ACME, "a", "first", "second")
        store.put_documents(acme, [original])
        created = store.get_document(ACME, "a").created_at
        chunks, vectors = store.chunks_of_documents(ACME, ["a"])
        assert [c.text for c in chunks] == ["first", "second"]
        assert np.array_equal(vectors, original.embeddings)
        assert len({c.rowid for c in chunks}) == 2
        store.put_documents(acme, [doc(ACME, "a", "only")])
        stored = store.get_document(ACME, "a")
        assert (stored.chunks, stored.created_at) == (1, created)
        assert store.usage(ACME).documents == 1

    def test_another_tenants_documents_are_not_found(self, store: Store) -> None:
        """GLOBEX's document is absent for ACME in every read."""
        store.put_documents(self.tenant(store, GLOBEX), [doc(GLOBEX, "g", "secret")])
        with pytest.raises(NotFound):
            store.get_document(ACME, "g")
        assert store.list_documents(ACME, limit=10) == []
        assert store.chunks_of_documents(ACME, ["g"])[0] == []
        with pytest.raises(NotFound):
            store.delete_document(ACME, "g")

    def test_list_pages_in_bytewise_id_order(self, store: Store) -> None:
        """Ids sort bytewise (upper case before lower), so cursors page alike in both stores."""
        globex = self.tenant(store, GLOBEX)
        store.put_documents(globex, [doc(GLOBEX, i) for i in ("b", "B", "a", "_x", "A1")])
        first = store.list_documents(GLOBEX, limit=3)
        rest = store.list_documents(GLOBEX, limit=3, after=first[-1].id)
        assert [d.id for d in first + rest] == sorted(["b", "B", "a", "_x", "A1"])

    def test_quotas_count_replacements_once_and_refuse_atomically(self, store: Store) -> None:
        """A replacement does not count twice; a batch over quota stores nothing of itself."""
        acme = self.tenant(store, ACME)
        store.put_documents(acme, [doc(ACME, i) for i in "abc"])
        store.put_documents(acme, [doc(ACME, "a", "replaced")])
        with pytest.raises(QuotaExceeded):
            store.put_documents(acme, [doc(ACME, "b", "xx"), doc(ACME, "d")])
        assert store.usage(ACME).documents == 3
        assert store.get_document(ACME, "b").bytes == doc(ACME, "b").stored_bytes

    def test_usage_and_the_storage_quota_count_the_bytes_stored(self, store: Store) -> None:
        """`NewDocument.stored_bytes` (rows, metadata once per chunk, float32 embeddings) is what
        a document's bytes, the tenant's usage and its storage quota count, in both stores."""
        acme = self.tenant(store, ACME)  # a storage quota of 1,000 bytes
        meta: Metadata = {"team": "red", "n": 2}
        first = doc(ACME, "a", "first", "second", metadata=meta)
        store.put_documents(acme, [first])
        assert first.stored_bytes >= len("firstsecond") + 3 * len(metadata_json(meta)) + 2 * 16
        assert store.get_document(ACME, "a").bytes == first.stored_bytes
        assert store.usage(ACME).bytes == first.stored_bytes
        big = doc(ACME, "a", "y" * 600)  # 600 bytes of text and more: counted once when replaced
        store.put_documents(acme, [big])
        store.put_documents(acme, [big])
        assert store.usage(ACME).bytes == big.stored_bytes
        with pytest.raises(QuotaExceeded, match="Storage quota"):
            store.put_documents(acme, [doc(ACME, "b", "z" * 400)])
        assert store.usage(ACME).bytes == big.stored_bytes

    # -- document-level authorization: the caller's clearance as a ceiling

    def ladder(self, store: Store) -> Tenant:
        """GLOBEX holds one document per level, ids not in level order: a3 b0 c2 d1."""
        globex = self.tenant(store, GLOBEX)
        ladder = [doc(GLOBEX, doc_id, level=int(doc_id[1])) for doc_id in ("a3", "b0", "c2", "d1")]
        store.put_documents(globex, ladder)
        return globex

    def test_get_and_list_stop_at_the_ceiling(self, store: Store) -> None:
        """Above the ceiling a document is NotFound, and left out of a list before its limit."""
        self.ladder(store)
        assert store.get_document(GLOBEX, "d1", max_classification=INTERNAL).id == "d1"
        with pytest.raises(NotFound) as hidden:
            store.get_document(GLOBEX, "c2", max_classification=INTERNAL)
        with pytest.raises(NotFound) as absent:
            store.get_document(GLOBEX, "zz", max_classification=INTERNAL)
        assert str(hidden.value).replace("c2", "zz") == str(absent.value)
        first = store.list_documents(GLOBEX, limit=1, max_classification=INTERNAL)
        rest = store.list_documents(GLOBEX, limit=5, after="b0", max_classification=INTERNAL)
        assert [d.id for d in first + rest] == ["b0", "d1"]
        page = store.list_documents(GLOBEX, limit=2, max_classification=INTERNAL)
        assert [d.id for d in page] == ["b0", "d1"]  # not a3 and b0, then a short page
        assert [d.id for d in store.list_documents(GLOBEX, limit=9)] == ["a3", "b0", "c2", "d1"]

    def test_a_delete_above_the_ceiling_is_not_found_and_commits_nothing(
        self, store: Store
    ) -> None:
        """The NotFound of an absent id; no change, no audit record; at clearance it goes."""
        self.ladder(store)
        seq, head = store.latest_seq(GLOBEX), store.audit_head()
        with pytest.raises(NotFound, match="No document 'a3'"):
            store.delete_document(
                GLOBEX, "a3", audited("delete", GLOBEX, "a3"), max_classification=CONFIDENTIAL
            )
        assert (store.latest_seq(GLOBEX), store.audit_head()) == (seq, head)
        assert store.get_document(GLOBEX, "a3").classification is RESTRICTED
        store.delete_document(
            GLOBEX, "a3", audited("delete", GLOBEX, "a3"), max_classification=RESTRICTED
        )
        with pytest.raises(NotFound):
            store.get_document(GLOBEX, "a3")
        assert store.audit_head().seq == head.seq + 1

    def test_a_batch_naming_a_hidden_document_is_refused_whole(self, store: Store) -> None:
        """One hidden id refuses the whole batch with Conflict inside its transaction: nothing
        stored, logged, audited or billed, and the message tells nothing of that document."""
        globex = self.ladder(store)
        before, seq, head = (
            store.get_document(GLOBEX, "c2"),
            store.latest_seq(GLOBEX),
            store.audit_head(),
        )
        batch = [doc(GLOBEX, "new"), doc(GLOBEX, "c2", "downgraded", level=0)]
        cost = CostEvent(GLOBEX, CostType.COMPUTE, 1.0)
        records = ChangeRecords(AuditEvent("ingest", "success", GLOBEX, "u1"), costs=[cost])
        with pytest.raises(Conflict, match="'c2' cannot be used") as refused:
            store.put_documents(globex, batch, records, max_classification=INTERNAL)
        assert "T c2" not in str(refused.value) and "confidential" not in str(refused.value)
        assert store.get_document(GLOBEX, "c2") == before
        assert (store.latest_seq(GLOBEX), store.audit_head()) == (seq, head)
        assert store.month_to_date(GLOBEX, now=cost.at).cost_usd == 0
        with pytest.raises(NotFound):
            store.get_document(GLOBEX, "new")
        store.put_documents(globex, [doc(GLOBEX, "d1", "again")], max_classification=INTERNAL)
        store.put_documents(globex, batch, records, max_classification=CONFIDENTIAL)
        assert store.get_document(GLOBEX, "c2").classification is PUBLIC
        # Two committed changes, two records: "d1" (the store's own record) and the batch.
        assert store.audit_head().seq == head.seq + 2

    def test_the_ceiling_never_crosses_tenants(self, store: Store) -> None:
        """ACME writing GLOBEX's ids makes ACME's own documents; GLOBEX's stay as they were."""
        self.ladder(store)
        acme = self.tenant(store, ACME)
        store.put_documents(acme, [doc(ACME, "a3", level=0)], max_classification=PUBLIC)
        assert store.get_document(GLOBEX, "a3").classification is RESTRICTED
        assert store.get_document(ACME, "a3", max_classification=PUBLIC).tenant_id == ACME
        with pytest.raises(NotFound):
            store.get_document(ACME, "c2", max_classification=RESTRICTED)
        with pytest.raises(NotFound):
            store.delete_document(ACME, "c2", max_classification=RESTRICTED)
        listed = store.list_documents(ACME, limit=9, max_classification=RESTRICTED)
        assert [d.id for d in listed] == ["a3"]

    # -- the auto-classification policy

    def test_the_auto_classify_policy_is_stored_checked_and_logged(self, store: Store) -> None:
        """`raise` by default; set at creation or by update (a tenant change nodes follow); only
        a policy's name is taken, by the code and by the column's CHECK below it."""
        assert self.tenant(store, ACME).auto_classify is AutoClassify.RAISE
        store.create_tenant(Tenant(id="initech", auto_classify=AutoClassify.OFF))
        seq = store.changes_after(0, limit=100)[-1].seq
        store.update_tenant(ACME, auto_classify="raise-and-redact")
        assert [(c.tenant_id, c.kind) for c in store.changes_after(seq, limit=9)] == [
            (ACME, "tenant")
        ]
        assert {t.id: t.auto_classify for t in store.list_tenants()} == {
            ACME: AutoClassify.RAISE_AND_REDACT,
            GLOBEX: AutoClassify.RAISE,
            "initech": AutoClassify.OFF,
        }
        with pytest.raises(ValueError, match="'sometimes' is not a valid AutoClassify"):
            store.update_tenant(ACME, auto_classify="sometimes")
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
            self.execute(store, "UPDATE tenants SET auto_classify = 'x' WHERE id = 'acme'")
        assert self.tenant(store, ACME).auto_classify is AutoClassify.RAISE_AND_REDACT

    def test_a_tenant_update_commits_with_its_audit_record(self, store: Store) -> None:
        """Like creation and suspension, an update commits its record or does not happen."""
        before = store.audit_head().seq
        store.update_tenant(ACME, audited("tenant_updated", ACME), rate_limit=9)
        record = store.audit_records(ACME, limit=5)[0]  # newest first
        assert record["action"] == "tenant_updated" and record["seq"] == before + 1
        bad = ChangeRecords(AuditEvent("exfiltrate", "success", ACME, "u1"))
        with pytest.raises(ValueError):
            store.update_tenant(ACME, bad, rate_limit=1, auto_classify="off")
        acme = self.tenant(store, ACME)
        assert (acme.rate_limit, acme.auto_classify) == (9, AutoClassify.RAISE)
        assert store.audit_head().seq == before + 1

    # -- the change log

    def test_every_change_appends_to_the_log_in_order(self, store: Store) -> None:
        """Puts and deletes advance the tenant's seq; tenant changes are logged apart."""
        acme = self.tenant(store, ACME)
        s1 = store.put_documents(acme, [doc(ACME, "a"), doc(ACME, "b")])
        s2 = store.delete_document(ACME, "a")
        assert s2 > s1 and store.latest_seq(ACME) == s2
        assert store.latest_seq(GLOBEX) == 0
        assert store.changed_documents(ACME, 0) == (["a", "b"], s2)
        store.set_tenant_status(ACME, TenantStatus.SUSPENDED)
        assert store.latest_seq(ACME) == s2  # not a corpus change
        log = store.changes_after(0, limit=100)
        assert [c.seq for c in log] == sorted(c.seq for c in log)
        assert [(c.document_id, c.kind) for c in log if c.tenant_id == ACME] == [
            ("", "tenant"),
            ("a", "document"),
            ("b", "document"),
            ("a", "document"),
            ("", "tenant"),
        ]

    # -- the audit chain and the records of a change

    def test_a_change_commits_with_its_audit_record_and_costs(self, store: Store) -> None:
        """The audit record, the costs and the storage accrual commit with the write."""
        acme = self.tenant(store, ACME)
        announced: list[CostEvent] = []
        cost = CostEvent(ACME, CostType.EMBEDDING, 0.5, {"tokens": 3})
        records = ChangeRecords(
            AuditEvent("ingest", "success", ACME, "u1", RequestIds("r1"), ("a",)),
            costs=[cost],
            storage=StoragePricing(),
            on_commit=announced.extend,
        )
        store.put_documents(acme, [doc(ACME, "a")], records)
        record = store.audit_records(ACME, limit=10)[0]
        assert (record["action"], record["resource_ids"]) == ("ingest", ["a"])
        assert (record["user_id"], record["request_id"]) == ("u1", "r1")
        assert announced == [cost]
        assert store.month_to_date(ACME, now=cost.at).cost_usd == pytest.approx(0.5)

    def test_a_change_whose_record_is_refused_is_not_committed(self, store: Store) -> None:
        """A record that cannot be written (an unknown action) rolls the change back."""
        acme = self.tenant(store, ACME)
        bad = ChangeRecords(AuditEvent("exfiltrate", "success", ACME, "u1"))
        before = store.audit_head()
        with pytest.raises(ValueError):
            store.put_documents(acme, [doc(ACME, "a")], bad)
        with pytest.raises(ValueError):
            store.create_tenant(Tenant(id="initech"), bad)
        with pytest.raises(ValueError):
            store.update_tenant(ACME, bad, rate_limit=1)
        with pytest.raises(ValueError):
            store.set_tenant_status(ACME, TenantStatus.SUSPENDED, bad)
        assert store.latest_seq(ACME) == 0 and store.get_tenant("initech") is None
        assert (self.tenant(store, ACME).rate_limit, self.tenant(store, ACME).active) == (100, True)
        assert store.audit_head() == before
        store.put_documents(acme, [doc(ACME, "a")])
        with pytest.raises(ValueError):
            store.delete_document(ACME, "a", bad)
        assert store.get_document(ACME, "a").id == "a"
        assert store.audit_head().seq == before.seq + 1

    def test_a_failed_change_leaves_no_record(self, store: Store) -> None:
        """A write refused for its quota commits neither its audit record nor its costs."""
        acme = self.tenant(store, ACME)
        records = ChangeRecords(
            AuditEvent("ingest", "success", ACME, "u1"),
            costs=[CostEvent(ACME, CostType.COMPUTE, 1.0)],
        )
        before = store.audit_head()
        with pytest.raises(QuotaExceeded):
            store.put_documents(acme, [doc(ACME, i) for i in "abcd"], records)
        assert store.audit_head() == before
        assert store.month_to_date(ACME, now=records.costs[0].at).cost_usd == 0

    def test_the_chain_verifies_and_shows_each_tenant_its_own(self, store: Store) -> None:
        """Records chain across tenants; each tenant reads only its own, newest first."""
        start = store.audit_head().seq  # the two tenants' creation records
        store.append_audit([AuditEvent("search", "success", ACME, "u1")] * 3)
        store.append_audit([AuditEvent("search", "success", GLOBEX, "u2")], durable=False)
        head = store.audit_head()
        assert head.seq == start + 4
        result = verify_records(store.iter_audit(), expected_head=head)
        assert (result.ok, result.records) == (True, start + 4)
        mine = store.audit_records(ACME, limit=2)
        assert [r["seq"] for r in mine] == [start + 3, start + 2]
        older = store.audit_records(ACME, limit=5, before=start + 2)
        assert [r["seq"] for r in older] == [start + 1, 1]  # 1: ACME's creation
        assert {r["tenant_id"] for r in store.audit_records(GLOBEX, limit=9)} == {GLOBEX}

    def test_concurrent_writers_keep_one_chain_and_an_ordered_log(self, store: Store) -> None:
        """Eight threads writing and auditing at once: one unbroken chain, no seq lost."""
        globex = self.tenant(store, GLOBEX)

        def work(n: int) -> None:
            for i in range(5):
                store.put_documents(
                    globex, [doc(GLOBEX, f"d{n}-{i}")], audited("ingest", GLOBEX, f"d{n}-{i}")
                )
                store.append_audit([AuditEvent("search", "success", GLOBEX, f"w{n}")])

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result = verify_records(store.iter_audit())
        assert (result.ok, result.records) == (True, 82)  # with the two tenants' creation
        log = [c for c in store.changes_after(0, limit=1000) if c.kind == "document"]
        assert len(log) == 40 and len({c.document_id for c in log}) == 40

    def test_every_committed_change_has_a_record_even_when_given_none(self, store: Store) -> None:
        """A change whose caller gave no records still commits the store's own, userless one."""
        acme = self.tenant(store, ACME)
        store.put_documents(acme, [doc(ACME, "a"), doc(ACME, "b")])
        store.delete_document(ACME, "a")
        store.update_tenant(ACME, rate_limit=7, fusion="rrf")
        store.set_tenant_status(ACME, TenantStatus.SUSPENDED)
        store.set_tenant_status(ACME, TenantStatus.ACTIVE)
        records = list(reversed(store.audit_records(ACME, limit=10)))
        assert [(r["action"], r["resource_ids"]) for r in records] == [
            ("tenant_created", []),
            ("ingest", ["a", "b"]),
            ("delete", ["a"]),
            ("tenant_updated", []),
            ("tenant_suspended", []),
            ("tenant_activated", []),
        ]
        assert all(r["user_id"] is None for r in records)
        assert all(r["detail"]["recorded_by"] == "store" for r in records)
        assert records[3]["detail"] == {"recorded_by": "store", "rate_limit": 7, "fusion": "rrf"}

    def test_a_tenant_update_commits_with_the_record_given(self, store: Store) -> None:
        """update_tenant takes records like every other change."""
        store.update_tenant(ACME, audited("tenant_updated", ACME), rate_limit=9)
        record = store.audit_records(ACME, limit=1)[0]
        assert (record["action"], record["user_id"]) == ("tenant_updated", "u1")
        assert self.tenant(store, ACME).rate_limit == 9

    def test_the_audit_scrub_rewrites_every_record_before_it_is_chained(self, url: str) -> None:
        """The store's `audit_scrub` sees the records of changes and of append_audit alike."""
        seen: list[str] = []

        def scrub(fields: dict[str, Any]) -> dict[str, Any]:
            seen.append(fields["action"])
            return {**fields, "user_id": "scrubbed"}

        store = store_at(url, audit_scrub=scrub)
        store.open()
        try:
            store.create_tenant(Tenant(id="initech"), audited("tenant_created", "initech"))
            store.append_audit([AuditEvent("search", "success", "initech", "bob")])
            records = store.audit_records("initech", limit=5)
        finally:
            store.close()
        assert seen == ["tenant_created", "search"]
        assert {r["user_id"] for r in records} == {"scrubbed"}
        assert verify_records(store_iter(url)).ok

    # -- feedback on answers

    def answered(self, store: Store, tenant: str, request_id: str) -> None:
        store.append_audit(
            [AuditEvent("query", "success", tenant, "u1", RequestIds(request_id), ("d#0",))]
        )

    def test_feedback_needs_an_answer_of_the_same_tenant(self, store: Store) -> None:
        """A request id is rated only by its own tenant: another's is NotFound like an unknown."""
        self.answered(store, ACME, "req-acme-1")
        store.append_audit([AuditEvent("search", "success", GLOBEX, "u2", RequestIds("req-s-1"))])
        before = store.audit_head()
        for tenant, request_id in [
            (GLOBEX, "req-acme-1"),
            (ACME, "req-none-1"),
            (GLOBEX, "req-s-1"),
        ]:
            with pytest.raises(NotFound) as refused:
                store.put_feedback(Feedback(tenant, request_id, "u2", "up"))
            assert "request_id" in refused.value.message
        assert store.audit_head() == before  # nothing committed
        assert store.feedback_counts(GLOBEX, start=0, end=2e9) == FeedbackCounts()

    def test_feedback_is_one_rating_per_user_and_request(self, store: Store) -> None:
        """A second rating by the same user replaces the first; another user's is their own."""
        self.answered(store, ACME, "req-acme-1")
        first = Feedback(ACME, "req-acme-1", "u1", "up", "clear")
        assert store.put_feedback(first) is True
        assert store.put_feedback(replace(first, rating="down", comment=None)) is False
        assert store.put_feedback(replace(first, user_id="u2")) is True
        assert store.feedback_counts(ACME, start=0, end=2e9) == FeedbackCounts(1, 1, 1)
        assert store.feedback_counts(ACME, start=0, end=1) == FeedbackCounts()
        rows = store.feedback_between(ACME, start=0, end=2e9)
        assert sorted((f.user_id, f.rating, f.comment) for f in rows) == [
            ("u1", "down", None),
            ("u2", "up", "clear"),
        ]
        assert rows[0].created_at <= rows[0].updated_at
        assert store.feedback_between(GLOBEX, start=0, end=2e9) == []

    def test_feedback_commits_with_its_record_never_its_comment(self, store: Store) -> None:
        """The rating's audit record names the request and rating; the comment stays out."""
        self.answered(store, ACME, "req-acme-1")
        store.put_feedback(Feedback(ACME, "req-acme-1", "u1", "down", "the secret words"))
        record = store.audit_records(ACME, limit=1)[0]
        assert (record["action"], record["resource_ids"]) == ("feedback", ["req-acme-1"])
        assert record["detail"]["rating"] == "down"
        assert "secret" not in json.dumps(record)
        bad = ChangeRecords(AuditEvent("exfiltrate", "success", ACME, "u1"))
        with pytest.raises(ValueError):
            store.put_feedback(Feedback(ACME, "req-acme-1", "u9", "up"), bad)
        assert [f.user_id for f in store.feedback_between(ACME, start=0, end=2e9)] == ["u1"]

    # -- the security log and the anchors

    def test_the_security_log_keeps_rows_apart_from_the_chain(self, store: Store) -> None:
        """Rows come back newest first with their detail; pruning drops old windows only."""
        before = store.audit_head()
        store.append_security(
            [
                SecurityEntry(0.0, 60.0, "203.0.113.9", "auth_failure", 5, {"codes": {"x": 5}}),
                SecurityEntry(60.0, 120.0, "2001:db8::/64", "auth_failure", 1, {}),
            ]
        )
        rows = store.security_log(limit=10)
        assert [(r.client, r.count) for r in rows] == [("2001:db8::/64", 1), ("203.0.113.9", 5)]
        assert rows[1].detail == {"codes": {"x": 5}}
        assert store.security_log(limit=10, before=rows[0].id) == rows[1:]
        assert store.prune_security(before=100.0) == 1
        assert [r.client for r in store.security_log(limit=10)] == ["2001:db8::/64"]
        assert store.audit_head() == before

    def test_each_node_keeps_its_newest_anchor(self, store: Store) -> None:
        """An anchor replaces its node's older one, never a newer one."""
        store.keep_anchor("n1", 5, "a" * 64, "five")
        store.keep_anchor("n2", 3, "b" * 64, "three")
        store.keep_anchor("n1", 4, "c" * 64, "four (late)")
        store.keep_anchor("n2", 6, "d" * 64, "six")
        assert store.audit_anchors() == ["five", "six"]


class TestSQLiteStore(StoreContract):
    """SQLiteStore keeps the Store contract, and reads like a CorpusReader."""

    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url

    def test_is_a_corpus_reader(self, store: Store) -> None:
        """Embedded mode searches the store itself."""
        assert isinstance(store, CorpusReader)

    def execute(self, store: Store, sql: str) -> None:
        assert isinstance(store, SQLiteStore)
        with store.transaction() as db:
            db.execute(sql)


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    """PostgresStore keeps the Store contract against the local PostgreSQL."""

    @pytest.fixture
    def url(self, postgres_url: str) -> str:
        return postgres_url

    def execute(self, store: Store, sql: str) -> None:
        assert isinstance(store, PostgresStore)
        with store.connection() as conn:
            conn.execute(sql)
