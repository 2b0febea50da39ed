"""Stage 3, hybrid retrieval as a pipeline stage (the search itself is in retrieval/)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from functools import partial

from tenantrag.observability import metrics
from tenantrag.observability.audit import Auditor
from tenantrag.pipeline.context import QueryContext
from tenantrag.retrieval import Retriever


@dataclass(frozen=True, slots=True)
class Retrieve:
    """The tenant's top_k chunks for the question, clearance-filtered inside the indexes."""

    retriever: Retriever
    auditor: Auditor

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        params = ctx.params
        if params.query != ctx.question:
            params = replace(params, query=ctx.question)
        report = partial(self.auditor.leakage, ctx.tenant.id, ctx.principal.user_id, ctx.ids)
        ctx.hits = await asyncio.to_thread(
            partial(self.retriever.retrieve, on_leakage=report),
            ctx.tenant,
            ctx.principal,
            params,
            ctx.vector,
        )
        if ctx.hits:
            metrics.RETRIEVAL_SCORE.labels(mode=params.mode).observe(ctx.hits[0].score)
        return ctx
