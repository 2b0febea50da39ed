"""The SQLite store: tenant scoping, quotas inside the transaction, change log, metadata filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tenantrag.backends.keyword.tantivy import attribute_term
from tenantrag.backends.store.sqlite import NewDocument, SQLiteStore
from tenantrag.errors import NotFound, QuotaExceeded
from tenantrag.models import Chunk, MetadataValue, Tenant


def new_doc(
    tenant: str, doc_id: str, text: str = "t", meta: dict[str, MetadataValue] | None = None
) -> NewDocument:
    chunk = Chunk(tenant_id=tenant, document_id=doc_id, position=0, text=text, metadata=meta or {})
    return NewDocument(
        id=doc_id,
        title="",
        text_bytes=len(text),
        chunks=[chunk],
        embeddings=np.ones((1, 4), np.float32),
        metadata=meta or {},
    )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "store.db")
    s.open()
    s.create_tenant(Tenant(id="acme", document_quota=3, storage_quota_bytes=100))
    s.create_tenant(Tenant(id="globex"))
    return s


def test_chunks_by_rowid_never_returns_another_tenants_rows(store: SQLiteStore) -> None:
    """Asking for globex's rowids as acme returns nothing."""
    acme, globex = store.get_tenant("acme"), store.get_tenant("globex")
    assert acme and globex
    store.put_documents(globex, [new_doc("globex", "g")])
    rowids = [r for (r,) in store._conn().execute("SELECT rowid FROM chunks")]
    assert store.chunks_by_rowid("acme", rowids) == {}
    assert set(store.chunks_by_rowid("globex", rowids)) == set(rowids)


def test_quotas_count_replacements_once(store: SQLiteStore) -> None:
    """Replacing a document does not count twice; a fourth new document is refused atomically."""
    acme = store.get_tenant("acme")
    assert acme
    store.put_documents(acme, [new_doc("acme", i) for i in "abc"])
    store.put_documents(acme, [new_doc("acme", "a", "replaced")])
    with pytest.raises(QuotaExceeded):
        store.put_documents(acme, [new_doc("acme", "b", "x"), new_doc("acme", "d")])
    assert store.usage("acme").documents == 3
    assert store.get_document("acme", "b").bytes == 1  # the refused batch left b untouched


def test_every_write_appends_a_change(store: SQLiteStore) -> None:
    """Puts and deletes advance the tenant's seq; other tenants' seqs are untouched."""
    acme = store.get_tenant("acme")
    assert acme
    s1 = store.put_documents(acme, [new_doc("acme", "a")])
    s2 = store.delete_document("acme", "a")
    assert s2 > s1
    assert store.latest_seq("globex") == 0
    assert store.changed_documents("acme", 0) == (["a"], s2)
    with pytest.raises(NotFound):
        store.delete_document("globex", "a")


def test_metadata_filters_match_like_the_keyword_index(store: SQLiteStore) -> None:
    """rowids_matching agrees with Tantivy's filter terms: 1 == 1.0 == "1", true != 1."""
    globex = store.get_tenant("globex")
    assert globex
    values: dict[str, MetadataValue] = {"a": 1, "b": 1.0, "c": True, "d": "1", "e": 0.5, "f": "x"}
    store.put_documents(globex, [new_doc("globex", k, meta={"m": v}) for k, v in values.items()])
    by_rowid = dict(store._conn().execute("SELECT rowid, document_id FROM chunks").fetchall())
    for query in (1, 1.0, True, False, "1", 0.5, "x", "missing"):
        got = sorted(by_rowid[r] for r in store.rowids_matching("globex", {"m": query}))
        want = sorted(
            k for k, v in values.items() if attribute_term("m", v) == attribute_term("m", query)
        )
        assert got == want, query
