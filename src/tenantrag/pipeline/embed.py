"""Stage 2, query embedding: through the per-tenant cache, counted as hit or miss."""

from __future__ import annotations

from dataclasses import dataclass

from tenantrag.observability.tracing import span
from tenantrag.pipeline.context import QueryContext
from tenantrag.rag import Rag


@dataclass(frozen=True, slots=True)
class Embed:
    """Computes the question's vector unless the mode is bm25 only and no screening needs it."""

    rag: Rag

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        with span("embed.query", {"gen_ai.request.model": self.rag.embedder.model_name}):
            ctx.vector = await self.rag.embed_query(ctx.tenant.id, ctx.question)
        ctx.embedding_tokens = self.rag.embedder.count_tokens(ctx.question)
        return ctx
