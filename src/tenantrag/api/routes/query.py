"""POST /api/query: a cited answer from the caller's documents, whole or as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from tenantrag.api.deps import CanQuery, ServicesDep, TenantDep
from tenantrag.api.schemas import MetadataValue, Strict
from tenantrag.pipeline.retrieve import SearchParams

router = APIRouter(prefix="/api", tags=["query"])


class QueryIn(Strict):
    """A question about the caller's documents."""

    query: str = Field(min_length=1, max_length=20_000)
    top_k: int = Field(default=5, ge=1, le=20)
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    filters: dict[str, MetadataValue] | None = Field(default=None, max_length=16)
    stream: bool = False


class CitationOut(BaseModel):
    """A numbered source: the answer's [index] refers to it."""

    index: int
    document_id: str
    chunk_id: str
    title: str
    snippet: str
    score: float


class Usage(BaseModel):
    """Model tokens this request used."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CostLine(BaseModel):
    """One line of the bill."""

    cost_type: str
    amount_usd: float
    details: dict[str, str | int | float]


class Cost(BaseModel):
    """What this request cost, by type."""

    total_usd: float
    items: list[CostLine]


class QueryOut(BaseModel):
    """The answer with its sources, usage and cost."""

    answer: str
    citations: list[CitationOut]
    classification: Literal["public", "internal", "confidential", "restricted"]
    usage: Usage
    cost: Cost
    cached: bool
    degraded: bool
    flags: list[str]
    trace_id: str | None


@router.post(
    "/query",
    summary="Answer a question from your documents, with citations",
    response_model=QueryOut,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def query(
    body: QueryIn, request: Request, principal: CanQuery, tenant: TenantDep, services: ServicesDep
) -> Any:
    """The answer (markdown, claims cited [n]); with `stream: true`, SSE `delta`s, then `done`."""
    services.c.check_quota(tenant)  # in memory; reads the ledger at most once a second
    params = SearchParams(query=body.query, top_k=body.top_k, mode=body.mode, filters=body.filters)
    state = request.scope.get("state", {})
    q = services.q
    ctx = q.context(tenant, principal, params, state.get("request_id"), state.get("trace_id"))
    if not body.stream:
        return JSONResponse(await q.answer(ctx))
    ctx = await q.prepare_stream(ctx)

    async def events() -> AsyncIterator[bytes]:
        async for name, data in q.stream(ctx):
            yield f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
    )
