"""Answers a query end to end: the six stages, with the per-tenant result cache around them.

The cache key holds the tenant's corpus version (its newest change seq), so any ingest or
delete in the tenant makes every older entry unreachable; and the caller's clearance, so a
user never receives an answer built from chunks above their own clearance.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from tenantrag.backends.cache import Cache, make_key
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.governance.pii import redact
from tenantrag.models import Principal, Tenant
from tenantrag.observability.tracing import span
from tenantrag.pipeline import Pipeline
from tenantrag.pipeline.account import Account
from tenantrag.pipeline.context import QueryContext
from tenantrag.pipeline.generate import Generate
from tenantrag.pipeline.postprocess import PostProcess, costs
from tenantrag.pipeline.retrieve import SearchParams

CACHE_VERSION = "answer-v1"


@dataclass
class QueryService:
    """Front stages (1-4), generation (5) and post-processing (6), cached per tenant."""

    store: SQLiteStore
    front: Pipeline  # stages 1 and 2: validate, embed, screen (before the cache look-up)
    middle: Pipeline  # stages 3 and 4: retrieve, govern
    generate: Generate
    post: PostProcess
    account: Account
    cache: Cache
    ttl_s: int

    def context(
        self, tenant: Tenant, principal: Principal, params: SearchParams,
        request_id: str | None, trace_id: str | None,
    ) -> QueryContext:  # fmt: skip
        """A fresh context for one request."""
        return QueryContext(
            tenant=tenant, principal=principal, params=params, request_id=request_id,
            trace_id=trace_id, started=time.perf_counter(),
        )  # fmt: skip

    async def key(self, ctx: QueryContext) -> str:
        """The cache key of the answer this context would get (question already normalised)."""
        with span("store.corpus_version", {"db.system": "sqlite"}):
            # One indexed MAX() read: cheaper inline than the hand-off to a worker thread.
            version = self.store.latest_seq(ctx.tenant.id)
        t, p = ctx.tenant, ctx.params
        return make_key(
            CACHE_VERSION, ctx.question, p.mode, str(p.top_k),
            json.dumps(p.filters or {}, sort_keys=True), ctx.principal.clearance.label,
            str(version), self.generate.llm.model, f"{t.bm25_weight}:{t.vector_weight}:{t.fusion}",
            t.injection_policy, p.fusion or "",
        )  # fmt: skip

    async def answer(self, ctx: QueryContext) -> dict[str, Any]:
        """The response body for the query, from the cache when an identical one is fresh."""
        ctx = await self.front.run(ctx)
        key = await self.key(ctx)
        with span("cache.get", {"cache": self.cache.name}):
            cached = await self.cache.get(ctx.tenant.id, key)
        if cached is not None:
            return self._from_cache(ctx, cached)
        ctx = await self.middle.run(ctx)
        ctx = await self.generate(ctx)
        ctx = await self.post(ctx)
        ctx = await self.account(ctx)
        body = render(ctx)
        if not ctx.degraded:
            with span("cache.set", {"cache": self.cache.name}):
                await self.cache.set(
                    ctx.tenant.id, key, json.dumps(body).encode(), ttl_s=self.ttl_s
                )
        return body

    async def stream(self, ctx: QueryContext) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Server-sent events as (event, data): `delta`s of answer text, then one `done`.

        Call `prepare_stream` first: errors of stages 1-4 then surface as plain JSON errors.
        """
        pending = ""  # text is released a sentence at a time, redacted: PII never splits
        async for text in self.generate.stream(ctx):
            pending += text
            cut = _last_boundary(pending)
            if cut:
                yield "delta", {"text": redact(pending[:cut]).text}
                pending = pending[cut:]
        if pending:
            yield "delta", {"text": redact(pending).text}
        ctx = await self.post(ctx)
        ctx = await self.account(ctx)
        yield "done", render(ctx)

    async def prepare_stream(self, ctx: QueryContext) -> QueryContext:
        """Stages 1 to 4 for a streamed answer (streams are not cached)."""
        ctx = await self.front.run(ctx)
        return await self.middle.run(ctx)

    def _from_cache(self, ctx: QueryContext, raw: bytes) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(raw)
        ctx.completion = None
        ctx.embedding_tokens = 0
        bill = [c for c in costs(ctx, self.post.pricing) if c.cost_type == "compute"]
        body.update(
            cached=True, trace_id=ctx.trace_id,
            usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            cost=_cost_body(bill),
        )  # fmt: skip
        ctx.costs = bill
        ctx.cached = True
        if self.post.audit is not None:
            self.post.audit(ctx)
        self.account.recorder.record(ctx.tenant.id, bill, request_id=ctx.request_id, model=None)
        return body


_BOUNDARY = re.compile(r"[.!?]\s|\n")


def _last_boundary(text: str) -> int:
    """The index just after the last sentence end or newline in `text`, or 0."""
    last = 0
    for match in _BOUNDARY.finditer(text):
        last = match.end()
    return last


def _cost_body(items: list[Any]) -> dict[str, Any]:
    return {
        "total_usd": round(sum(i.amount_usd for i in items), 8),
        "items": [
            {"cost_type": i.cost_type, "amount_usd": round(i.amount_usd, 8), "details": i.details}
            for i in items
        ],
    }


def render(ctx: QueryContext) -> dict[str, Any]:
    """The /api/query response body."""
    c = ctx.completion
    usage = {
        "prompt_tokens": c.prompt_tokens if c else 0,
        "completion_tokens": c.completion_tokens if c else 0,
        "total_tokens": c.total_tokens if c else 0,
    }
    return {
        "answer": ctx.answer,
        "citations": [asdict(x) for x in ctx.citations],
        "classification": ctx.classification.label,
        "usage": usage,
        "cost": _cost_body(ctx.costs),
        "cached": ctx.cached,
        "degraded": ctx.degraded,
        "flags": list(ctx.flags),
        "trace_id": ctx.trace_id,
    }
