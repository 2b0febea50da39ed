"""Index creation over HTTP: the bodies (analysis, k-NN mapping as documented), the flow, checks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from tests.unit.backends.opensearch.replies import Reply, error
from tests.unit.backends.opensearch.standin import OpenSearchStandIn, Recorded

from tenantrag.backends import KeywordIndex, VectorIndex
from tenantrag.backends.opensearch import OpenSearchIndex
from tenantrag.backends.opensearch.mappings import ANALYSIS
from tenantrag.errors import UpstreamError
from tenantrag.models import Chunk, Classification

COMMON_FIELDS = {
    "tenant_id": {"type": "keyword"},
    "document_id": {"type": "keyword"},
    "rowid": {"type": "long"},
    "classification": {"type": "byte"},
}
INTERNAL, RESTRICTED = Classification.INTERNAL, Classification.RESTRICTED


def chunk(rowid: int, level: Classification = INTERNAL) -> Chunk:
    """A chunk of acme at `level`."""
    return Chunk("acme", f"d{rowid}", 0, "words", rowid=rowid, classification=level)


def test_adapters_satisfy_the_protocols(index: OpenSearchIndex) -> None:
    """`.keyword` is a KeywordIndex and `.vector` a VectorIndex, neither process-local."""
    assert isinstance(index.keyword, KeywordIndex)
    assert isinstance(index.vector, VectorIndex)
    assert not getattr(index.vector, "process_local", False)


def test_a_level_index_is_made_by_its_first_chunk(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """The first internal chunk makes acme's internal index (and the state index), once."""
    for seq in (1, 2):
        index.keyword.apply("acme", [chunk(seq)], replace_documents=[], seq=seq)
    creates = [r.path for r in standin.requests("PUT", r"^/[^/]+$")]
    assert creates == ["/tr-state-000001", "/tr-keyword.acme.internal-000001"]
    assert [r.path for r in standin.requests("HEAD")] == ["/tr-state", "/tr-keyword.acme.internal"]
    index.keyword.apply("acme", [chunk(3, RESTRICTED)], replace_documents=[], seq=3)
    assert sorted(standin.node.aliases) == [
        "tr-keyword.acme.internal",
        "tr-keyword.acme.restricted",
        "tr-state",
    ]


def test_keyword_index_body(index: OpenSearchIndex, standin: OpenSearchStandIn) -> None:
    """One shard, no automatic refresh, our analyzer on title and text, routing required."""
    index.keyword.apply("acme", [chunk(1)], replace_documents=[], seq=1)
    (put,) = standin.requests("PUT", "^/tr-keyword.acme.internal-000001$")
    assert put.body == {
        "settings": {
            "index": {
                "number_of_shards": 1,
                "number_of_replicas": 1,
                "refresh_interval": "-1",
                "analysis": ANALYSIS,
            },
        },
        "mappings": {
            "dynamic": "strict",
            "_routing": {"required": True},
            "properties": COMMON_FIELDS
            | {
                "title": {"type": "text", "analyzer": "tenantrag_text"},
                "text": {"type": "text", "analyzer": "tenantrag_text"},
                "attrs": {"type": "keyword"},
            },
        },
        "aliases": {"tr-keyword.acme.internal": {"is_write_index": True}},
    }


def test_the_analyzer_is_documented_opensearch_syntax() -> None:
    """Pattern tokenizer on non-alphanumerics, length, lowercase, `_english_` stop, porter2."""
    assert ANALYSIS == {
        "tokenizer": {
            "tenantrag_words": {"type": "pattern", "pattern": "[^\\p{IsAlphabetic}\\p{N}]+"}
        },
        "filter": {
            "tenantrag_length": {"type": "length", "max": 39},
            "tenantrag_stop": {"type": "stop", "stopwords": "_english_"},
            "tenantrag_stemmer": {"type": "stemmer", "language": "porter2"},
        },
        "analyzer": {
            "tenantrag_text": {
                "type": "custom",
                "tokenizer": "tenantrag_words",
                "filter": ["tenantrag_length", "lowercase", "tenantrag_stop", "tenantrag_stemmer"],
            }
        },
    }


