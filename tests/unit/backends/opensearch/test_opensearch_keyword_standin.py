"""The KeywordIndex contract suite on OpenSearchIndex(...).keyword over the HTTP stand-in.

The stand-in (standin.py, engine.py) models what these tests depend on: refresh visibility,
seq_no versions, our analyzer, match_phrase and bool matching, BM25 with per-index or DFS
statistics. So every request our backend sends for these behaviours is checked against that
model, the clearance side-channel test included (the stand-in scores a search at internal
clearance with the statistics of exactly the indexes it names). How far the model is from
OpenSearch itself is said in engine.py; test_opensearch_keyword_contract.py runs the same suite
against a live cluster when one is configured.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.contract.test_keyword_index_contract import *  # noqa: F403  # the suite runs here too
from tests.contract.test_keyword_index_contract import fill_two_tenants
from tests.unit.backends.opensearch.standin import OpenSearchStandIn

from tenantrag.backends import KeywordIndex
from tenantrag.backends.opensearch import OpenSearchIndex


@pytest.fixture  # type: ignore[no-redef]  # replaces the suite's fixture
def index() -> Iterator[KeywordIndex]:
    """A fresh stand-in node and an OpenSearch keyword index on it."""
    with OpenSearchStandIn() as node:
        made = OpenSearchIndex(node.url, index_prefix="tr", dimensions=16, backoff_s=0.0)
        yield made.keyword
        made.close()


@pytest.fixture(scope="module")  # type: ignore[no-redef]  # replaces the suite's fixture
def shared() -> Iterator[tuple[KeywordIndex, set[int]]]:
    """One two-tenant keyword index on a stand-in for the read-only tests."""
    with OpenSearchStandIn() as node:
        made = OpenSearchIndex(node.url, index_prefix="tr", dimensions=16, backoff_s=0.0)
        yield made.keyword, fill_two_tenants(made.keyword)[0]
        made.close()
