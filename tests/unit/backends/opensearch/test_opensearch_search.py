"""Searches as sent over HTTP: the tenant scope, where the user's text goes, k-NN bodies, scores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from tests.contract.test_keyword_index_contract import HOSTILE_QUERIES
from tests.unit.backends.opensearch.replies import error, index_not_found, search_reply
from tests.unit.backends.opensearch.standin import OpenSearchStandIn

from tenantrag.backends.opensearch import OpenSearchIndex
from tenantrag.models import Classification

ACME = "acme"
PUBLIC, SECRET = Classification.PUBLIC, Classification.CONFIDENTIAL
LENIENT = {"ignore_unavailable": "true", "allow_no_indices": "true"}
KEYWORD_QUERY = {"routing": ACME, "search_type": "dfs_query_then_fetch"} | LENIENT


def leaf(words: str) -> dict[str, Any]:
    """The leaf for one phrase: match_phrase on the title (boost 0.1) or on the text, summed."""
    return {
        "bool": {
            "should": [
                {"match_phrase": {"title": {"query": words, "boost": 0.1}}},
                {"match_phrase": {"text": {"query": words}}},
            ],
            "minimum_should_match": 1,
        }
    }


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, string) for every string in a JSON value, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}/{key}#key", key
            yield from strings(item, f"{path}/{key}")
    elif isinstance(value, list):
        for item in value:
            yield from strings(item, f"{path}[]")
    elif isinstance(value, str):
        yield path, value


def scope(tenant: str, ceiling: int) -> list[dict[str, Any]]:
    """The tenant and clearance filter clauses every search must carry."""
    return [{"term": {"tenant_id": tenant}}, {"range": {"classification": {"lte": ceiling}}}]


def test_keyword_search_body_is_scoped_and_exact(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """A BM25 search sends exactly this body, routed to the tenant, filters beside the words."""
    index.keyword.search(
        ACME, "red apple", limit=7, max_classification=SECRET, filters={"team": "red", "n": 2.0}
    )
    (request,) = standin.requests("POST", "/_search$")
    levels = "tr-keyword.acme.public,tr-keyword.acme.internal,tr-keyword.acme.confidential"
    assert request.path == f"/{levels}/_search"
    assert request.query == KEYWORD_QUERY
    assert request.body == {
        "size": 7,
        "_source": False,
        "track_total_hits": False,
        "query": {
            "bool": {
                "must": [
                    {"bool": {"should": [leaf("red"), leaf("apple")], "minimum_should_match": 1}}
                ],
                "filter": [
                    *scope(ACME, 2),
                    {"term": {"attrs": "team=red"}},
                    {"term": {"attrs": "n=2"}},
                ],
            }
        },
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("red AND pie", {"bool": {"must": [leaf("red"), leaf("pie")]}}),
        (
            "apple -red",
            {
                "bool": {
                    "should": [leaf("apple")],
                    "must_not": [leaf("red")],
                    "minimum_should_match": 1,
                }
            },
        ),
        ('"red apple"', leaf("red apple")),
        (
            "(red OR green) AND -pie",
            {
                "bool": {
                    "must": [
                        {
                            "bool": {
                                "should": [leaf("red"), leaf("green")],
                                "minimum_should_match": 1,
                            }
                        }
                    ],
                    "must_not": [leaf("pie")],
                }
            },
        ),
    ],
)
def test_operators_become_a_bool_tree(
    text: str, expected: dict[str, Any], index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """AND, OR, -word and phrases keep Lucene's classic meaning, built as bool clauses."""
    index.keyword.search(ACME, text, limit=5, max_classification=PUBLIC)
    (request,) = standin.requests("POST", "/_search$")
    assert request.body["query"]["bool"]["must"] == [expected]


