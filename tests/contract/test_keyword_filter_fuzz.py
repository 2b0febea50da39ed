"""Fuzzed metadata filters against every KeywordIndex: any key or value is answered, never raised.

Kept beside the contract suite (and built by its `build`) so each new implementation gets it.
A key holding a quote, a dot, a bracket or nothing at all is a plain key: it matches the chunks
that hold exactly it, and no other chunk.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.contract.test_keyword_index_contract import ACME, IMPLEMENTATIONS, build, chunk

from tenantrag.backends import KeywordIndex
from tenantrag.models import Classification, MetadataValue

KEYS = st.one_of(
    st.sampled_from(["team", 'team"', 'te"am', "team'", "$", "a.b", "a[0]", '"', "", "\\"]),
    st.text(max_size=70),
)
VALUES = st.one_of(
    st.text(max_size=40), st.integers(-(2**53), 2**53), st.floats(allow_nan=False), st.booleans()
)
STORED: list[dict[str, MetadataValue]] = [
    {"team": "red", 'te"am': "x", "a.b": 1},
    {"team": 'r"ed', "$": "y", "": "empty"},
]


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> KeywordIndex:
    built = build(request.param, tmp_path_factory.mktemp("fuzz") / "indexes")
    chunks = [chunk(ACME, f"d{i}", i + 1, "policy", metadata=m) for i, m in enumerate(STORED)]
    built.apply(ACME, chunks, replace_documents=[], seq=1)
    return built


@settings(max_examples=200, deadline=None)
@given(filters=st.dictionaries(KEYS, VALUES, max_size=4))
def test_any_filter_is_answered(index: KeywordIndex, filters: dict[str, MetadataValue]) -> None:
    hits = index.search(
        ACME, "policy", limit=10, max_classification=Classification.RESTRICTED, filters=filters
    )
    assert {h.rowid for h in hits} <= {1, 2}


@pytest.mark.parametrize(
    ("filters", "rowids"),
    [
        ({'te"am': "x"}, {1}),
        ({"team": 'r"ed'}, {2}),
        ({"": "empty", "$": "y"}, {2}),
        ({"a.b": 1.0}, {1}),
    ],
)
def test_odd_keys_are_plain_keys(
    index: KeywordIndex, filters: dict[str, MetadataValue], rowids: set[int]
) -> None:
    hits = index.search(
        ACME, "policy", limit=10, max_classification=Classification.RESTRICTED, filters=filters
    )
    assert {h.rowid for h in hits} == rowids
