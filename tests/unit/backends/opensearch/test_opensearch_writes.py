"""Applies and drops as sent over HTTP: delete_by_query, bulk NDJSON, retries, the seq record."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from tests.unit.backends.opensearch.replies import (
    MAPPER_400,
    REJECTED_429,
    Reply,
    bulk_reply,
    by_query_reply,
    error,
)
from tests.unit.backends.opensearch.standin import OpenSearchStandIn, Recorded

from tenantrag.backends.keyword.tantivy import raw_term
from tenantrag.backends.opensearch import OpenSearchIndex
from tenantrag.errors import DependencyUnavailable, UpstreamError, UpstreamTimeout
from tenantrag.models import Chunk, Classification

ACME = "acme"


def chunk(rowid: int, document: str = "d", **fields: object) -> Chunk:
    """A chunk of acme's `document` with the store rowid `rowid`."""
    return Chunk(ACME, document, rowid, f"text {rowid}", rowid=rowid, **fields)  # type: ignore[arg-type]


def failing(standin: OpenSearchStandIn, statuses: dict[int, Reply]) -> Callable[[Recorded], Reply]:
    """A bulk reply where item i fails with statuses[i] and the rest are applied."""
    return standin.partial_bulk(statuses)


def all_rejected(request: Recorded) -> Reply:
    """A bulk reply refusing every item with 429."""
    return bulk_reply(request, dict.fromkeys(range(len(request.bulk_items)), REJECTED_429))


ALL_LEVELS = ",".join(f"tr-keyword.acme.{lv.label}" for lv in Classification)


def test_apply_refreshes_deletes_writes_refreshes_then_records(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """A keyword apply: refresh, delete the replaced documents in every level, bulk-write each
    chunk to its level's index, refresh, then record the seq in the state index."""
    chunks = [
        chunk(5, title="Policy", metadata={"team": "red", "year": 2024.0, "draft": False}),
        chunk(6, classification=Classification.RESTRICTED),
    ]
    long_id = "x" * 5_000
    index.keyword.apply(ACME, chunks, replace_documents=["d", long_id, "d"], seq=9)

    data = [r for r in standin.recorded if r.method in ("POST", "PUT", "DELETE")]
    assert [(r.method, r.path) for r in data] == [
        ("PUT", "/tr-state-000001"),
        ("PUT", "/tr-keyword.acme.internal-000001"),
        ("PUT", "/tr-keyword.acme.restricted-000001"),
        ("POST", f"/{ALL_LEVELS}/_refresh"),
        ("POST", f"/{ALL_LEVELS}/_delete_by_query"),
        ("POST", "/_bulk"),
        ("POST", f"/{ALL_LEVELS}/_refresh"),
        ("PUT", "/tr-state/_doc/acme"),
    ]
    refresh, delete, bulk, _, seq = data[3:]
    assert refresh.query == {"ignore_unavailable": "true", "allow_no_indices": "true"}
    assert delete.query == {
        "routing": ACME,
        "conflicts": "proceed",
        "refresh": "false",
        "ignore_unavailable": "true",
        "allow_no_indices": "true",
    }
    assert delete.body == {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"tenant_id": ACME}},
                    {"terms": {"document_id": ["d", raw_term(long_id)]}},
                ]
            }
        }
    }
    assert bulk.query == {"routing": ACME, "require_alias": "true"}
    assert bulk.headers["content-type"] == "application/x-ndjson"
    assert bulk.raw.endswith(b"\n")
    assert bulk.bulk_items == [
        (
            "index",
            {"_index": "tr-keyword.acme.internal", "_id": "acme:5", "routing": ACME},
            {
                "tenant_id": ACME,
                "document_id": "d",
                "rowid": 5,
                "classification": 1,
                "title": "Policy",
                "text": "Policy\ntext 5",
                "attrs": ["team=red", "year=2024", "draft=false"],
            },
        ),
        (
            "index",
            {"_index": "tr-keyword.acme.restricted", "_id": "acme:6", "routing": ACME},
            {
                "tenant_id": ACME,
                "document_id": "d",
                "rowid": 6,
                "classification": 3,
                "title": "",
                "text": "text 6",
                "attrs": [],
            },
        ),
    ]
    assert seq.query == {"routing": ACME, "refresh": "true", "require_alias": "true"}
    assert seq.body == {"tenant_id": ACME, "seq": 9}
    assert index.keyword.applied_seq(ACME) == 9


