"""What a stage is, and the runner that passes a context through stages in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tenantrag.observability.tracing import span
from tenantrag.pipeline.context import QueryContext

Stage = Callable[[QueryContext], Awaitable[QueryContext]]


class Pipeline:
    """Runs its stages in order, each in its own span `stage.<Class>`."""

    def __init__(self, *stages: Stage) -> None:
        self.stages = stages

    async def run(self, ctx: QueryContext) -> QueryContext:
        """Pass `ctx` through every stage."""
        for stage in self.stages:
            with span(f"stage.{type(stage).__name__}"):
                ctx = await stage(ctx)
        return ctx
