"""What search reads, the same in both modes: metadata filters (fuzzed), the tenant row, and
the sentence vectors the extractive answerer reads (per tenant only).

Embedded mode answers a filter from the SQLite store itself. Distributed mode answers it from
each node's read model: a SQLite copy of PostgreSQL's rows (metadata as jsonb) kept by
follower.py. PostgreSQL itself is never asked for a filter (search reads the copy only), so
"both stores" here means both ways the rows get to the filter: written to SQLite directly, or
written to PostgreSQL and copied by the real `Follower`, so what jsonb does to stored metadata
(key order, the text of numbers) is part of what is checked.

Any key, one holding a quote, a dot, a bracket, a backslash or nothing at all, is a plain key
compared as a bound parameter: it is answered, never raised, and matches exactly the chunks the
keyword index's filter terms match (`attribute_term`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tests.contract.conftest import migrated_schema

from tenantrag.backends.keyword.tantivy import attribute_term
from tenantrag.backends.store import NewDocument, Store
from tenantrag.backends.store.follower import Follower
from tenantrag.backends.store.postgres import PostgresStore
from tenantrag.backends.store.rows import sentence_blob
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import AutoClassify, Chunk, MetadataValue, Tenant

ACME, GLOBEX = "acme", "globex"
STORED: list[dict[str, MetadataValue]] = [
    {"team": "red", 'te"am': "x", "a.b": 1, "n": 1.0, "flag": True},
    {"team": 'r"ed', "$": "y", "n": 2.5, "flag": False, "": "empty"},
    {"a[0]": "z", "\\": 0, "n": 2, "team": "blue"},
]
KEYS = st.one_of(
    st.sampled_from(["team", 'team"', 'te"am', "team'", "$", "a.b", "a[0]", '"', "", "\\", "*"]),
    st.text(max_size=70),
)
# Floats that print the same in SQLite and Python (both sides match on text; docs/retrieval.md,
# "Known gaps": exponents such as 1e-07 differ).
VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(-(2**53), 2**53),
    st.integers(-4000, 4000).map(lambda n: n / 4),
    st.booleans(),
)


def sentence_rows(tenant_id: str, i: int) -> np.ndarray:
    """Chunk m{i}'s sentence vectors for the tenant: two rows, different per tenant and chunk."""
    seed = (0 if tenant_id == ACME else 10) + i
    return np.random.default_rng(seed).standard_normal((2, 8)).astype(np.float32)


def write(store: Store) -> None:
    """ACME's chunks with the odd metadata; GLOBEX holds the same, which no ACME filter finds.

    Chunks m0 and m1 carry sentence vectors (as ingestion stores them); m2 has none.
    """
    for tenant_id in (ACME, GLOBEX):
        tenant = store.get_tenant(tenant_id)
        assert tenant is not None
        docs = []
        for i, meta in enumerate(STORED):
            chunk = Chunk(tenant_id, f"m{i}", 0, f"text {i}", metadata=meta)
            blobs = (sentence_blob(sentence_rows(tenant_id, i)),) if i < 2 else ()
            vectors = np.ones((1, 4), np.float32)
            docs.append(NewDocument(f"m{i}", "", [chunk], vectors, sentence_vectors=blobs))
        store.put_documents(tenant, docs)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def reader(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SQLiteStore]:
    """The SQLite store (embedded), or a node's read model following PostgreSQL (distributed)."""
    folder = tmp_path_factory.mktemp(request.param)
    local = SQLiteStore(folder / "tenantrag.db")
    local.open()
    if request.param == "sqlite":
        local.create_tenant(Tenant(id=ACME))
        local.create_tenant(Tenant(id=GLOBEX, auto_classify=AutoClassify.OFF))
        write(local)
        yield local
        local.close()
        return
    database = request.getfixturevalue("postgres_database")
    with migrated_schema(database) as url:
        source = PostgresStore(url)
        source.open()
        source.create_tenant(Tenant(id=ACME))
        source.create_tenant(Tenant(id=GLOBEX, auto_classify=AutoClassify.OFF))
        write(source)
        follower = Follower(source, local, lock_path=folder / "replica.lock", on_applied=_ignore)
        follower.catch_up()
        source.close()
        yield local
    local.close()


def _ignore(tenants: set[str]) -> None:
    """The indexes' replay after an apply: there are no indexes here."""


def expected(reader: SQLiteStore, filters: dict[str, MetadataValue]) -> list[int]:
    """ACME's rowids whose metadata the keyword index's terms match, computed in Python."""
    rows = reader._conn().execute("SELECT rowid, metadata FROM chunks WHERE tenant_id = ?", (ACME,))
    return sorted(
        rowid
        for rowid, raw in rows.fetchall()
        if all(
            key in (meta := json.loads(raw))
            and attribute_term(key, meta[key]) == attribute_term(key, value)
            for key, value in filters.items()
        )
    )


