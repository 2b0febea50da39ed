"""The RAG pipeline: six stages a query moves through, in this order.

1. Validate, DetectInjection   normalise; patterns and a classifier; isolation re-checked
2. Embed                       the query vector, through the per-tenant cache
3. Retrieve                    BM25 + vector, fused (retrieve.py, fuse.py)
4. Govern                      leakage check, PII redaction, classification, indirect injection
5. Generate                    prompt within budget, model call behind breaker, retry, fallback
6. PostProcess                 citations, answer redaction, costs, audit
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tenantrag.observability.tracing import span
from tenantrag.pipeline.context import QueryContext

Stage = Callable[[QueryContext], Awaitable[QueryContext]]


class Pipeline:
    """Runs its stages in order, each in its own span."""

    def __init__(self, *stages: Stage) -> None:
        self.stages = stages

    async def run(self, ctx: QueryContext) -> QueryContext:
        """Pass `ctx` through every stage."""
        for stage in self.stages:
            with span(f"stage.{type(stage).__name__}"):
                ctx = await stage(ctx)
        return ctx
