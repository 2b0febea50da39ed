"""Answers a query end to end: one ordered list of stages, whole or streamed.

A streamed answer runs the very same stages: the context carries a sink, stage 5 writes the
answer's sentences into it as the model writes them (a cache hit writes the whole answer at
once), and `stream` yields them. Errors raised before the first delta surface from the first
`anext`, so the route can still answer them as plain JSON errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tenantrag.models import Principal, RequestIds, Tenant
from tenantrag.pipeline.context import QueryContext
from tenantrag.pipeline.stages import Pipeline, Stage
from tenantrag.retrieval import SearchParams


@dataclass(frozen=True, slots=True)
class AnswerDelta:
    """A piece of a streamed answer, redacted."""

    text: str


@dataclass(frozen=True, slots=True)
class Answered:
    """The end of a streamed answer: the finished context."""

    ctx: QueryContext


class QueryService:
    """The six stages (and the bookkeeping after them) in the order they run."""

    def __init__(self, *stages: Stage) -> None:
        self.pipeline = Pipeline(*stages)

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages, in order."""
        return self.pipeline.stages

    @staticmethod
    def context(
        tenant: Tenant, principal: Principal, params: SearchParams, ids: RequestIds
    ) -> QueryContext:
        """A fresh context for one request; its clock (for the compute cost) starts now."""
        return QueryContext(
            tenant=tenant, principal=principal, params=params, ids=ids, started=time.perf_counter()
        )

    async def answer(self, ctx: QueryContext) -> QueryContext:
        """Run every stage; the context then holds the answer, its sources and its bill."""
        return await self.pipeline.run(ctx)

    async def stream(self, ctx: QueryContext) -> AsyncIterator[AnswerDelta | Answered]:
        """Run every stage, yielding the answer's deltas as they come, then `Answered`."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        ctx.deltas = queue.put
        task = asyncio.ensure_future(self._run_then_close(ctx, queue))
        try:
            while (text := await queue.get()) is not None:
                yield AnswerDelta(text)
            yield Answered(await task)
        finally:
            if not task.done():  # the client went away: stop the model call too
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run_then_close(
        self, ctx: QueryContext, queue: asyncio.Queue[str | None]
    ) -> QueryContext:
        try:
            return await self.pipeline.run(ctx)
        finally:
            queue.put_nowait(None)
