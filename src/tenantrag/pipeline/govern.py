"""Stage 4, governance: leakage check, PII redaction, classification, indirect injection.

Runs before anything is cached, logged or sent to a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from tenantrag.governance.injection import scan_chunk
from tenantrag.governance.pii import redact
from tenantrag.models import Chunk, Classification, Hit
from tenantrag.observability import metrics
from tenantrag.pipeline.context import QueryContext

log = structlog.get_logger("tenantrag.govern")
LeakageHook = Callable[[QueryContext, Chunk], None]


@dataclass(frozen=True, slots=True)
class Govern:
    """Drops foreign or over-clearance chunks, redacts PII, flags instruction-bearing chunks."""

    on_leakage: LeakageHook | None = None

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        kept: list[Hit] = []
        for hit in ctx.hits:
            chunk = hit.chunk
            if chunk.tenant_id != ctx.principal.tenant_id:
                metrics.LEAKAGE.labels(tenant=ctx.principal.tenant_id).inc()
                log.error("cross_tenant_leakage", chunk_id=chunk.chunk_id, stage="govern")
                if self.on_leakage is not None:
                    self.on_leakage(ctx, chunk)
                continue
            if chunk.classification > ctx.principal.clearance:
                log.error("clearance_violation_dropped", chunk_id=chunk.chunk_id)
                continue
            kept.append(self._redacted(ctx, hit))
        ctx.hits = kept
        ctx.classification = max(
            (h.chunk.classification for h in kept), default=Classification.PUBLIC
        )
        for hit in kept:
            verdict = scan_chunk(hit.chunk.text)
            if verdict.is_injection:
                ctx.untrusted.add(hit.chunk.chunk_id)
                ctx.flag("indirect_prompt_injection")
                metrics.INJECTION.labels(
                    tenant=ctx.tenant.id, source="indirect", action="quote"
                ).inc()
        return ctx

    @staticmethod
    def _redacted(ctx: QueryContext, hit: Hit) -> Hit:
        result = redact(hit.chunk.text)
        if not result.counts:
            return hit
        for kind, n in result.counts.items():
            ctx.redactions[str(kind)] = ctx.redactions.get(str(kind), 0) + n
            metrics.PII_REDACTIONS.labels(type=str(kind)).inc(n)
        return replace(hit, chunk=replace(hit.chunk, text=result.text))
