"""Stage 1, validation: re-check isolation, then normalise the question."""

from __future__ import annotations

from dataclasses import dataclass

from tenantrag.errors import TenantMismatch, TenantUnavailable
from tenantrag.governance.injection import normalize_query
from tenantrag.pipeline.context import QueryContext


@dataclass(frozen=True, slots=True)
class Validate:
    """Tenant re-checked; NFKC, control characters out, whitespace collapsed, length bounded."""

    max_chars: int = 2000

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        if ctx.principal.tenant_id != ctx.tenant.id:
            raise TenantMismatch("The request's tenant is not the token's tenant.")
        if not ctx.tenant.active:
            raise TenantUnavailable("The tenant is suspended; contact your administrator.")
        ctx.question = normalize_query(ctx.params.query, max_chars=self.max_chars)
        return ctx
