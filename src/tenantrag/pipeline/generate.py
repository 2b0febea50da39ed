"""Stage 5, LLM integration: the prompt within the model's budget, the call, tokens and cost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from tenantrag.backends.llm import LLM, Completion, ContextBlock, Delta, Done, StreamEvent
from tenantrag.backends.llm.prompt import build_prompt
from tenantrag.backends.llm.tokens import shared_count
from tenantrag.governance.injection import quote_untrusted
from tenantrag.observability.tracing import gen_ai_attributes, span
from tenantrag.pipeline.context import QueryContext
from tenantrag.settings import LLMSettings


@dataclass(frozen=True, slots=True)
class Generate:
    """Builds the prompt from the governed hits and asks the model (or streams its answer)."""

    llm: LLM
    settings: LLMSettings
    count_tokens: Callable[[str], int] | None = None
    _count: Callable[[str], int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # The system prompt and the no-sources text are counted every query, and popular sources
        # come back: counts are remembered by text, in the cache the extractive answerer shares.
        if self.count_tokens is not None:
            object.__setattr__(self, "_count", shared_count(self.count_tokens))

    def blocks(self, ctx: QueryContext) -> list[ContextBlock]:
        """The hits as numbered context blocks; instruction-bearing ones quoted as data."""
        out = []
        for i, hit in enumerate(ctx.hits, start=1):
            untrusted = hit.chunk.chunk_id in ctx.untrusted
            block = ContextBlock.from_hit(i, hit, untrusted=untrusted)
            if untrusted:
                from dataclasses import replace

                block = replace(block, text=quote_untrusted(block.text))
            out.append(block)
        return out

    def prepare(self, ctx: QueryContext) -> None:
        """Fill ctx.prompt."""
        ctx.prompt = build_prompt(
            ctx.question, self.blocks(ctx), model=self.llm.model,
            context_window=self.settings.context_window,
            max_completion_tokens=self.settings.max_completion_tokens,
            count_tokens=self._count,
        )  # fmt: skip

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        self.prepare(ctx)
        assert ctx.prompt is not None
        with span(
            "llm.complete", gen_ai_attributes(system=self.settings.provider, model=self.llm.model)
        ) as current:
            ctx.completion = await self.llm.complete(ctx.prompt, tenant=ctx.tenant.id)
            _usage(current, ctx.completion)
        ctx.answer = ctx.completion.text
        return ctx

    async def stream(self, ctx: QueryContext) -> AsyncIterator[str]:
        """Yield answer text as it comes; fills ctx.completion and ctx.answer at the end."""
        self.prepare(ctx)
        assert ctx.prompt is not None
        with span(
            "llm.stream", gen_ai_attributes(system=self.settings.provider, model=self.llm.model)
        ) as current:
            events: AsyncIterator[StreamEvent] = self.llm.stream(ctx.prompt, tenant=ctx.tenant.id)
            async for event in events:
                if isinstance(event, Delta):
                    yield event.text
                elif isinstance(event, Done):
                    ctx.completion = event.completion
                    _usage(current, event.completion)
        if ctx.completion is not None:
            ctx.answer = ctx.completion.text


def _usage(current: object, completion: Completion) -> None:
    setter = getattr(current, "set_attributes", None)
    if setter is not None:
        setter(
            {
                "gen_ai.usage.input_tokens": completion.prompt_tokens,
                "gen_ai.usage.output_tokens": completion.completion_tokens,
                "gen_ai.response.model": completion.model,
            }
        )
