"""After stage 6: the request's bill goes to the cost recorder (log, metrics, ledger)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tenantrag.pipeline.context import CostItem, QueryContext


class Recorder(Protocol):
    """Where bills go (tenantrag.metering.CostRecorder)."""

    def record(
        self, tenant_id: str, items: list[CostItem], *, request_id: str | None, model: str | None
    ) -> None:
        """Record one request's cost items."""
        ...


@dataclass(frozen=True, slots=True)
class Account:
    """Records ctx.costs for the tenant, tagged with the request and the model."""

    recorder: Recorder

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        model = ctx.completion.model if ctx.completion else None
        self.recorder.record(ctx.tenant.id, ctx.costs, request_id=ctx.request_id, model=model)
        return ctx
