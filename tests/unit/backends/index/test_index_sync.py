"""IndexSync: catching the indexes up with the store, cheaply, idempotently, after crashes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from tests.unit.backends.index.index_helpers import DIMS, document, make_sync, vector_for

from tenantrag.backends.keyword.tantivy import TantivyKeywordIndex
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.backends.sync import IndexSync
from tenantrag.backends.vector.faiss import FaissVectorIndex
from tenantrag.models import Chunk, Classification, Tenant

TOP = Classification.RESTRICTED
ACME = Tenant(id="acme")


class CountingFaiss(FaissVectorIndex):
    """The real FAISS index, counting the chunks it is asked to apply."""

    applied_chunks = 0

    def apply(
        self,
        tenant: str,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        *,
        replace_documents: Sequence[str],
        seq: int,
    ) -> None:
        self.applied_chunks += len(chunks)
        super().apply(tenant, chunks, vectors, replace_documents=replace_documents, seq=seq)


class FailingOnceTantivy(TantivyKeywordIndex):
    """The real Tantivy index, whose second apply fails once, as if the process died there."""

    calls = 0

    def apply(
        self, tenant: str, chunks: Sequence[Chunk], *, replace_documents: Sequence[str], seq: int
    ) -> None:
        self.calls += 1
        if self.calls == 2:
            raise OSError("simulated crash")
        super().apply(tenant, chunks, replace_documents=replace_documents, seq=seq)


class CrowdedFaiss(FaissVectorIndex):
    """The real FAISS index with room for one tenant, touching two others after every apply."""

    def apply(
        self,
        tenant: str,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        *,
        replace_documents: Sequence[str],
        seq: int,
    ) -> None:
        super().apply(tenant, chunks, vectors, replace_documents=replace_documents, seq=seq)
        self.applied_seq("other-one")
        self.applied_seq("other-two")


def words(sync: IndexSync, query: str, tenant: str = "acme") -> set[int]:
    """Rowids the keyword index finds for `query`."""
    return {h.rowid for h in sync.keyword.search(tenant, query, limit=100, max_classification=TOP)}


def nearest(sync: IndexSync, text: str, tenant: str = "acme") -> int | None:
    """The rowid the vector index finds nearest to `text`'s vector."""
    hits = sync.vector.search(tenant, vector_for(text), limit=1, max_classification=TOP)
    return hits[0].rowid if hits else None


def rowids_of(store: SQLiteStore, *documents: str) -> set[int]:
    """The store rowids of these acme documents."""
    chunks, _ = store.chunks_of_documents("acme", list(documents))
    return {c.rowid for c in chunks}


def test_new_write_becomes_searchable(store: SQLiteStore, tmp_path: Path) -> None:
    """After a write, ensure_current returns the store's seq and both indexes find the chunks."""
    sync = make_sync(tmp_path, store)
    seq = store.put_documents(ACME, [document("acme", "d1", "zebra crossing", "lion pride")])
    assert sync.ensure_current("acme") == seq == store.latest_seq("acme")
    assert words(sync, "zebra") == words(sync, "crossing") and len(words(sync, "zebra")) == 1
    assert nearest(sync, "lion pride") in rowids_of(store, "d1")
    assert sync.keyword.applied_seq("acme") == sync.vector.applied_seq("acme") == seq


def test_nothing_changed_applies_nothing(store: SQLiteStore, tmp_path: Path) -> None:
    """A second ensure_current with no new write neither commits to Tantivy nor applies to FAISS."""
    vector = CountingFaiss(tmp_path / "indexes", dimensions=DIMS)
    sync = IndexSync(
        store,
        TantivyKeywordIndex(tmp_path / "indexes"),
        vector,
        lock_dir=store.path.parent / "locks",
    )
    store.put_documents(ACME, [document("acme", "d1", "zebra")])
    sync.ensure_current("acme")
    levels = tmp_path / "indexes" / "acme" / "bm25-levels"

    def stamps() -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for p in levels.rglob("*") if p.is_file()}

    stamp, applied = stamps(), vector.applied_chunks
    assert any(name.endswith("meta.json") for name in stamp)
    for _ in range(5):
        sync.ensure_current("acme")
    assert (stamps(), vector.applied_chunks) == (stamp, applied)


def test_replaced_and_deleted_documents(store: SQLiteStore, tmp_path: Path) -> None:
    """A replaced document shows only its new chunks; a deleted one disappears from both indexes."""
    sync = make_sync(tmp_path, store)
    store.put_documents(
        ACME, [document("acme", "d1", "old words"), document("acme", "d2", "keep me")]
    )
    sync.ensure_current("acme")
    store.put_documents(ACME, [document("acme", "d1", "new words")])
    store.delete_document("acme", "d2")
    sync.ensure_current("acme")
    assert words(sync, "old") == set() and words(sync, "keep") == set()
    assert words(sync, "new") == rowids_of(store, "d1")
    assert nearest(sync, "keep me") in rowids_of(store, "d1")


def test_writes_missed_by_a_crash_are_replayed(store: SQLiteStore, tmp_path: Path) -> None:
    """Writes stored but never indexed (the process died) are indexed by the next ensure_current."""
    store.put_documents(ACME, [document("acme", f"d{i}", f"topic{i} text") for i in range(4)])
    store.delete_document("acme", "d3")
    sync = make_sync(tmp_path, store)  # a new process: indexes empty, snapshot absent
    assert sync.ensure_current("acme") == store.latest_seq("acme")
    assert words(sync, "text") == rowids_of(store, "d0", "d1", "d2")
    assert nearest(sync, "topic1 text") in rowids_of(store, "d1")


