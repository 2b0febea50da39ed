"""Stage 1, validation: normalise the question, screen it for injection, re-check isolation."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from tenantrag.errors import PromptInjection, TenantMismatch, TenantUnavailable
from tenantrag.governance.injection import detect, normalize_query
from tenantrag.observability import metrics
from tenantrag.pipeline.context import QueryContext

log = structlog.get_logger("tenantrag.validate")


@dataclass(frozen=True, slots=True)
class Validate:
    """NFKC, control characters out, whitespace collapsed, length bounded; tenant re-checked."""

    max_chars: int = 2000

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        if ctx.principal.tenant_id != ctx.tenant.id:
            raise TenantMismatch("The request's tenant is not the token's tenant.")
        if not ctx.tenant.active:
            raise TenantUnavailable("The tenant is suspended; contact your administrator.")
        ctx.question = normalize_query(ctx.params.query, max_chars=self.max_chars)
        return ctx


@dataclass(frozen=True, slots=True)
class DetectInjection:
    """Patterns (EN, DE) plus a classifier over the query embedding; block or flag per tenant."""

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        verdict = detect(ctx.question, ctx.vector)
        if not verdict.is_injection:
            return ctx
        action = "block" if ctx.tenant.injection_policy == "block" else "flag"
        metrics.INJECTION.labels(tenant=ctx.tenant.id, source="direct", action=action).inc()
        log.warning("prompt_injection", action=action, score=round(verdict.score, 3),
                    reasons=list(verdict.reasons)[:3])  # fmt: skip
        if action == "block":
            raise PromptInjection(
                "The question looks like an attempt to override the assistant's instructions;"
                " rephrase it as a question about your documents."
            )
        ctx.flag("prompt_injection")
        return ctx
