"""Index creation over HTTP: the templates (k-NN mapping as documented), the flow, width checks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from tests.unit.backends.opensearch.replies import Reply, error
from tests.unit.backends.opensearch.standin import OpenSearchStandIn, Recorded

from tenantrag.backends import KeywordIndex, VectorIndex
from tenantrag.backends.opensearch import OpenSearchIndex
from tenantrag.errors import UpstreamError
from tenantrag.models import Chunk

COMMON_FIELDS = {
    "tenant_id": {"type": "keyword"},
    "document_id": {"type": "keyword"},
    "rowid": {"type": "long"},
    "classification": {"type": "byte"},
    "seq": {"type": "long"},
}


def test_adapters_satisfy_the_protocols(index: OpenSearchIndex) -> None:
    """`.keyword` is a KeywordIndex and `.vector` a VectorIndex, neither process-local."""
    assert isinstance(index.keyword, KeywordIndex)
    assert isinstance(index.vector, VectorIndex)
    assert not getattr(index.vector, "process_local", False)


def test_first_write_creates_template_index_and_alias(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """HEAD the alias, PUT the template, PUT the first index with the alias; only once."""
    for seq in (1, 2):
        index.keyword.apply("acme", [], replace_documents=["d"], seq=seq)
    setup = [(r.method, r.path) for r in standin.recorded if "_doc" not in r.path]
    assert setup[:3] == [
        ("HEAD", "/tr-keyword"),
        ("PUT", "/_index_template/tr-keyword"),
        ("PUT", "/tr-keyword-000001"),
    ]
    assert len(standin.requests("HEAD")) == 1
    (create,) = standin.requests("PUT", "^/tr-keyword-000001$")
    assert create.body == {"aliases": {"tr-keyword": {"is_write_index": True}}}


def test_keyword_template(index: OpenSearchIndex, standin: OpenSearchStandIn) -> None:
    """The keyword template: english text fields, keyword filters, routing required, no refresh."""
    index.ensure_indexes()
    (put,) = standin.requests("PUT", "/_index_template/tr-keyword$")
    assert put.body == {
        "index_patterns": ["tr-keyword-*"],
        "priority": 100,
        "template": {
            "settings": {
                "index": {"number_of_shards": 1, "number_of_replicas": 1, "refresh_interval": "-1"}
            },
            "mappings": {
                "dynamic": "strict",
                "_routing": {"required": True},
                "properties": COMMON_FIELDS
                | {
                    "title": {"type": "text", "analyzer": "english"},
                    "text": {"type": "text", "analyzer": "english"},
                    "attrs": {"type": "keyword"},
                },
            },
        },
    }


def test_vector_template_matches_the_documented_knn_mapping(
    make_index: Callable[..., OpenSearchIndex], standin: OpenSearchStandIn
) -> None:
    """knn_vector with dimension, and an hnsw method in cosinesimil space on the lucene engine.

    Shape from https://docs.opensearch.org/latest/mappings/supported-field-types/knn-methods-engines/
    """
    make_index(dimensions=384, shards=3, replicas=2).ensure_indexes()
    (put,) = standin.requests("PUT", "/_index_template/tr-vector$")
    template = put.body["template"]
    assert template["settings"] == {
        "index": {
            "number_of_shards": 3,
            "number_of_replicas": 2,
            "refresh_interval": "-1",
            "knn": True,
        }
    }
    assert template["mappings"]["properties"] == COMMON_FIELDS | {
        "embedding": {
            "type": "knn_vector",
            "dimension": 384,
            "method": {
                "name": "hnsw",
                "space_type": "cosinesimil",
                "engine": "lucene",
                "parameters": {"m": 16, "ef_construction": 100},
            },
        }
    }
    assert template["mappings"]["_routing"] == {"required": True}


def test_an_index_created_meanwhile_is_fine(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Another process winning the creation race (resource_already_exists) is not an error."""

    def other_process_won(request: Recorded) -> Reply:
        standin.create_index("tr-keyword-000001", request.body)
        return error(
            400,
            "resource_already_exists_exception",
            "index [tr-keyword-000001/x] already exists",
            index="tr-keyword-000001",
        )

    standin.script("PUT", "^/tr-keyword-000001$", other_process_won)
    index.keyword.apply("acme", [], replace_documents=[], seq=1)
    assert len(standin.requests("PUT", "/_doc/__seq__")) == 1


def test_other_creation_errors_are_raised(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """A template OpenSearch refuses stops the apply with the server's reason."""
    standin.script(
        "PUT", "^/_index_template/", error(400, "illegal_argument_exception", "unknown setting")
    )
    with pytest.raises(UpstreamError, match="illegal_argument_exception: unknown setting"):
        index.keyword.apply("acme", [], replace_documents=[], seq=1)
    assert standin.requests("POST") == []


def test_an_existing_index_of_another_width_is_refused(
    make_index: Callable[..., OpenSearchIndex], standin: OpenSearchStandIn
) -> None:
    """Pointed at vectors of another width, the vector index refuses to write, naming both."""
    make_index(dimensions=8).ensure_indexes()
    index = make_index(dimensions=4)
    chunk = Chunk("acme", "d", 0, "x", rowid=1)
    with pytest.raises(
        UpstreamError, match="holds 8-dimensional vectors but this service embeds 4"
    ):
        index.vector.apply("acme", [chunk], np.ones((1, 4)), replace_documents=[], seq=1)
    assert standin.requests("POST", "_bulk") == []
    index.keyword.apply("acme", [chunk], replace_documents=[], seq=1)  # the keyword side is fine


def test_delete_indexes_removes_indexes_and_templates(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """delete_indexes deletes what the alias points to and both templates; absent ones are fine."""
    index.delete_indexes()  # nothing exists yet
    index.ensure_indexes()
    index.delete_indexes()
    deleted = [r.path for r in standin.requests("DELETE")]
    assert deleted == [
        "/_index_template/tr-keyword",
        "/_index_template/tr-vector",
        "/tr-keyword-000001",
        "/_index_template/tr-keyword",
        "/tr-vector-000001",
        "/_index_template/tr-vector",
    ]
    assert standin.state.indexes == {}


def test_prefixes_that_are_not_index_names_are_refused(standin: OpenSearchStandIn) -> None:
    """An index prefix OpenSearch would reject (or read as a pattern) raises ValueError."""
    for prefix in ("Tenant", "a*", "_x", "", "a/b"):
        with pytest.raises(ValueError, match="prefix"):
            OpenSearchIndex(standin.url, index_prefix=prefix)
