"""Stage 2, embedding and screening: the question's vector, then the injection screen that reads it.

The screen (patterns in English and German plus a classifier over the vector) needs the vector,
so it runs right after the embedding, before anything is retrieved or cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from tenantrag.backends.embedding.cache import CachingEmbedder
from tenantrag.errors import PromptInjection
from tenantrag.governance.injection import detect
from tenantrag.observability import metrics
from tenantrag.observability.tracing import span
from tenantrag.pipeline.context import QueryContext

log = structlog.get_logger("tenantrag.embed")


@dataclass(frozen=True, slots=True)
class Embed:
    """The question's vector through the two-tier query-embedding cache, and its token count."""

    embeddings: CachingEmbedder

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        with span("embed.query", {"gen_ai.request.model": self.embeddings.model_name}):
            ctx.vector = await self.embeddings.embed_query(ctx.tenant.id, ctx.question)
        # Added, not set: a chat's other turns were screened (and embedded) before this stage.
        ctx.embedding_tokens += self.embeddings.count_tokens(ctx.question)
        return ctx


@dataclass(frozen=True, slots=True)
class DetectInjection:
    """Patterns plus a classifier over the question's vector; block or flag, per tenant policy."""

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        verdict = detect(ctx.question, ctx.vector)
        if not verdict.is_injection:
            return ctx
        action = "block" if ctx.tenant.injection_policy == "block" else "flag"
        metrics.INJECTION.labels(tenant=ctx.tenant.id, source="direct", action=action).inc()
        log.warning(
            "prompt_injection",
            action=action,
            score=round(verdict.score, 3),
            reasons=list(verdict.reasons)[:3],
        )
        if action == "block":
            raise PromptInjection(
                "The question looks like an attempt to override the assistant's instructions;"
                " rephrase it as a question about your documents."
            )
        ctx.flag("prompt_injection")
        return ctx