def test_a_replay_after_a_failed_keyword_apply_leaves_nothing_behind(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """A first write of a document whose bulk failed half-way left a chunk no refresh showed
    (so no delete_by_query could see it, and no conflict says so). The replay, with the rowids
    the store holds by then, refreshes the tenant's indexes first, so its delete removes it."""
    index.keyword.apply(ACME, [chunk(1, "other")], replace_documents=[], seq=1)
    standin.script("POST", "/_bulk$", failing(standin, {1: MAPPER_400}))
    with pytest.raises(UpstreamError, match="rejected 1 of 2"):
        index.keyword.apply(ACME, [chunk(3), chunk(4)], replace_documents=["d"], seq=2)
    live = standin.documents("tr-keyword.acme.internal", refreshed=False)
    assert set(live) == {"acme:1", "acme:3"}
    assert index.keyword.applied_seq(ACME) == 1
    index.keyword.apply(ACME, [chunk(5), chunk(6)], replace_documents=["d"], seq=3)
    assert set(standin.documents("tr-keyword.acme.internal")) == {"acme:1", "acme:5", "acme:6"}
    hits = index.keyword.search(ACME, "text", limit=10, max_classification=Classification.INTERNAL)
    assert {h.rowid for h in hits} == {1, 5, 6}
    assert index.keyword.applied_seq(ACME) == 3


def test_a_replay_after_a_failed_vector_apply_resolves_its_conflicts(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """The shared vector index is not refreshed up front: the replay's delete meets version
    conflicts on the chunks the failed apply deleted, refreshes, and deletes what is left."""
    vectors = np.eye(4, dtype=np.float32)[:2]
    index.vector.apply(ACME, [chunk(1), chunk(2)], vectors, replace_documents=[], seq=1)
    standin.script("POST", "/_bulk$", failing(standin, {1: MAPPER_400}))
    with pytest.raises(UpstreamError):
        index.vector.apply(ACME, [chunk(3), chunk(4)], vectors, replace_documents=["d"], seq=2)
    index.vector.apply(ACME, [chunk(3), chunk(4)], vectors, replace_documents=["d"], seq=2)
    deletes = standin.requests("POST", "_delete_by_query$")
    assert len(deletes) == 3  # the failed apply's, then the replay's twice, a refresh between
    assert standin.requests("POST", "tr-vector/_refresh$")
    assert set(standin.documents("tr-vector")) == {"acme:3", "acme:4", "__seq__:acme"}
    assert index.vector.applied_seq(ACME) == 2


def test_vector_apply_writes_unit_vectors_and_omits_zero_ones(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Vectors go out L2-normalised; a zero vector leaves the field out (cosinesimil refuses it)."""
    vectors = np.array([[3, 0, 4, 0], [0, 0, 0, 0]], dtype=np.float32)
    index.vector.apply(ACME, [chunk(1), chunk(2)], vectors, replace_documents=[], seq=2)
    (bulk,) = standin.requests("POST", "/_bulk$")
    sources = [source for _, _, source in bulk.bulk_items]
    unit = pytest.approx([0.6, 0, 0.8, 0])
    common = {"tenant_id": ACME, "document_id": "d", "classification": 1}
    assert sources[0] == common | {"rowid": 1, "embedding": unit}
    assert sources[1] is not None and "embedding" not in sources[1]
    assert standin.requests("POST", "_delete_by_query") == []  # nothing to replace


def test_only_rejected_items_are_retried(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Items refused with 429/503 are sent again, alone; then the seq is recorded."""
    unavailable = (503, {"type": "unavailable_shards_exception", "reason": "primary not active"})
    standin.script(
        "POST",
        "/_bulk$",
        failing(standin, {1: REJECTED_429, 3: unavailable}),
        failing(standin, {0: REJECTED_429}),
    )
    index.keyword.apply(ACME, [chunk(r) for r in range(4)], replace_documents=[], seq=3)
    sent = [[meta["_id"] for _, meta, _ in r.bulk_items] for r in standin.requests("POST", "_bulk")]
    assert sent == [["acme:0", "acme:1", "acme:2", "acme:3"], ["acme:1", "acme:3"], ["acme:1"]]
    assert len(standin.requests("PUT", "/_doc/")) == 1


def test_persistent_overload_fails_without_recording_the_seq(
    make_index: Callable[..., OpenSearchIndex], standin: OpenSearchStandIn
) -> None:
    """Items still refused after max_attempts raise UpstreamError naming the count; no seq."""
    index = make_index(max_attempts=3)
    standin.script(
        "POST",
        "/_bulk$",
        failing(standin, {0: REJECTED_429, 2: REJECTED_429}),
        all_rejected,
        all_rejected,
    )
    with pytest.raises(UpstreamError, match="rejected 2 of 3 bulk items as overloaded 3 times"):
        index.keyword.apply(ACME, [chunk(r) for r in range(3)], replace_documents=[], seq=3)
    assert len(standin.requests("POST", "_bulk")) == 3
    assert standin.requests("PUT", "/_doc/") == []


def test_a_rejected_document_fails_at_once(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """A 400 mapper_parsing_exception is not retried: the error counts every failed item."""
    standin.script("POST", "/_bulk$", failing(standin, {0: REJECTED_429, 1: MAPPER_400}))
    with pytest.raises(UpstreamError, match=r"rejected 2 of 3 bulk items.*mapper_parsing"):
        index.keyword.apply(ACME, [chunk(r) for r in range(3)], replace_documents=[], seq=3)
    assert len(standin.requests("POST", "_bulk")) == 1
    assert standin.requests("PUT", "/_doc/") == []


def test_a_refused_bulk_request_is_retried_whole(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """A whole-request 429 (rejected execution) sends the same items again."""
    standin.script("POST", "/_bulk$", error(429, "rejected_execution_exception", "queue full"))
    index.keyword.apply(ACME, [chunk(1), chunk(2)], replace_documents=[], seq=1)
    bodies = [r.raw for r in standin.requests("POST", "_bulk")]
    assert len(bodies) == 2 and bodies[0] == bodies[1]


def test_a_bulk_request_refused_every_time_is_dependency_unavailable(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """A whole-request 429 on every attempt raises DependencyUnavailable; the seq is not written."""
    standin.script("POST", "/_bulk$", *[error(429, "rejected_execution_exception", "full")] * 3)
    with pytest.raises(DependencyUnavailable, match="429"):
        index.keyword.apply(ACME, [chunk(1)], replace_documents=[], seq=1)
    assert len(standin.requests("POST", "_bulk")) == 3
    assert standin.requests("PUT", "/_doc/") == []


def test_a_malformed_bulk_answer_is_an_error(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """A bulk answer without one item per operation is never taken as success."""
    standin.script("POST", "/_bulk$", (200, {"took": 1, "errors": False, "items": []}))
    with pytest.raises(UpstreamError, match="malformed"):
        index.keyword.apply(ACME, [chunk(1)], replace_documents=[], seq=1)
    assert standin.requests("PUT", "/_doc/") == []


def test_large_applies_are_split_by_size(
    make_index: Callable[..., OpenSearchIndex], standin: OpenSearchStandIn
) -> None:
    """Bulk requests stay under bulk_max_bytes; every chunk is sent exactly once."""
    index = make_index(bulk_max_bytes=2_000)
    chunks = [Chunk(ACME, "d", r, "word " * 40, rowid=r) for r in range(20)]
    index.keyword.apply(ACME, chunks, replace_documents=[], seq=1)
    requests = standin.requests("POST", "_bulk")
    assert len(requests) > 1
    assert all(len(r.raw) <= 2_000 for r in requests)
    ids = [meta["_id"] for r in requests for _, meta, _ in r.bulk_items]
    assert ids == [f"acme:{r}" for r in range(20)]


CONFLICTS = by_query_reply(version_conflicts=2)


@pytest.mark.parametrize(
    ("replies", "raised", "message"),
    [
        ([by_query_reply(3, timed_out=True)], UpstreamTimeout, "timed out"),
        ([CONFLICTS] * 3, UpstreamError, "2 version conflicts deleting replaced documents 3 times"),
        (
            [
                by_query_reply(
                    failures=[
                        {
                            "index": "tr-keyword.acme.internal-000001",
                            "id": "acme:1",
                            "status": 500,
                            "cause": {"type": "exception", "reason": "boom"},
                        }
                    ]
                )
            ],
            UpstreamError,
            "1 failures",
        ),
    ],
)
def test_incomplete_deletes_stop_the_apply(
    replies: list[Reply],
    raised: type[Exception],
    message: str,
    index: OpenSearchIndex,
    standin: OpenSearchStandIn,
) -> None:
    """A delete_by_query that did not delete everything raises before any chunk is written."""
    standin.script("POST", "_delete_by_query$", *replies)
    with pytest.raises(raised, match=message):
        index.keyword.apply(ACME, [chunk(1)], replace_documents=["d"], seq=2)
    assert standin.requests("POST", "_bulk") == []
    assert standin.requests("PUT", "/_doc/") == []


def test_conflicts_that_clear_after_a_refresh_do_not_stop_the_apply(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Conflicts, then none after a refresh: the apply goes on (a refresh between the two)."""
    standin.script("POST", "_delete_by_query$", CONFLICTS)
    index.keyword.apply(ACME, [chunk(1)], replace_documents=["d"], seq=2)
    paths = [r.path.rsplit("/", 1)[1] for r in standin.requests("POST")]
    assert paths == [
        "_refresh",
        "_delete_by_query",
        "_refresh",
        "_delete_by_query",
        "_bulk",
        "_refresh",
    ]
    assert index.keyword.applied_seq(ACME) == 2


def test_drop_deletes_the_tenants_indexes_and_records(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Keyword: the tenant's level indexes and its state record go; vector: a routed, refreshed
    delete_by_query on the tenant term. Nothing existing yet is fine."""
    index.drop(ACME)
    vectors = np.eye(4, dtype=np.float32)[:2]
    index.keyword.apply(
        ACME,
        [chunk(1), chunk(2, classification=Classification.PUBLIC)],
        replace_documents=[],
        seq=1,
    )
    index.vector.apply(ACME, [chunk(1), chunk(2)], vectors, replace_documents=[], seq=1)
    index.keyword.apply(
        "globex", [Chunk("globex", "g", 0, "x", rowid=9)], replace_documents=[], seq=1
    )
    index.drop(ACME)
    assert sorted(standin.node.aliases) == ["tr-keyword.globex.internal", "tr-state", "tr-vector"]
    assert set(standin.documents("tr-state")) == {"globex"}
    assert set(standin.documents("tr-vector")) == set()
    assert index.keyword.applied_seq(ACME) == index.vector.applied_seq(ACME) == 0
    assert index.keyword.applied_seq("globex") == 1
    (get,) = standin.requests("GET", f"^/{ALL_LEVELS}$")[-1:]
    assert get.query == {"ignore_unavailable": "true", "allow_no_indices": "true"}
    (drop,) = standin.requests("POST", "tr-vector/_delete_by_query")[-1:]
    assert drop.query == {"routing": ACME, "conflicts": "proceed", "refresh": "true"}
    assert drop.body == {"query": {"bool": {"filter": [{"term": {"tenant_id": ACME}}]}}}


def test_every_request_is_scoped_to_the_tenant(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Across applies, searches and drops, each data request is routed to and filtered by acme,
    and the keyword requests name only acme's indexes."""
    vectors = np.eye(4, dtype=np.float32)[:2]
    index.keyword.apply(ACME, [chunk(1), chunk(2)], replace_documents=["d"], seq=1)
    index.vector.apply(ACME, [chunk(1), chunk(2)], vectors, replace_documents=["d"], seq=1)
    index.keyword.search(ACME, "text", limit=5, max_classification=Classification.PUBLIC)
    index.vector.search(ACME, vectors[0], limit=5, max_classification=Classification.PUBLIC)
    index.drop(ACME)
    for request in standin.recorded:
        names = request.path.split("/")[1].split(",") if request.path != "/_bulk" else []
        for name in names:
            assert name.startswith(("tr-keyword.acme.", "tr-state", "tr-vector")), request.path
        if any(k in request.path for k in ("_search", "_by_query", "_bulk", "/_doc")):
            assert request.query["routing"] == ACME, request.path
        if request.path.endswith(("_search", "_delete_by_query")):
            assert {"term": {"tenant_id": ACME}} in request.body["query"]["bool"]["filter"]
        for _, meta, source in request.bulk_items if request.path.endswith("_bulk") else []:
            assert meta["routing"] == ACME and meta["_id"].startswith("acme:")
            assert meta["_index"] in ("tr-keyword.acme.internal", "tr-vector")
            assert source is not None and source["tenant_id"] == ACME


def test_bad_batches_are_refused_before_any_request(
    index: OpenSearchIndex, standin: OpenSearchStandIn
) -> None:
    """Another tenant's chunk, a wrong vector width or count: ValueError, nothing sent."""
    other = Chunk("globex", "g", 0, "x", rowid=1)
    with pytest.raises(ValueError, match="tenant"):
        index.keyword.apply(ACME, [other], replace_documents=[], seq=1)
    with pytest.raises(ValueError, match="tenant"):
        index.vector.apply(ACME, [other], np.ones((1, 4)), replace_documents=[], seq=1)
    with pytest.raises(ValueError, match="shape"):
        index.vector.apply(ACME, [chunk(1)], np.ones((1, 5)), replace_documents=[], seq=1)
    with pytest.raises(ValueError, match="vectors"):
        index.vector.apply(ACME, [chunk(1)], np.ones((2, 4)), replace_documents=[], seq=1)
    assert standin.recorded == []
