"""POST /api/query: a cited answer from the caller's documents, whole or as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from tenantrag.api.deps import CanQuery, IdsDep, ServicesDep, TenantDep
from tenantrag.api.schemas import (
    CitationOut,
    Cost,
    CostLine,
    QueryIn,
    QueryOut,
    Usage,
    classification_label,
)
from tenantrag.pipeline.context import QueryContext
from tenantrag.pipeline.service import AnswerDelta, Answered
from tenantrag.retrieval import SearchParams

router = APIRouter(prefix="/api", tags=["query"])


def query_out(ctx: QueryContext) -> QueryOut:
    """The response body of an answered context."""
    c = ctx.completion
    return QueryOut(
        answer=ctx.answer,
        citations=[CitationOut(**asdict(x)) for x in ctx.citations],
        classification=classification_label(ctx.classification),
        usage=Usage(
            prompt_tokens=c.prompt_tokens if c else 0,
            completion_tokens=c.completion_tokens if c else 0,
            total_tokens=c.total_tokens if c else 0,
        ),
        cost=Cost(
            total_usd=round(sum(i.amount_usd for i in ctx.costs), 8),
            items=[
                CostLine(
                    cost_type=i.cost_type,
                    amount_usd=round(i.amount_usd, 8),
                    details=dict(i.details),
                )
                for i in ctx.costs
            ],
        ),
        cached=ctx.cached,
        degraded=ctx.degraded,
        flags=list(ctx.flags),
        trace_id=ctx.ids.trace_id,
    )


@router.post(
    "/query",
    summary="Answer a question from your documents, with citations",
    response_model=QueryOut,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def query(
    body: QueryIn, principal: CanQuery, tenant: TenantDep, services: ServicesDep, ids: IdsDep
) -> QueryOut | StreamingResponse:
    """The answer (markdown, claims cited [n]); with `stream: true`, SSE `delta`s, then `done`."""
    await services.costs.acheck_quota(tenant)  # in memory: never waits on the database
    params = SearchParams(query=body.query, top_k=body.top_k, mode=body.mode, filters=body.filters)
    ctx = services.queries.context(tenant, principal, params, ids)
    if not body.stream:
        return query_out(await services.queries.answer(ctx))
    events = services.queries.stream(ctx)
    # Errors before the first delta (stages 1-4: 400, 422, 403 ...) raise here, as plain JSON.
    first = await anext(events)
    return StreamingResponse(
        _sse(first, events), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
    )


async def _sse(
    first: AnswerDelta | Answered, rest: AsyncIterator[AnswerDelta | Answered]
) -> AsyncIterator[bytes]:
    """`delta` events, then `done` carrying exactly the non-streamed response body."""
    event = first
    while True:
        if isinstance(event, Answered):
            done = query_out(event.ctx).model_dump(mode="json")
            yield f"event: done\ndata: {json.dumps(done)}\n\n".encode()
            return
        yield f"event: delta\ndata: {json.dumps({'text': event.text})}\n\n".encode()
        event = await anext(rest)