def test_a_replay_interrupted_midway_converges(store: SQLiteStore, tmp_path: Path) -> None:
    """A catch-up that dies after its first slice leaves the old seq; the next one finishes it."""
    keyword = FailingOnceTantivy(tmp_path / "indexes")
    vector = FaissVectorIndex(tmp_path / "indexes", dimensions=DIMS)
    sync = IndexSync(
        store, keyword, vector, batch_documents=2, lock_dir=store.path.parent / "locks"
    )
    store.put_documents(ACME, [document("acme", f"d{i}", f"shared {i}") for i in range(5)])
    with pytest.raises(OSError, match="simulated"):
        sync.ensure_current("acme")
    assert keyword.applied_seq("acme") == 0 and len(words(sync, "shared")) == 2
    assert sync.ensure_current("acme") == keyword.applied_seq("acme") == store.latest_seq("acme")
    hits = keyword.search("acme", "shared", limit=100, max_classification=TOP)
    assert sorted(h.rowid for h in hits) == sorted(rowids_of(store, *[f"d{i}" for i in range(5)]))


def test_many_documents_are_replayed_in_slices(store: SQLiteStore, tmp_path: Path) -> None:
    """A backlog bigger than one slice is applied slice by slice and ends at the latest seq."""
    sync = make_sync(tmp_path, store)
    sync.batch_documents = 3
    for i in range(10):
        store.put_documents(ACME, [document("acme", f"d{i}", f"common {i}")])
    assert (
        sync.ensure_current("acme") == sync.vector.applied_seq("acme") == store.latest_seq("acme")
    )
    assert len(words(sync, "common")) == 10


def test_a_second_worker_sees_the_first_workers_write(store: SQLiteStore, tmp_path: Path) -> None:
    """Two workers' syncs on one data folder: a write indexed by one is searchable in the other."""
    first, second = make_sync(tmp_path, store), make_sync(tmp_path, store)
    second.ensure_current("acme")
    store.put_documents(ACME, [document("acme", "d1", "giraffe neck")])
    first.ensure_current("acme")
    assert second.ensure_current("acme") == store.latest_seq("acme")
    assert words(second, "giraffe") == rowids_of(store, "d1")
    assert nearest(second, "giraffe neck") in rowids_of(store, "d1")


def test_rebuild_restores_everything(store: SQLiteStore, tmp_path: Path) -> None:
    """rebuild drops both indexes and replays the store, ending at the latest seq."""
    sync = make_sync(tmp_path, store)
    store.put_documents(ACME, [document("acme", "d1", "alpha"), document("acme", "d2", "beta")])
    sync.ensure_current("acme")
    sync.keyword.apply("acme", [], replace_documents=["d1"], seq=store.latest_seq("acme"))
    assert words(sync, "alpha") == set()  # the index lost d1 and does not know it
    assert sync.rebuild("acme") == store.latest_seq("acme")
    assert words(sync, "alpha") == rowids_of(store, "d1")
    assert words(sync, "beta") == rowids_of(store, "d2")


def test_tenants_are_synced_apart(store: SQLiteStore, tmp_path: Path) -> None:
    """Catching one tenant up neither indexes nor exposes another tenant's writes."""
    sync = make_sync(tmp_path, store)
    store.put_documents(Tenant(id="globex"), [document("globex", "g1", "zebra")])
    store.put_documents(ACME, [document("acme", "a1", "zebra")])
    sync.ensure_current("acme")
    assert words(sync, "zebra") == rowids_of(store, "a1")
    assert sync.keyword.applied_seq("globex") == 0
    assert words(sync, "zebra", tenant="globex") == set()


def test_large_catch_up_writes_a_snapshot_that_the_next_process_reuses(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """A big replay leaves a snapshot; a new process loads it and replays only newer changes."""
    vector = FaissVectorIndex(tmp_path / "indexes", dimensions=DIMS, snapshot_min_vectors=20)
    sync = IndexSync(
        store,
        TantivyKeywordIndex(tmp_path / "indexes"),
        vector,
        lock_dir=store.path.parent / "locks",
    )
    store.put_documents(
        ACME, [document("acme", f"d{i}", *[f"t{i}-{k}" for k in range(5)]) for i in range(10)]
    )
    sync.ensure_current("acme")
    assert (tmp_path / "indexes" / "acme" / "vectors.faiss").exists()
    store.put_documents(ACME, [document("acme", "late", "late arrival")])
    reborn = CountingFaiss(tmp_path / "indexes", dimensions=DIMS)
    later = IndexSync(
        store,
        TantivyKeywordIndex(tmp_path / "indexes"),
        reborn,
        lock_dir=store.path.parent / "locks",
    )
    later.ensure_current("acme")
    assert reborn.applied_chunks == 1
    assert nearest(later, "t4-2") in rowids_of(store, "d4")
    assert nearest(later, "late arrival") in rowids_of(store, "late")


def test_tenant_is_not_evicted_in_the_middle_of_its_replay(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """Other tenants crowding a one-tenant LRU between slices do not lose the slices applied."""
    vector = CrowdedFaiss(tmp_path / "indexes", dimensions=DIMS, max_open=1)
    sync = IndexSync(
        store,
        TantivyKeywordIndex(tmp_path / "indexes"),
        vector,
        batch_documents=2,
        lock_dir=store.path.parent / "locks",
    )
    store.put_documents(ACME, [document("acme", f"d{i}", f"animal{i}") for i in range(6)])
    sync.ensure_current("acme")
    assert vector.applied_seq("acme") == store.latest_seq("acme")
    hits = vector.search("acme", vector_for("animal0"), limit=10, max_classification=TOP)
    assert sorted(h.rowid for h in hits) == sorted(rowids_of(store, *[f"d{i}" for i in range(6)]))
