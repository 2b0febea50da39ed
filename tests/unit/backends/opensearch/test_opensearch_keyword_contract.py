"""The KeywordIndex contract suite, run against a live OpenSearch (TENANTRAG_TEST_OPENSEARCH_URL).

Every test of tests/contract/test_keyword_index_contract.py is imported here and runs with the
fixtures below, which hand it OpenSearchIndex(...).keyword instead of Tantivy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.contract.test_keyword_index_contract import *  # noqa: F403  # the suite runs here too
from tests.contract.test_keyword_index_contract import fill_two_tenants
from tests.unit.backends.opensearch.live import live_index, needs_live_opensearch

from tenantrag.backends import KeywordIndex

pytestmark = needs_live_opensearch


@pytest.fixture  # type: ignore[no-redef]  # replaces the suite's fixture
def index() -> Iterator[KeywordIndex]:
    """A fresh, empty OpenSearch keyword index."""
    with live_index(dimensions=16) as live:
        yield live.keyword


@pytest.fixture(scope="module")  # type: ignore[no-redef]  # replaces the suite's fixture
def shared() -> Iterator[tuple[KeywordIndex, set[int]]]:
    """One two-tenant OpenSearch keyword index for the read-only tests; returns acme's rowids."""
    with live_index(dimensions=16) as live:
        yield live.keyword, fill_two_tenants(live.keyword)[0]