def test_vector_index_body_matches_the_documented_knn_mapping(
    make_index: Callable[..., OpenSearchIndex], standin: OpenSearchStandIn
) -> None:
    """knn_vector with dimension, and an hnsw method in cosinesimil space on the lucene engine.

    Shape from https://docs.opensearch.org/latest/mappings/supported-field-types/knn-methods-engines/
    """
    make_index(dimensions=384, shards=3, replicas=2).ensure_indexes()
    (put,) = standin.requests("PUT", "^/tr-vector-000001$")
    assert put.body["settings"] == {
        "index": {
            "number_of_shards": 3,
            "number_of_replicas": 2,
            "refresh_interval": "-1",
            "knn": True,
        }
    }
    assert put.body["mappings"]["properties"] == COMMON_FIELDS | {
        "seq": {"type": "long"},
        "embedding": {
            "type": "knn_vector",
            "dimension": 384,
            "method": {
                "name": "hnsw",
                "space_type": "cosinesimil",
                "engine": "lucene",
                "parameters": {"m": 16, "ef_construction": 100},
            },
        },
    }
    assert put.body["mappings"]["_routing"] == {"required": True}
    (state,) = standin.requests("PUT", "^/tr-state-000001$")
    assert state.body["mappings"]["properties"] == {
        "tenant_id": {"type": "keyword"},
        "seq": {"type": "long"},
    }


def test_an_index_created_meanwhile_is_fine(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Another process winning the creation race (resource_already_exists) is not an error."""

    def other_process_won(request: Recorded) -> Reply:
        standin.node.create("tr-keyword.acme.internal-000001", request.body)
        return error(
            400,
            "resource_already_exists_exception",
            "index [tr-keyword.acme.internal-000001/x] already exists",
            index="tr-keyword.acme.internal-000001",
        )

    standin.script("PUT", "^/tr-keyword.acme.internal-000001$", other_process_won)
    index.keyword.apply("acme", [chunk(1)], replace_documents=[], seq=1)
    assert index.keyword.applied_seq("acme") == 1
    assert "acme:1" in standin.documents("tr-keyword.acme.internal")


def test_other_creation_errors_are_raised(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """An index body OpenSearch refuses stops the apply with the server's reason."""
    standin.script(
        "PUT", "^/tr-keyword", error(400, "illegal_argument_exception", "unknown setting")
    )
    with pytest.raises(UpstreamError, match="illegal_argument_exception: unknown setting"):
        index.keyword.apply("acme", [chunk(1)], replace_documents=[], seq=1)
    assert standin.requests("POST", "_bulk") == []


def test_an_existing_index_of_another_width_is_refused(
    make_index: Callable[..., OpenSearchIndex], standin: OpenSearchStandIn
) -> None:
    """Pointed at vectors of another width, the vector index refuses to write, naming both."""
    make_index(dimensions=8).ensure_indexes()
    index = make_index(dimensions=4)
    with pytest.raises(
        UpstreamError, match="holds 8-dimensional vectors but this service embeds 4"
    ):
        index.vector.apply("acme", [chunk(1)], np.ones((1, 4)), replace_documents=[], seq=1)
    assert standin.requests("POST", "_bulk") == []
    index.keyword.apply("acme", [chunk(1)], replace_documents=[], seq=1)  # keyword side is fine


def test_an_index_deleted_under_a_running_service_is_made_again(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """A write into a level index deleted meanwhile fails once; the replay recreates it."""
    index.keyword.apply("acme", [chunk(1)], replace_documents=[], seq=1)
    standin.node.delete("tr-keyword.acme.internal-000001")  # an operator, or another host's drop
    with pytest.raises(UpstreamError, match="require_alias"):
        index.keyword.apply("acme", [chunk(2)], replace_documents=[], seq=2)
    index.keyword.apply("acme", [chunk(2)], replace_documents=[], seq=2)
    assert set(standin.documents("tr-keyword.acme.internal")) == {"acme:2"}


def test_delete_indexes_removes_every_index_of_the_prefix(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """delete_indexes deletes the shared and the per-tenant indexes; none existing is fine."""
    index.delete_indexes()  # nothing exists yet
    index.ensure_indexes()
    index.keyword.apply("acme", [chunk(1), chunk(2, RESTRICTED)], replace_documents=[], seq=1)
    index.delete_indexes()
    assert standin.node.indexes == {}
    deleted = sorted(r.path for r in standin.requests("DELETE"))
    assert deleted == [
        "/tr-keyword.acme.internal-000001",
        "/tr-keyword.acme.restricted-000001",
        "/tr-state-000001",
        "/tr-vector-000001",
    ]


def test_prefixes_that_are_not_index_names_are_refused(standin: OpenSearchStandIn) -> None:
    """An index prefix OpenSearch would reject (or read as a pattern) raises ValueError."""
    for prefix in ("Tenant", "a*", "_x", "", "a/b", "a.b", "a" * 101):
        with pytest.raises(ValueError, match="prefix"):
            OpenSearchIndex(standin.url, index_prefix=prefix)
