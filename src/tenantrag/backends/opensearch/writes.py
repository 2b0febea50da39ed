"""The documents written for each chunk, and the checks on a delete_by_query answer."""

from __future__ import annotations

from typing import Any

import numpy as np

from tenantrag.backends.keyword.tantivy import attribute_term, raw_term
from tenantrag.errors import UpstreamError, UpstreamTimeout
from tenantrag.models import Chunk

Json = dict[str, Any]


def _common(chunk: Chunk) -> Json:
    return {
        "tenant_id": chunk.tenant_id,
        "document_id": raw_term(chunk.document_id),
        "rowid": chunk.rowid,
        "classification": int(chunk.classification),
    }


def keyword_source(chunk: Chunk) -> Json:
    """The keyword index's document for `chunk`: its words and its filterable metadata."""
    return _common(chunk) | {
        "title": chunk.title,
        # the title heads the text too, as in the Tantivy index (see queries.phrase)
        "text": f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text,
        "attrs": [attribute_term(k, v) for k, v in chunk.metadata.items()],
    }


def vector_source(chunk: Chunk, unit: np.ndarray) -> Json:
    """The vector index's document for `chunk`, given its L2-normalised vector.

    A zero vector (which matches nothing) is left out: cosinesimil rejects it, and the
    document must still exist so that replacing its document deletes it.
    """
    source = _common(chunk)
    if unit.any():
        source["embedding"] = [float(x) for x in unit]
    return source


def check_by_query(response: Json, action: str) -> int:
    """The version conflicts a delete_by_query answer reports.

    With conflicts=proceed they are counted, not failures; raises when it timed out or failed
    on any document.
    """
    if response.get("timed_out"):
        raise UpstreamTimeout(f"OpenSearch timed out {action}")
    failures = response.get("failures") or []
    if failures:
        first = failures[0].get("cause", failures[0]) if isinstance(failures[0], dict) else {}
        raise UpstreamError(
            f"OpenSearch failed {action}: {len(failures)} failures "
            f"(first: {first.get('type', 'error')}: {first.get('reason', '')})"
        )
    return int(response.get("version_conflicts") or 0)
