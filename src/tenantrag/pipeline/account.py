"""After stage 6: the request's bill and its audit record, whether answered or from the cache."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from tenantrag.metering import query_bill
from tenantrag.models import AuditEvent, CostItem
from tenantrag.observability.audit import Auditor
from tenantrag.pipeline.context import QueryContext
from tenantrag.settings import CostSettings


class Recorder(Protocol):
    """Where bills go (tenantrag.metering.CostRecorder)."""

    def record(
        self, tenant_id: str, items: list[CostItem], *, request_id: str | None, model: str | None
    ) -> None:
        """Record one request's cost items."""
        ...


@dataclass(frozen=True, slots=True)
class Account:
    """Prices the request, writes its `query` audit record, and hands the bill to the recorder.

    The audit record lists the chunk ids the answer was built from, never the question's text.
    """

    pricing: CostSettings
    auditor: Auditor
    recorder: Recorder

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        ctx.costs = query_bill(
            self.pricing,
            mode=ctx.params.mode,
            embedding_tokens=ctx.embedding_tokens,
            completion=ctx.completion,
            seconds=time.perf_counter() - ctx.started,
            cached=ctx.cached,
        )
        await self.auditor.arecord(
            AuditEvent(
                "query",
                "success",
                ctx.tenant.id,
                ctx.principal.user_id,
                ctx.ids,
                tuple(h.chunk.chunk_id for h in ctx.hits),
                {"cached": ctx.cached, "degraded": ctx.degraded, "flags": ",".join(ctx.flags)},
            )
        )
        model = ctx.completion.model if ctx.completion else None
        self.recorder.record(ctx.tenant.id, ctx.costs, request_id=ctx.ids.request_id, model=model)
        return ctx
