"""Stage 4, governance: leakage check, PII redaction, classification, indirect injection.

Runs before anything is cached, logged or sent to a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import structlog

from tenantrag.governance.injection import scan_chunk
from tenantrag.governance.pii import RedactionCache, Tally
from tenantrag.models import Classification, Hit
from tenantrag.observability import metrics
from tenantrag.observability.audit import Auditor
from tenantrag.pipeline.context import QueryContext

log = structlog.get_logger("tenantrag.govern")


@dataclass(frozen=True, slots=True)
class Govern:
    """Drops foreign or over-clearance chunks, redacts PII, flags instruction-bearing chunks."""

    auditor: Auditor
    # Redactions of popular sources, by tenant (/api/search's SearchService shares it).
    redactions: RedactionCache = field(default_factory=RedactionCache)

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        kept: list[Hit] = []
        for hit in ctx.hits:
            chunk = hit.chunk
            if chunk.tenant_id != ctx.principal.tenant_id:
                self.auditor.leakage(ctx.tenant.id, ctx.principal.user_id, ctx.ids, chunk, "govern")
                continue
            if chunk.classification > ctx.principal.clearance:
                log.error("clearance_violation_dropped", chunk_id=chunk.chunk_id)
                continue
            kept.append(_redacted(ctx, hit, Tally(self.redactions, ctx.tenant.id)))
        ctx.hits = kept
        ctx.classification = max(
            (h.chunk.classification for h in kept), default=Classification.PUBLIC
        )
        for hit in kept:
            if scan_chunk(hit.chunk.text).is_injection:
                ctx.untrusted.add(hit.chunk.chunk_id)
                ctx.flag("indirect_prompt_injection")
                metrics.INJECTION.labels(
                    tenant=ctx.tenant.id, source="indirect", action="quote"
                ).inc()
        return ctx


def _redacted(ctx: QueryContext, hit: Hit, tally: Tally) -> Hit:
    """The hit with PII redacted (counted) in its text, title, document id, file name and metadata.

    All of them reach the prompt (a model outside, perhaps) and the citations; the same hit
    when there is none.
    """
    chunk = tally.chunk(hit.chunk)
    if not tally.counts:
        return hit
    metrics.count_redactions(tally.counts)
    ctx.count_redactions(tally.counts)
    return replace(hit, chunk=chunk)
