"""Fixtures for the OpenSearch backend tests: the HTTP stand-in and an index pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.unit.backends.opensearch.standin import OpenSearchStandIn

from tenantrag.backends.opensearch import OpenSearchIndex

DIMS = 4


@pytest.fixture
def standin() -> Iterator[OpenSearchStandIn]:
    """A fresh OpenSearch stand-in on 127.0.0.1."""
    with OpenSearchStandIn() as node:
        yield node


@pytest.fixture
def make_index(standin: OpenSearchStandIn) -> Iterator[Callable[..., OpenSearchIndex]]:
    """Build OpenSearchIndex objects talking to the stand-in (no backoff, short timeouts)."""
    made: list[OpenSearchIndex] = []

    def build(**options: Any) -> OpenSearchIndex:
        defaults: dict[str, Any] = {
            "index_prefix": "tr",
            "dimensions": DIMS,
            "backoff_s": 0.0,
            "timeout_s": 2.0,
        }
        options = defaults | options
        index = OpenSearchIndex(options.pop("url", standin.url), **options)
        made.append(index)
        return index

    yield build
    for index in made:
        index.close()


@pytest.fixture
def index(make_index: Callable[..., OpenSearchIndex]) -> OpenSearchIndex:
    """An OpenSearchIndex over the stand-in with the default options."""
    return make_index()
