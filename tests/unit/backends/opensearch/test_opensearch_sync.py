"""IndexSync drives the OpenSearch adapters as it drives Tantivy and FAISS, with a real store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tests.unit.backends.index.index_helpers import DIMS, document, make_store
from tests.unit.backends.opensearch.replies import Reply
from tests.unit.backends.opensearch.standin import OpenSearchStandIn, Recorded

from tenantrag.backends.opensearch import OpenSearchIndex
from tenantrag.backends.sync import IndexSync
from tenantrag.models import Tenant

ACME = Tenant(id="acme")


def seq_record(seq: int) -> Callable[[Recorded], Reply]:
    """A GET answer finding the tenant's seq record at `seq`."""
    return lambda request: (
        200,
        {
            "_index": "tr-x-000001",
            "_id": request.path.rsplit("/", 1)[1],
            "_version": 1,
            "_seq_no": 0,
            "_primary_term": 1,
            "found": True,
            "_source": {"tenant_id": ACME.id, "seq": seq},
        },
    )


def test_sync_replays_the_store_into_both_indexes(
    tmp_path: Path, make_index: Callable[..., OpenSearchIndex], standin: OpenSearchStandIn
) -> None:
    """A behind tenant gets its changed documents replaced in both indexes, then the store seq."""
    store = make_store(tmp_path / "store.db", ACME.id)
    index = make_index(dimensions=DIMS)
    seq = store.put_documents(
        ACME,
        [document("acme", "d1", "zebra crossing", "lion pride"), document("acme", "d2", "owl")],
    )
    sync = IndexSync(store, index.keyword, index.vector, lock_dir=tmp_path / "locks")
    assert sync.ensure_current(ACME.id) == seq

    chunks, vectors = store.chunks_of_documents(ACME.id, ["d1", "d2"])
    keyword_bulk, vector_bulk = standin.requests("POST", "_bulk$")
    for bulk in (keyword_bulk, vector_bulk):
        assert [meta["_id"] for _, meta, _ in bulk.bulk_items] == [
            f"acme:{c.rowid}" for c in chunks
        ]
    texts = [source["text"] for _, _, source in keyword_bulk.bulk_items]  # type: ignore[index]
    assert texts == [f"{c.title}\n{c.text}" if c.title else c.text for c in chunks]
    sent = np.array([source["embedding"] for _, _, source in vector_bulk.bulk_items])  # type: ignore[index]
    assert sent == pytest.approx(vectors, abs=1e-6)
    for request in standin.requests("POST", "_delete_by_query$"):
        assert request.body["query"]["bool"]["filter"][1] == {
            "terms": {"document_id": ["d1", "d2"]}
        }
    seqs = [r.body["seq"] for r in standin.requests("PUT", "/_doc/")]
    assert seqs == [seq, seq]
    assert index.keyword.applied_seq(ACME.id) == index.vector.applied_seq(ACME.id) == seq
    store.close()


def test_a_current_tenant_costs_two_seq_reads(
    tmp_path: Path, make_index: Callable[..., OpenSearchIndex], standin: OpenSearchStandIn
) -> None:
    """When both indexes report the store's seq, ensure_current only reads the two seq records."""
    store = make_store(tmp_path / "store.db", ACME.id)
    index = make_index(dimensions=DIMS)
    seq = store.put_documents(ACME, [document("acme", "d1", "zebra")])
    standin.script("GET", "/_doc/", seq_record(seq), seq_record(seq))
    sync = IndexSync(store, index.keyword, index.vector, lock_dir=tmp_path / "locks")
    assert sync.ensure_current(ACME.id) == seq
    assert [(r.method, r.path) for r in standin.recorded] == [
        ("GET", "/tr-state/_doc/acme"),
        ("GET", "/tr-vector/_doc/__seq__:acme"),
    ]
    store.close()
