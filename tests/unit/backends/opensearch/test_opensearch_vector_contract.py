"""The VectorIndex contract suite, run against a live OpenSearch (TENANTRAG_TEST_OPENSEARCH_URL).

Every test of tests/contract/test_vector_index_contract.py is imported here and runs with the
fixture below, which hands it OpenSearchIndex(...).vector instead of FAISS.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.contract.test_vector_index_contract import *  # noqa: F403  # the suite runs here too
from tests.contract.test_vector_index_contract import DIMS
from tests.unit.backends.opensearch.live import live_index, needs_live_opensearch

from tenantrag.backends import VectorIndex

pytestmark = needs_live_opensearch


@pytest.fixture  # type: ignore[no-redef]  # replaces the suite's fixture
def index() -> Iterator[VectorIndex]:
    """A fresh, empty OpenSearch vector index."""
    with live_index(dimensions=DIMS) as live:
        yield live.vector
