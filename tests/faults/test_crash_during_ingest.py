"""kill -9 during bulk ingest: every acknowledged document survives and every index still opens."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.faults.support import kill9, wait_for
from tests.integration.conftest import Server

from tenantrag.backends.keyword.tantivy import TantivyKeywordIndex
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.backends.sync import IndexSync
from tenantrag.backends.vector.faiss import FaissVectorIndex
from tenantrag.models import Classification

pytestmark = pytest.mark.integration  # starts servers or subprocesses

TenantFactory = Callable[..., tuple[str, dict[str, str]]]
BATCH = 4


def batch(n: int) -> list[dict[str, str]]:
    """Four small documents, each with a word found in no other document."""
    return [
        {
            "id": f"b{n}-d{i}",
            "title": f"Report {n}.{i}",
            "text": f"Inventory note marker{n}x{i}: shelf {i} of aisle {n} was counted twice. "
            "The count matched the ledger and nothing was missing.",
        }
        for i in range(BATCH)
    ]


class Ingest(threading.Thread):
    """Posts batches one after another until the server stops answering."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.base_url, self.headers = base_url, headers
        self.acked: list[str] = []
        self.sent = 0  # batches whose request was started

    def run(self) -> None:
        """Send up to 500 batches; stop at the first refused or cut-off request."""
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            for n in range(500):
                self.sent = n + 1
                try:
                    r = http.post(
                        "/api/documents", headers=self.headers, json={"documents": batch(n)}
                    )
                except httpx.HTTPError:
                    return
                if r.status_code != 201:
                    return
                self.acked.extend(d["id"] for d in r.json()["documents"])


def test_kill9_during_bulk_ingest_loses_no_acknowledged_document(
    cluster: Callable[..., Server], tenant: TenantFactory, tmp_path: Path
) -> None:
    """After SIGKILL mid-ingest and a restart, each 201'd document is readable and searchable."""
    server = cluster(redis=False)
    tenant_id, headers = tenant(rate_limit=100_000)
    ingest = Ingest(server.base_url, headers)
    ingest.start()
    assert wait_for(lambda: len(ingest.acked) >= 3 * BATCH, timeout_s=60)
    kill9(server)
    ingest.join(timeout=30)
    acked, sent = list(ingest.acked), ingest.sent
    assert acked and sent > len(acked) // BATCH  # a batch was in flight when the server died

    restarted = cluster(redis=False)  # the same data folder
    with httpx.Client(base_url=restarted.base_url, timeout=30) as http:
        for doc_id in acked:
            assert http.get(f"/api/documents/{doc_id}", headers=headers).status_code == 200
            n, i = doc_id[1:].split("-d")
            query = {"query": f"marker{n}x{i}", "mode": "bm25", "top_k": 1}
            found = http.post("/api/search", headers=headers, json=query)
            assert found.status_code == 200, found.text
            assert [h["document_id"] for h in found.json()["results"]] == [doc_id]
        hybrid = http.post("/api/search", headers=headers, json={"query": "inventory ledger"})
        assert hybrid.status_code == 200 and hybrid.json()["results"]
        stored = http.get("/api/documents", headers=headers, params={"limit": 500}).json()
    in_flight = {d["id"] for d in batch(sent - 1)}
    present = {d["id"] for d in stored["documents"]} & in_flight
    assert present in (set(), in_flight)  # the batch in flight is all there or not at all
    restarted.stop()
    _check_files(tmp_path / "data", tenant_id, expected=len(acked) + len(present))


def _check_files(data: Path, tenant_id: str, *, expected: int) -> None:
    """SQLite passes integrity_check; Tantivy and FAISS open, catch up and find the documents."""
    with sqlite3.connect(data / "tenantrag.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = SQLiteStore(data / "tenantrag.db")
    store.open()
    assert store.usage(tenant_id).documents == expected
    keyword = TantivyKeywordIndex(data / "indexes")
    vector = FaissVectorIndex(data / "indexes", dimensions=384)
    IndexSync(store, keyword, vector, lock_dir=store.path.parent / "locks").ensure_current(
        tenant_id
    )
    hits = keyword.search(
        tenant_id, "marker0x0", limit=1, max_classification=Classification.RESTRICTED
    )
    assert len(hits) == 1
    chunks, vectors = store.chunks_of_documents(tenant_id, ["b0-d0"])
    nearest = vector.search(
        tenant_id, np.asarray(vectors[0]), limit=1, max_classification=Classification.RESTRICTED
    )
    assert [h.rowid for h in nearest] == [chunks[0].rowid]
    store.close()