@settings(max_examples=300, deadline=None)
@given(filters=st.dictionaries(KEYS, VALUES, max_size=4))
@example(filters={"team": "red"})
@example(filters={'te"am': "x", "flag": True})
@example(filters={"a.b": 1.0, "n": 1})
@example(filters={"": "empty", "$": "y", "n": 2.5})
@example(filters={'team"': "red"})
@example(filters={"a[0]": "z", "\\": 0})
@example(filters={})
def test_any_filter_is_answered_and_matches_like_the_keyword_index(
    reader: SQLiteStore, filters: dict[str, MetadataValue]
) -> None:
    """Never raises; exactly the chunks the keyword index's filter terms match; ACME's only."""
    got = sorted(reader.rowids_matching(ACME, filters))
    assert got == expected(reader, filters)
    assert set(got) <= set(reader.chunks_by_rowid(ACME, got))


@pytest.mark.parametrize(
    ("filters", "documents"),
    [
        ({'te"am': "x"}, {"m0"}),
        ({"team": 'r"ed'}, {"m1"}),
        ({"": "empty", "$": "y"}, {"m1"}),
        ({"a.b": 1.0}, {"m0"}),
        ({"n": 1}, {"m0"}),  # stored as 1.0: the keyword index's term is "1" for both
        ({"n": 2}, {"m2"}),
        ({"flag": True}, {"m0"}),
        ({"flag": 1}, set()),  # true is not 1
        ({"a[0]": "z", "\\": 0}, {"m2"}),
        ({"team'": "red"}, set()),
    ],
)
def test_odd_keys_are_plain_keys(
    reader: SQLiteStore, filters: dict[str, MetadataValue], documents: set[str]
) -> None:
    """Known answers, so the fuzz above cannot pass by both sides being wrong alike."""
    chunks = reader.chunks_by_rowid(ACME, reader.rowids_matching(ACME, filters))
    assert {c.document_id for c in chunks.values()} == documents


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_sentence_vectors_are_read_back_for_the_tenant_only(reader: SQLiteStore) -> None:
    """Each ACME chunk's stored rows (directions kept), none of GLOBEX's, none where unstored."""
    rows = reader._conn().execute("SELECT rowid, tenant_id, document_id FROM chunks").fetchall()
    every = [int(r[0]) for r in rows]
    got = reader.sentence_vectors(ACME, every)
    ours = {int(r[0]): str(r[2]) for r in rows if r[1] == ACME}
    assert set(got) == {rowid for rowid, doc in ours.items() if doc in ("m0", "m1")}
    for rowid, vectors in got.items():
        want = _unit(sentence_rows(ACME, int(ours[rowid][1:])))
        assert vectors.shape == want.shape
        # int8 rows keep each direction: a cosine of at least 0.999 with what was written
        assert np.all(np.sum(vectors * want, axis=1) > 0.999)
    theirs = [rowid for rowid in every if rowid not in ours]
    assert reader.sentence_vectors(ACME, theirs) == {}
    assert reader.sentence_vectors(ACME, []) == {}


def test_the_tenant_policy_reaches_the_reader(reader: SQLiteStore) -> None:
    """The auto-classification policy search and ingestion read is the one written."""
    policies = {t.id: t.auto_classify for t in reader.list_tenants()}
    assert policies == {ACME: AutoClassify.RAISE, GLOBEX: AutoClassify.OFF}


@pytest.mark.postgres
def test_the_follower_copies_a_policy_update(postgres_url: str, tmp_path: Path) -> None:
    """`tenant update --auto-classify` on PostgreSQL reaches a node's copy at its next apply."""
    source = PostgresStore(postgres_url)
    source.open()
    local = SQLiteStore(tmp_path / "tenantrag.db")
    local.open()
    try:
        source.create_tenant(Tenant(id=ACME))
        follower = Follower(source, local, lock_path=tmp_path / "replica.lock", on_applied=_ignore)
        follower.catch_up()
        assert (got := local.get_tenant(ACME)) and got.auto_classify is AutoClassify.RAISE
        source.update_tenant(ACME, auto_classify="off")
        follower.catch_up()
        assert (got := local.get_tenant(ACME)) and got.auto_classify is AutoClassify.OFF
        # A document written after the first copy arrives with its sentence vectors too.
        tenant = source.get_tenant(ACME)
        assert tenant is not None
        chunk = Chunk(ACME, "late", 0, "late text")
        blob = sentence_blob(sentence_rows(ACME, 7))
        late = NewDocument(
            "late", "", [chunk], np.ones((1, 4), np.float32), sentence_vectors=(blob,)
        )
        source.put_documents(tenant, [late])
        follower.catch_up()
        (rowid,) = local.chunks_by_rowid(ACME, list(range(1, 100)))
        vectors = local.sentence_vectors(ACME, [rowid])[rowid]
        assert np.all(np.sum(vectors * _unit(sentence_rows(ACME, 7)), axis=1) > 0.999)
    finally:
        source.close()
        local.close()
