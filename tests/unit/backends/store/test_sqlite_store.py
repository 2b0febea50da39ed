"""The SQLite store: tenant scoping, quotas inside the transaction, change log, metadata filters,
the bytes it counts against a file's growth, and the auto_classify column's migration.

What both stores must do alike (the clearance ceiling, stored bytes, the policy, fuzzed
filters) is in tests/contract/.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from alembic import command

from tenantrag.backends.keyword.tantivy import attribute_term
from tenantrag.backends.store import schema
from tenantrag.backends.store.sqlite import NewDocument, SQLiteStore
from tenantrag.errors import NotFound, QuotaExceeded
from tenantrag.models import AutoClassify, Chunk, Classification, MetadataValue, Tenant


def new_doc(
    tenant: str,
    doc_id: str,
    text: str = "t",
    meta: dict[str, MetadataValue] | None = None,
    level: Classification = Classification.INTERNAL,
) -> NewDocument:
    chunk = Chunk(
        tenant_id=tenant,
        document_id=doc_id,
        position=0,
        text=text,
        metadata=meta or {},
        classification=level,
    )
    return NewDocument(
        id=doc_id,
        title="",
        chunks=[chunk],
        embeddings=np.ones((1, 4), np.float32),
        metadata=meta or {},
        classification=level,
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
    # the refused batch left b untouched
    assert store.get_document("acme", "b").bytes == new_doc("acme", "b").stored_bytes


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


def test_storage_counts_every_byte_written_metadata_per_chunk_and_embeddings(
    store: SQLiteStore,
) -> None:
    """Metadata copied into each chunk is counted once per chunk, beside text and vectors."""
    globex = store.get_tenant("globex")
    assert globex
    meta: dict[str, MetadataValue] = {f"k{i}": "v" * 900 for i in range(50)}  # ~46 KB of JSON
    chunks = [Chunk("globex", "big", i, f"chunk {i} text", metadata=meta) for i in range(30)]
    doc = NewDocument(
        id="big",
        title="Big",
        chunks=chunks,
        embeddings=np.ones((30, 384), np.float32),
        metadata=meta,
    )
    before = store.path.stat().st_size
    store.put_documents(globex, [doc])
    counted = store.usage("globex").bytes
    meta_bytes = len(json.dumps(meta))
    assert counted == doc.stored_bytes
    assert counted > 31 * meta_bytes + 30 * 384 * 4  # the document's copy and one per chunk
    grown = store.path.stat().st_size + _wal_size(store) - before
    assert counted <= grown < 2 * counted  # what is counted is what the files grew by, give or take


def _wal_size(store: SQLiteStore) -> int:
    wal = store.path.with_name(store.path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


OLD_TENANTS_TABLE = """CREATE TABLE tenants (
    id TEXT PRIMARY KEY, status TEXT NOT NULL DEFAULT 'active', rate_limit INTEGER NOT NULL,
    storage_quota_bytes INTEGER NOT NULL, document_quota INTEGER NOT NULL,
    monthly_token_budget INTEGER NOT NULL, monthly_cost_budget_usd REAL NOT NULL,
    bm25_weight REAL NOT NULL, vector_weight REAL NOT NULL, fusion TEXT NOT NULL,
    injection_policy TEXT NOT NULL, redact_search_pii INTEGER NOT NULL, created_at REAL NOT NULL
)"""


class TestAutoClassifyColumn:
    """tenants.auto_classify: migration 0003 adds it, with its default, to older data folders."""

    def test_a_data_folder_from_before_migrations_gets_it_with_the_default(
        self, tmp_path: Path
    ) -> None:
        """A file made before alembic (0001 adopts its tables) is migrated to head when opened."""
        path = tmp_path / "old.db"
        with sqlite3.connect(path) as old:
            old.execute(OLD_TENANTS_TABLE)
            old.execute(
                "INSERT INTO tenants VALUES ('acme','active',100,1,1,1,1.0,0.5,0.5,'zscore',"
                "'block',1,0.0)"
            )
        store = SQLiteStore(path)
        store.open()
        store.open()  # a second open (another worker) finds it at head and changes nothing
        assert schema.current(store.url) == schema.head()
        acme = store.get_tenant("acme")
        assert acme and acme.auto_classify is AutoClassify.RAISE
        store.create_tenant(Tenant(id="globex", auto_classify=AutoClassify.OFF))
        assert [t.auto_classify for t in store.list_tenants()] == [
            AutoClassify.RAISE,
            AutoClassify.OFF,
        ]

    def test_a_store_at_0002_keeps_its_tenants_and_their_old_behaviour(
        self, tmp_path: Path
    ) -> None:
        """The previous release's file (at 0002): every tenant keeps raising, as before."""
        url = f"sqlite:///{tmp_path / 'prev.db'}"
        command.upgrade(schema.config(url), "0002")
        with sqlite3.connect(tmp_path / "prev.db") as prev:
            prev.execute(
                "INSERT INTO tenants VALUES ('acme','active',100,1,1,1,1.0,0.5,0.5,'zscore',"
                "'block',1,0.0)"
            )
        store = SQLiteStore(tmp_path / "prev.db")
        store.open()
        acme = store.get_tenant("acme")
        assert acme and acme.auto_classify is AutoClassify.RAISE

    def test_the_check_names_exactly_the_policies(self) -> None:
        """Both dialects' CHECK lists the enum's values, no more and no fewer."""
        migration = importlib.import_module(
            "tenantrag.backends.store.migrations.versions.0003_auto_classify"
        )
        listed = "('off', 'raise', 'raise-and-redact')"
        assert listed == "(" + ", ".join(f"'{p.value}'" for p in AutoClassify) + ")"
        assert listed in migration.SQLITE and listed in migration.POSTGRESQL
        assert "DEFAULT 'raise'" in migration.SQLITE and "DEFAULT 'raise'" in migration.POSTGRESQL
