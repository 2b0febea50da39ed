"""POST /api/search: hybrid retrieval over the caller's tenant, clearance-filtered and redacted."""

from __future__ import annotations

import time

from fastapi import APIRouter

from tenantrag.api.deps import CanQuery, IdsDep, ServicesDep, TenantDep
from tenantrag.api.schemas import (
    Ranks,
    Scores,
    SearchIn,
    SearchOut,
    SearchResult,
    classification_label,
)
from tenantrag.models import Hit
from tenantrag.retrieval import SearchParams

router = APIRouter(prefix="/api", tags=["search"])


def result(hit: Hit) -> SearchResult:
    """The wire form of a hit (its text already redacted when the tenant asks for that)."""
    c = hit.chunk
    return SearchResult(
        document_id=c.document_id,
        chunk_id=c.chunk_id,
        title=c.title,
        text=c.text,
        score=hit.score,
        scores=Scores(bm25=hit.bm25, vector=hit.vector),
        ranks=Ranks(bm25=hit.bm25_rank, vector=hit.vector_rank),
        classification=classification_label(c.classification),
        metadata=dict(c.metadata),
    )


@router.post("/search", summary="Hybrid search over your tenant's documents")
async def search(
    body: SearchIn, principal: CanQuery, tenant: TenantDep, services: ServicesDep, ids: IdsDep
) -> SearchOut:
    """The top_k chunks by BM25, vector or hybrid ranking, with each retriever's score and rank."""
    started = time.perf_counter()
    await services.costs.acheck_quota(tenant)  # in memory: never waits on the database
    params = SearchParams(
        query=body.query,
        top_k=body.top_k,
        mode=body.mode,
        filters=body.filters,
        dedupe_documents=body.dedupe_documents,
        fusion=body.fusion,
    )
    hits = await services.searches.search(tenant, principal, params, ids)
    took = (time.perf_counter() - started) * 1000
    return SearchOut(results=[result(h) for h in hits], took_ms=round(took, 3))
