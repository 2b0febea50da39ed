"""Stage 3, hybrid retrieval as a pipeline stage (the maths is in retrieve.py and fuse.py)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool

from tenantrag.observability import metrics
from tenantrag.pipeline.context import QueryContext
from tenantrag.pipeline.retrieve import Retriever


@dataclass(frozen=True, slots=True)
class Retrieve:
    """The tenant's top_k chunks for the question, clearance-filtered inside the indexes."""

    retriever: Retriever

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        params = ctx.params
        if params.query != ctx.question:
            from dataclasses import replace

            params = replace(params, query=ctx.question)
        ctx.hits = await run_in_threadpool(
            self.retriever.retrieve, ctx.tenant, ctx.principal, params, ctx.vector
        )
        if ctx.hits:
            metrics.RETRIEVAL_SCORE.labels(mode=params.mode).observe(ctx.hits[0].score)
        return ctx
