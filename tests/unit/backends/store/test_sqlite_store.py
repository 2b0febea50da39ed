"""The SQLite store: tenant scoping, quotas inside the transaction, change log, metadata filters."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tenantrag.backends.keyword.tantivy import attribute_term
from tenantrag.backends.store.sqlite import NewDocument, SQLiteStore
from tenantrag.errors import Conflict, NotFound, QuotaExceeded
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


class TestClearanceCeiling:
    """With `max_classification`, a document above it is absent for reads, deletes and replaces."""

    @pytest.fixture
    def acme(self, store: SQLiteStore) -> Tenant:
        acme = store.get_tenant("globex")  # globex has room for the whole ladder
        assert acme
        store.put_documents(
            acme, [new_doc("globex", f"d{int(lv)}", level=lv) for lv in Classification]
        )
        return acme

    def test_get_and_list_stop_at_the_ceiling(self, store: SQLiteStore, acme: Tenant) -> None:
        """Hidden documents are NotFound and left out of a list before its limit applies."""
        internal = Classification.INTERNAL
        assert store.get_document("globex", "d1", max_classification=internal).id == "d1"
        with pytest.raises(NotFound, match="No document 'd2'"):
            store.get_document("globex", "d2", max_classification=internal)
        listed = store.list_documents("globex", limit=2, after="d0", max_classification=internal)
        assert [d.id for d in listed] == ["d1"]
        assert len(store.list_documents("globex", limit=10)) == 4  # no ceiling: operator tools

    def test_delete_above_the_ceiling_is_not_found_and_keeps_the_document(
        self, store: SQLiteStore, acme: Tenant
    ) -> None:
        seq = store.latest_seq("globex")
        with pytest.raises(NotFound, match="No document 'd3'"):
            store.delete_document("globex", "d3", max_classification=Classification.CONFIDENTIAL)
        assert store.latest_seq("globex") == seq  # no change was logged
        store.delete_document("globex", "d3", max_classification=Classification.RESTRICTED)

    def test_a_batch_replacing_a_hidden_document_is_refused_whole(
        self, store: SQLiteStore, acme: Tenant
    ) -> None:
        """One hidden id refuses the whole batch inside its transaction; nothing is written."""
        before = store.get_document("globex", "d2")
        seq = store.latest_seq("globex")
        batch = [
            new_doc("globex", "new"),
            new_doc("globex", "d2", "x", level=Classification.PUBLIC),
        ]
        with pytest.raises(Conflict, match="'d2' cannot be used"):
            store.put_documents(acme, batch, max_classification=Classification.INTERNAL)
        assert store.get_document("globex", "d2") == before
        assert store.latest_seq("globex") == seq
        with pytest.raises(NotFound):
            store.get_document("globex", "new")
        store.put_documents(acme, batch, max_classification=Classification.CONFIDENTIAL)
        assert store.get_document("globex", "d2").classification is Classification.PUBLIC

    def test_the_ceiling_never_crosses_tenants(self, store: SQLiteStore, acme: Tenant) -> None:
        """acme's writes of globex's ids create acme's own documents."""
        own = store.get_tenant("acme")
        assert own
        store.put_documents(own, [new_doc("acme", "d3")], max_classification=Classification.PUBLIC)
        assert store.get_document("globex", "d3").classification is Classification.RESTRICTED
        with pytest.raises(NotFound):
            store.get_document("acme", "d2", max_classification=Classification.RESTRICTED)


KEYS = st.one_of(
    st.sampled_from(["team", 'team"', 'te"am', "team'", "$", "a.b", "a[0]", '"', "", "\\", "*"]),
    st.text(max_size=70),
)
# Floats that print the same in SQLite and Python (the filter matches on text, as Tantivy does).
VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(-(2**53), 2**53),
    st.integers(-4000, 4000).map(lambda n: n / 4),
    st.booleans(),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filters=st.dictionaries(KEYS, VALUES, max_size=4))
@example(filters={"team": "red"})
@example(filters={'te"am': "x", "flag": True})
@example(filters={"a.b": 1.0, "n": 1})
@example(filters={"": "empty", "$": "y", "n": 2.5})
@example(filters={'team"': "red"})
def test_any_filter_is_answered_never_raises_and_matches_like_the_keyword_index(
    store: SQLiteStore, filters: dict[str, MetadataValue]
) -> None:
    """Keys holding quotes, dots, brackets or nothing at all are plain keys: matched or not."""
    globex = store.get_tenant("globex")
    assert globex
    if store.latest_seq("globex") == 0:
        metas: list[dict[str, MetadataValue]] = [
            {"team": "red", 'te"am': "x", "a.b": 1, "n": 1.0, "flag": True},
            {"team": 'r"ed', "$": "y", "n": 2.5, "flag": False, "": "empty"},
        ]
        store.put_documents(
            globex, [new_doc("globex", f"m{i}", meta=m) for i, m in enumerate(metas)]
        )
    rows = store._conn().execute("SELECT rowid, metadata FROM chunks WHERE tenant_id = 'globex'")
    expected = sorted(
        rowid
        for rowid, raw in rows.fetchall()
        if all(
            key in (meta := json.loads(raw))
            and attribute_term(key, meta[key]) == attribute_term(key, value)
            for key, value in filters.items()
        )
    )
    assert sorted(store.rowids_matching("globex", filters)) == expected


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
    """tenants.auto_classify: one column with a default, added to databases made before it."""

    def test_a_database_from_before_the_column_gets_it_with_the_default(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "old.db"
        with sqlite3.connect(path) as old:
            old.execute(OLD_TENANTS_TABLE)
            old.execute(
                "INSERT INTO tenants VALUES ('acme','active',100,1,1,1,1.0,0.5,0.5,'zscore',"
                "'block',1,0.0)"
            )
        store = SQLiteStore(path)
        store.open()
        store.open()  # a second open (another worker) finds the column and adds nothing
        acme = store.get_tenant("acme")
        assert acme and acme.auto_classify is AutoClassify.RAISE
        store.create_tenant(Tenant(id="globex", auto_classify=AutoClassify.OFF))
        assert [t.auto_classify for t in store.list_tenants()] == [
            AutoClassify.RAISE,
            AutoClassify.OFF,
        ]

    def test_update_takes_only_a_policys_name(self, store: SQLiteStore) -> None:
        store.update_tenant("acme", auto_classify="raise-and-redact")
        acme = store.get_tenant("acme")
        assert acme and acme.auto_classify is AutoClassify.RAISE_AND_REDACT
        with pytest.raises(ValueError, match="'sometimes' is not a valid AutoClassify"):
            store.update_tenant("acme", auto_classify="sometimes")
        with pytest.raises(sqlite3.IntegrityError):  # the column's CHECK, below the code's check
            store._conn().execute("UPDATE tenants SET auto_classify = 'x' WHERE id = 'acme'")
        globex = store.get_tenant("globex")
        assert globex and globex.auto_classify is AutoClassify.RAISE  # acme's change is acme's

    def test_the_check_names_exactly_the_policies(self) -> None:
        from tenantrag.backends.store.sqlite import ADDED_COLUMNS, SCHEMA

        listed = "('off', 'raise', 'raise-and-redact')"
        assert listed == "(" + ", ".join(f"'{p.value}'" for p in AutoClassify) + ")"
        assert listed in SCHEMA and listed in ADDED_COLUMNS["tenants", "auto_classify"]
