"""A live OpenSearch for the contract suites: used only when TENANTRAG_TEST_OPENSEARCH_URL is set.

A test option, not a setting: tests/conftest.py removes every other TENANTRAG_* variable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tenantrag.backends.opensearch import OpenSearchIndex

URL = os.environ.get("TENANTRAG_TEST_OPENSEARCH_URL")
CA_CERTS = os.environ.get("TENANTRAG_TEST_OPENSEARCH_CA_CERTS")

needs_live_opensearch = pytest.mark.skipif(
    not URL,
    reason=(
        "the contract suites need a live OpenSearch: set TENANTRAG_TEST_OPENSEARCH_URL "
        "(and TENANTRAG_TEST_OPENSEARCH_CA_CERTS for a self-signed cluster); none runs on this "
        "machine, so the keyword suite ran against the stand-in only "
        "(test_opensearch_keyword_standin.py)"
    ),
)


@contextmanager
def live_index(dimensions: int) -> Iterator[OpenSearchIndex]:
    """A fresh pair of indexes under a unique prefix on the live cluster, deleted afterwards."""
    assert URL is not None
    index = OpenSearchIndex(
        URL,
        index_prefix=f"tenantrag-test-{uuid.uuid4().hex[:12]}",
        dimensions=dimensions,
        ca_certs=CA_CERTS,
        replicas=0,
    )
    try:
        yield index
    finally:
        index.delete_indexes()
        index.close()
