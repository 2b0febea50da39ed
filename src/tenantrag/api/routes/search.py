"""POST /api/search: hybrid retrieval over the caller's tenant, clearance-filtered and redacted."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from tenantrag.api.deps import CanQuery, ServicesDep, TenantDep
from tenantrag.api.schemas import (
    Ranks,
    Scores,
    SearchIn,
    SearchOut,
    SearchResult,
    classification_label,
)
from tenantrag.governance.injection import normalize_query
from tenantrag.governance.pii import redact
from tenantrag.models import Hit
from tenantrag.pipeline.context import CostItem
from tenantrag.pipeline.retrieve import SearchParams

router = APIRouter(prefix="/api", tags=["search"])


def result(hit: Hit, *, redact_pii: bool) -> SearchResult:
    """The wire form of a hit; PII in the text is redacted when the tenant asks for it."""
    c = hit.chunk
    text = redact(c.text).text if redact_pii else c.text
    return SearchResult(
        document_id=c.document_id, chunk_id=c.chunk_id, title=c.title, text=text,
        score=hit.score, scores=Scores(bm25=hit.bm25, vector=hit.vector),
        ranks=Ranks(bm25=hit.bm25_rank, vector=hit.vector_rank),
        classification=classification_label(c.classification), metadata=dict(c.metadata),
    )  # fmt: skip


@router.post("/search", summary="Hybrid search over your tenant's documents")
async def search(
    body: SearchIn, request: Request, principal: CanQuery, tenant: TenantDep, services: ServicesDep
) -> SearchOut:
    """The top_k chunks by BM25, vector or hybrid ranking, with each retriever's score and rank."""
    started = time.perf_counter()
    services.c.check_quota(tenant)  # in memory; reads the ledger at most once a second
    query = normalize_query(body.query, max_chars=services.settings.max_query_chars)
    rag = services.r
    params = SearchParams(
        query=query, top_k=body.top_k, mode=body.mode, filters=body.filters,
        dedupe_documents=body.dedupe_documents, fusion=body.fusion,
    )  # fmt: skip

    def embed_and_retrieve() -> list[Hit]:
        # One hand-off to a worker thread for both blocking steps, not one each.
        vector = None if body.mode == "bm25" else rag.query_cache.embed_query(tenant.id, query)
        return rag.retriever.retrieve(tenant, principal, params, vector)

    hits = await run_in_threadpool(embed_and_retrieve)
    results = [result(h, redact_pii=tenant.redact_search_pii) for h in hits]
    services.audit_event(request, "search", "success", resource_ids=[r.chunk_id for r in results])
    took = (time.perf_counter() - started) * 1000
    pricing = services.settings.cost
    services.c.record(
        tenant.id,
        [
            CostItem("retrieval", pricing.retrieval_per_query, {"mode": body.mode}),
            CostItem(
                "compute", took / 1000 * pricing.compute_per_second,
                {"seconds": round(took / 1000, 4)},
            ),
        ],
        request_id=request.scope.get("state", {}).get("request_id"), model=None,
    )  # fmt: skip
    return SearchOut(results=results, took_ms=round(took, 3))
