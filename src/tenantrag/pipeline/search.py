"""/api/search end to end: normalise, embed, retrieve, redact, audit, bill.

It shares stage 1's normalisation, the two-tier query-embedding cache of stage 2, and
retrieval with /api/query; it neither screens for injection nor calls a model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from tenantrag.backends.embedding.cache import CachingEmbedder
from tenantrag.governance.injection import normalize_query
from tenantrag.governance.pii import RedactionCache, Tally
from tenantrag.metering import CostRecorder, search_bill
from tenantrag.models import AuditEvent, Hit, Principal, RequestIds, Tenant
from tenantrag.observability import metrics
from tenantrag.observability.audit import Auditor
from tenantrag.observability.tracing import span
from tenantrag.retrieval import Retriever, SearchParams
from tenantrag.settings import CostSettings


@dataclass(frozen=True, slots=True)
class SearchService:
    """The tenant's best chunks for a query, with PII redacted when the tenant asks for it."""

    embeddings: CachingEmbedder
    retriever: Retriever
    auditor: Auditor
    costs: CostRecorder
    pricing: CostSettings
    max_query_chars: int = 2000
    # Redactions of popular hits, by tenant; the query stages' Govern can share it.
    redactions: RedactionCache = field(default_factory=RedactionCache)

    async def search(
        self, tenant: Tenant, principal: Principal, params: SearchParams, ids: RequestIds
    ) -> list[Hit]:
        """The hits, best first; audited (chunk ids only) and billed."""
        started = time.perf_counter()
        params = replace(
            params, query=normalize_query(params.query, max_chars=self.max_query_chars)
        )
        report = partial(self.auditor.leakage, tenant.id, principal.user_id, ids)
        retrieve = partial(self.retriever.retrieve, tenant, principal, params, on_leakage=report)
        embeds = params.mode != "bm25"
        vector = await self.embeddings.cached(tenant.id, params.query) if embeds else None
        if embeds and vector is None:
            # A question new to the caches: the model and the retrieval run in one hand-off to
            # a worker thread, not two (each costs a wake-up on either side).
            fresh, hits = await asyncio.to_thread(self._embed_then, retrieve, params.query)
            await self.embeddings.keep(tenant.id, params.query, fresh)
        else:
            with span("retrieve"):
                hits = await asyncio.to_thread(retrieve, vector)
        if tenant.redact_search_pii:
            hits = [_redacted(hit, Tally(self.redactions, tenant.id)) for hit in hits]
        await self.auditor.arecord(
            AuditEvent(
                "search",
                "success",
                tenant.id,
                principal.user_id,
                ids,
                tuple(h.chunk.chunk_id for h in hits),
            )
        )
        bill = search_bill(self.pricing, mode=params.mode, seconds=time.perf_counter() - started)
        self.costs.record(tenant.id, bill, request_id=ids.request_id, model=None)
        return hits

    def _embed_then(
        self, retrieve: Callable[[np.ndarray], list[Hit]], query: str
    ) -> tuple[np.ndarray, list[Hit]]:
        """The query's vector, then the hits for it (on a worker thread)."""
        with span("embed.query", {"gen_ai.request.model": self.embeddings.model_name}):
            vector = self.embeddings.embed_one(query)
        with span("retrieve"):
            return vector, retrieve(vector)


def _redacted(hit: Hit, tally: Tally) -> Hit:
    """The hit with its text, title, document id, file name and metadata redacted (counted)."""
    chunk = tally.chunk(hit.chunk)
    if not tally.counts:
        return hit
    metrics.count_redactions(tally.counts)
    return replace(hit, chunk=chunk)
