"""Answers shaped as OpenSearch documents them, for the stand-in and the tests' scripts.

Shapes, from OpenSearch's documentation:
- search: https://docs.opensearch.org/latest/api-reference/search-apis/search/
- bulk (incl. `errors: true` and per-item status/error):
  https://docs.opensearch.org/latest/api-reference/document-apis/bulk/
- delete by query: https://docs.opensearch.org/latest/api-reference/document-apis/delete-by-query/
- index / get a document: https://docs.opensearch.org/latest/api-reference/document-apis/index-document/
  and .../document-apis/get-documents/
- create index and index templates: https://docs.opensearch.org/latest/api-reference/index-apis/create-index/
  and .../index-apis/create-index-template/
- error bodies ({"error": {"root_cause": [...], "type", "reason"}, "status"}):
  https://github.com/opensearch-project/opensearch-api-specification (spec/schemas/_common.yaml,
  ErrorCause and ErrorResponseBase)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.unit.backends.opensearch.standin import Recorded

Json = dict[str, Any]
Reply = tuple[int, Any]


def error(status: int, kind: str, reason: str, **extra: Any) -> Reply:
    """An OpenSearch error body: {"error": {"root_cause": [...], "type", "reason"}, "status"}."""
    cause = {"type": kind, "reason": reason, **extra}
    return status, {"error": {"root_cause": [cause], **cause}, "status": status}


def index_not_found(index: str) -> Reply:
    """The 404 OpenSearch answers for a missing index or alias."""
    return error(
        404,
        "index_not_found_exception",
        f"no such index [{index}]",
        index=index,
        **{"resource.id": index, "resource.type": "index_or_alias"},
        index_uuid="_na_",
    )


def search_reply(hits: list[tuple[str, float]], *, index: str = "x", failed: int = 0) -> Reply:
    """A 200 _search answer holding `hits` as (_id, _score), best first."""
    return 200, {
        "took": 3,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1 - failed, "skipped": 0, "failed": failed},
        "hits": {
            "total": {"value": len(hits), "relation": "eq"},
            "max_score": max((s for _, s in hits), default=None),
            "hits": [{"_index": index, "_id": i, "_score": s} for i, s in hits],
        },
    }


def bulk_item(action: str, meta: Json, status: int, err: Json | None = None) -> Json:
    """One entry of a bulk answer's `items`."""
    entry: Json = {"_index": meta.get("_index", "x"), "_id": meta.get("_id"), "status": status}
    if err is None:
        entry |= {
            "_version": 1,
            "result": "created",
            "_seq_no": 0,
            "_primary_term": 1,
            "_shards": {"total": 2, "successful": 1, "failed": 0},
        }
    else:
        entry["error"] = err
    return {action: entry}


def bulk_reply(request: Recorded, statuses: dict[int, Reply] | None = None) -> Reply:
    """A bulk answer to `request`: item i gets statuses[i] (status, error) or 201 created."""
    items = []
    for i, (action, meta, _) in enumerate(request.bulk_items):
        status, err = (statuses or {}).get(i, (201, None))
        items.append(bulk_item(action, meta, status, err))
    return 200, {
        "took": 30,
        "errors": any("error" in next(iter(x.values())) for x in items),
        "items": items,
    }


REJECTED_429 = (
    429,
    {
        "type": "es_rejected_execution_exception",
        "reason": "rejected execution of coordinating operation [shard_detail=[x][0][P]]",
    },
)
MAPPER_400 = (
    400,
    {
        "type": "mapper_parsing_exception",
        "reason": "failed to parse field [rowid] of type [long] in document",
        "caused_by": {"type": "illegal_argument_exception", "reason": "For input string"},
    },
)


def by_query_reply(deleted: int = 0, **overrides: Any) -> Reply:
    """A 200 _delete_by_query answer."""
    body = {
        "took": 12,
        "timed_out": False,
        "total": deleted,
        "deleted": deleted,
        "batches": 1,
        "version_conflicts": 0,
        "noops": 0,
        "retries": {"bulk": 0, "search": 0},
        "throttled_millis": 0,
        "requests_per_second": -1.0,
        "throttled_until_millis": 0,
        "failures": [],
    }
    return 200, body | overrides