@pytest.mark.parametrize("text", ["-apple", "*", "", "   ", "AND OR", "- -", "\\"])
def test_nothing_to_look_for_sends_nothing(
    text: str, index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Only excluded words, wildcards or operators: no request and no hits (never match-all)."""
    assert index.keyword.search(ACME, text, limit=5, max_classification=PUBLIC) == []
    assert standin.requests("POST", "/_search$") == []


@pytest.mark.parametrize("query", HOSTILE_QUERIES, ids=range(len(HOSTILE_QUERIES)))
def test_user_text_only_reaches_phrase_leaves(
    query: str, index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Whatever the user types, the scope filters are intact and their words sit only in leaves."""
    index.keyword.search(ACME, query, limit=50, max_classification=PUBLIC)
    for request in standin.requests("POST", "/_search$"):
        assert request.path == "/tr-keyword.acme.public/_search"
        assert request.query == KEYWORD_QUERY
        bool_query = request.body["query"]["bool"]
        assert bool_query["filter"] == scope(ACME, 0)
        assert set(bool_query) == {"must", "filter"}
        for path, value in strings(bool_query["must"]):
            if path.endswith(("/match_phrase/title/query", "/match_phrase/text/query")):
                assert value.replace(" ", "").isalnum(), value
            else:  # every other string is one we wrote: keys and field names
                assert value in _OUR_STRINGS, (path, value)
        for found in strings(request.body):
            assert "globex" not in found[1] or found[0].endswith("/query")


_OUR_STRINGS = {
    "bool",
    "must",
    "should",
    "must_not",
    "minimum_should_match",
    "match_phrase",
    "query",
    "boost",
    "title",
    "text",
}


def test_field_syntax_cannot_widen_the_scope(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """`tenant_id:globex` is searched as words; the tenant filter still names acme alone."""
    index.keyword.search(ACME, "tenant_id:globex *", limit=5, max_classification=PUBLIC)
    (request,) = standin.requests("POST", "/_search$")
    must = request.body["query"]["bool"]["must"][0]
    assert must == {
        "bool": {
            "should": [leaf("tenant"), leaf("id"), leaf("globex")],
            "minimum_should_match": 1,
        }
    }
    assert request.body["query"]["bool"]["filter"][0] == {"term": {"tenant_id": ACME}}


def test_knn_body_filters_inside_and_around(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """A vector search sends a unit vector, k = limit, and the scope in knn.filter and around."""
    index.vector.search(
        ACME, np.array([3.0, 0, 4.0, 0]), limit=3, max_classification=SECRET, allowed=[9, 2, 9]
    )
    (request,) = standin.requests("POST", "/_search$")
    assert request.path == "/tr-vector/_search"
    assert request.query == {"routing": ACME}
    guards = [*scope(ACME, 2), {"terms": {"rowid": [2, 9]}}]
    assert request.body == {
        "size": 3,
        "_source": False,
        "track_total_hits": False,
        "query": {
            "bool": {
                "must": [
                    {
                        "knn": {
                            "embedding": {
                                "vector": pytest.approx([0.6, 0.0, 0.8, 0.0]),
                                "k": 3,
                                "method_parameters": {"ef_search": 100},
                                "filter": {"bool": {"filter": guards}},
                            }
                        }
                    }
                ],
                "filter": guards,
            }
        },
    }


def test_cosine_scores_are_recovered(index: OpenSearchIndex, standin: OpenSearchStandIn) -> None:
    """cosinesimil scores (1 + cos) / 2 come back as the cosines FAISS would report."""
    standin.script(
        "POST", "/_search$", search_reply([("acme:1", 1.0), ("acme:2", 0.75), ("acme:3", 0.25)])
    )
    hits = index.vector.search(ACME, np.ones(4), limit=3, max_classification=PUBLIC)
    assert [(h.rowid, h.score) for h in hits] == [(1, 1.0), (2, 0.5), (3, -0.5)]


def test_bm25_scores_pass_through_and_ties_order_by_rowid(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """BM25 _score is returned as is; equal scores come lowest rowid first, as FAISS orders them."""
    standin.script(
        "POST", "/_search$", search_reply([("acme:9", 2.5), ("acme:4", 2.5), ("acme:7", 3.25)])
    )
    hits = index.keyword.search(ACME, "word", limit=3, max_classification=PUBLIC)
    assert [(h.rowid, h.score) for h in hits] == [(7, 3.25), (4, 2.5), (9, 2.5)]


def test_hits_of_another_tenant_are_dropped(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Were the server ever to answer another tenant's _id, it would not be returned."""
    standin.script(
        "POST",
        "/_search$",
        search_reply([("globex:1", 9.0), ("__seq__:acme", 8.0), ("acme:x", 5), ("acme:2", 1)]),
    )
    hits = index.keyword.search(ACME, "word", limit=3, max_classification=PUBLIC)
    assert [h.rowid for h in hits] == [2]


def test_large_allowed_sets_are_split_into_terms_clauses(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """More allowed rowids than index.max_terms_count go as several terms clauses, any may match."""
    allowed = list(range(70_000))
    index.vector.search(ACME, np.ones(4), limit=3, max_classification=PUBLIC, allowed=allowed)
    (request,) = standin.requests("POST", "/_search$")
    clause = request.body["query"]["bool"]["filter"][2]
    parts = clause["bool"]["should"]
    assert [len(p["terms"]["rowid"]) for p in parts] == [65_536, 70_000 - 65_536]


def test_searches_that_cannot_match_send_nothing(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """limit 0, an empty allowed list or a zero query vector: [] without a request."""
    assert index.keyword.search(ACME, "word", limit=0, max_classification=PUBLIC) == []
    assert index.vector.search(ACME, np.ones(4), limit=0, max_classification=PUBLIC) == []
    assert (
        index.vector.search(ACME, np.ones(4), limit=5, max_classification=PUBLIC, allowed=[]) == []
    )
    assert index.vector.search(ACME, np.zeros(4), limit=5, max_classification=PUBLIC) == []
    assert standin.requests("POST") == []


def test_missing_index_means_no_hits(index: OpenSearchIndex, standin: OpenSearchStandIn) -> None:
    """Before the first write no index exists: searches find nothing, seq is 0."""
    assert index.keyword.search(ACME, "word", limit=5, max_classification=PUBLIC) == []
    assert index.vector.search(ACME, np.ones(4), limit=5, max_classification=PUBLIC) == []
    assert index.keyword.applied_seq(ACME) == 0
    assert index.vector.applied_seq(ACME) == 0
    assert len(standin.requests("POST", "/_search$")) == 2
    assert standin.requests("GET", "/tr-state/_doc/acme")[0].query == {
        "realtime": "false",
        "routing": ACME,
    }


def test_searches_read_only_the_levels_up_to_the_clearance(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Each clearance names exactly the tenant's indexes of its level and below."""
    for ceiling in Classification:
        index.keyword.search(ACME, "word", limit=5, max_classification=ceiling)
    paths = [r.path.split("/")[1].split(",") for r in standin.requests("POST", "/_search$")]
    assert paths == [
        [f"tr-keyword.acme.{lv.label}" for lv in Classification if lv <= ceiling]
        for ceiling in Classification
    ]


def test_applied_seq_reads_the_seq_record(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """applied_seq is the `seq` of the tenant's __seq__ record."""
    standin.script(
        "GET",
        "/_doc/",
        (
            200,
            {
                "_index": "tr-keyword-000001",
                "_id": "__seq__:acme",
                "_version": 3,
                "_seq_no": 5,
                "_primary_term": 1,
                "found": True,
                "_source": {"tenant_id": ACME, "seq": 42},
            },
        ),
    )
    assert index.keyword.applied_seq(ACME) == 42
    (request,) = standin.requests("GET", "/_doc/")
    assert request.path == "/tr-state/_doc/acme"


def test_failed_shards_are_an_error_not_fewer_hits(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """A 200 answer with a failed shard raises rather than returning partial results."""
    from tenantrag.errors import UpstreamError

    standin.script("POST", "/_search$", search_reply([("acme:1", 1.0)], failed=1))
    with pytest.raises(UpstreamError, match="failed on 1 of 1 shards"):
        index.keyword.search(ACME, "word", limit=5, max_classification=PUBLIC)


def test_other_not_found_errors_are_not_swallowed(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Only index_not_found means "no index yet"; another 404 is an upstream error."""
    from tenantrag.errors import UpstreamError

    standin.script("POST", "/_search$", error(404, "resource_not_found_exception", "no model"))
    with pytest.raises(UpstreamError, match="resource_not_found_exception"):
        index.keyword.search(ACME, "word", limit=5, max_classification=PUBLIC)
    standin.script("POST", "/_search$", index_not_found("tr-keyword"))
    assert index.keyword.search(ACME, "word", limit=5, max_classification=PUBLIC) == []


def test_invalid_tenant_ids_are_refused_before_any_request(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """A malformed tenant id raises ValueError and never reaches the server."""
    for tenant in ("", "Acme", "a", "acme\n", "*"):
        with pytest.raises(ValueError, match="tenant"):
            index.keyword.search(tenant, "word", limit=5, max_classification=PUBLIC)
        with pytest.raises(ValueError, match="tenant"):
            index.vector.applied_seq(tenant)
    assert standin.recorded == []
