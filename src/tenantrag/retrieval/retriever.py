"""Hybrid retrieval: BM25 and vector candidates, fused, then checked for leakage.

The clearance ceiling is applied inside each index, before ranking, so a chunk above the
caller's clearance can never take a place in the candidate lists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import structlog

from tenantrag.backends import KeywordIndex, VectorIndex
from tenantrag.backends.store import CorpusReader
from tenantrag.backends.sync import IndexSync
from tenantrag.models import Chunk, Hit, IndexHit, MetadataValue, Principal, Tenant
from tenantrag.observability import metrics
from tenantrag.observability.tracing import span
from tenantrag.retrieval.fusion import Fused, fuse, single

log = structlog.get_logger("tenantrag.retrieve")
MODES = ("hybrid", "bm25", "vector")
# The one leakage hook, for every place a chunk of another tenant can be caught: told the chunk
# and the stage that caught it. Callers bind it to their request (`Auditor.leakage`).
LeakageHook = Callable[[Chunk, str], None]


@dataclass(frozen=True, slots=True)
class SearchParams:
    """What the caller asked for."""

    query: str
    top_k: int = 5
    mode: str = "hybrid"
    filters: Mapping[str, MetadataValue] | None = None
    dedupe_documents: bool = False
    fusion: str | None = None  # None: the tenant's setting


class Retriever:
    """Runs both retrievers on the caller's tenant and fuses their lists."""

    def __init__(
        self,
        store: CorpusReader,
        keyword: KeywordIndex,
        vector: VectorIndex,
        sync: IndexSync,
        *,
        candidates: int = 100,
    ) -> None:
        self.store, self.keyword, self.vector, self.sync = store, keyword, vector, sync
        self.candidates = candidates

    def retrieve(
        self,
        tenant: Tenant,
        principal: Principal,
        params: SearchParams,
        query_vector: np.ndarray | None,
        *,
        on_leakage: LeakageHook | None = None,
    ) -> list[Hit]:
        """The best `top_k` chunks of the principal's tenant for the query, best first.

        A chunk of another tenant (an index bug) is dropped and reported to `on_leakage`;
        without a hook it is counted and logged.
        """
        tid = principal.tenant_id
        with span("retrieve.sync"):
            self.sync.ensure_current(tid)
        n = max(self.candidates, params.top_k)
        want = n if params.dedupe_documents else params.top_k
        lexical: list[IndexHit] = []
        semantic: list[IndexHit] = []
        if params.mode in ("hybrid", "bm25"):
            with span("retrieve.bm25", {"db.system": "keyword"}):
                lexical = self.keyword.search(
                    tid,
                    params.query,
                    limit=n,
                    max_classification=principal.clearance,
                    filters=params.filters or None,
                )
        if params.mode in ("hybrid", "vector") and query_vector is not None:
            allowed = self.store.rowids_matching(tid, params.filters) if params.filters else None
            with span("retrieve.vector", {"db.system": "vector"}):
                semantic = self.vector.search(
                    tid,
                    query_vector,
                    limit=n,
                    max_classification=principal.clearance,
                    allowed=allowed,
                )
        if params.mode == "bm25":
            fused = single(lexical, kind="bm25")[:want]
        elif params.mode == "vector":
            fused = single(semantic, kind="vector")[:want]
        else:
            fused = fuse(
                lexical,
                semantic,
                bm25_weight=tenant.bm25_weight,
                vector_weight=tenant.vector_weight,
                method=params.fusion or tenant.fusion,
                limit=want,
            )
        hits = self._load(principal, fused, on_leakage or _logged(tid))
        if params.dedupe_documents:
            hits = _best_per_document(hits)
        return hits[: params.top_k]

    def _load(
        self,
        principal: Principal,
        fused: Sequence[Fused],
        on_leakage: LeakageHook,
    ) -> list[Hit]:
        """Fetch the chunks and drop any that is not the tenant's or is above clearance."""
        with span("store.fetch_chunks", {"db.system": "sqlite"}):
            chunks = self.store.fetch_chunks([f.rowid for f in fused])
        hits = []
        for f in fused:
            chunk = chunks.get(f.rowid)
            if chunk is None:  # deleted between the index answer and now
                continue
            if admitted(chunk, principal, on_leakage):
                hits.append(Hit(chunk, f.score, f.bm25, f.vector, f.bm25_rank, f.vector_rank))
        return hits


def admitted(chunk: Chunk, principal: Principal, on_leakage: LeakageHook) -> bool:
    """True when `chunk` is the principal's tenant's and within their clearance.

    The second of retrieval's two clearance layers: the indexes apply the ceiling before
    ranking, and this re-check after the store read catches an index that did not (a bug), so
    /api/search never depends on one mechanism alone. A foreign chunk goes to `on_leakage`.
    """
    if chunk.tenant_id != principal.tenant_id:
        on_leakage(chunk, "retrieve")
        return False
    if chunk.classification > principal.clearance:
        log.error("clearance_leak_blocked", tenant_id=principal.tenant_id, rowid=chunk.rowid)
        return False
    return True


def _logged(tenant_id: str) -> LeakageHook:
    """The hook of a caller without an audit trail (evaluation, bench): count and log."""

    def report(chunk: Chunk, stage: str) -> None:
        metrics.LEAKAGE.labels(tenant=tenant_id).inc()
        log.error("cross_tenant_leakage", tenant_id=tenant_id, chunk_id=chunk.chunk_id, stage=stage)

    return report


def _best_per_document(hits: Sequence[Hit]) -> list[Hit]:
    seen: set[str] = set()
    out = []
    for hit in hits:
        if hit.chunk.document_id not in seen:
            seen.add(hit.chunk.document_id)
            out.append(hit)
    return out
