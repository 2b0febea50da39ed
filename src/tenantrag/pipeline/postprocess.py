"""Stage 6, post-processing: citations mapping [n] to retrieved sources, redaction, cost, audit."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from tenantrag.governance.pii import redact
from tenantrag.pipeline.context import Citation, CostItem, QueryContext
from tenantrag.settings import CostSettings

MARKER = re.compile(r"\[(\d{1,3})\]")
SNIPPET_CHARS = 300


def cite(answer: str, ctx: QueryContext) -> tuple[str, list[Citation]]:
    """The answer with markers of unknown sources removed, and the citations it makes, in order."""
    by_index = {i: hit for i, hit in enumerate(ctx.hits, start=1)}
    if ctx.prompt is not None:
        kept = {b.index for b in ctx.prompt.blocks}
        by_index = {i: h for i, h in by_index.items() if i in kept}
    used: list[int] = []

    def keep(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n not in by_index:
            return ""
        if n not in used:
            used.append(n)
        return match.group(0)

    cleaned = MARKER.sub(keep, answer)
    citations = []
    for n in used:
        chunk = by_index[n].chunk
        snippet = (
            chunk.text if len(chunk.text) <= SNIPPET_CHARS else chunk.text[:SNIPPET_CHARS] + "…"
        )
        citations.append(
            Citation(n, chunk.document_id, chunk.chunk_id, chunk.title, snippet, by_index[n].score)
        )
    return cleaned, citations


def price_per_1k(table: dict[str, float], model: str) -> float:
    """The model's price per 1,000 tokens, or the table's default."""
    return table.get(model, table.get("default", 0.03))


def costs(ctx: QueryContext, pricing: CostSettings, *, now: float | None = None) -> list[CostItem]:
    """The request's bill from the seed's cost model."""
    items: list[CostItem] = [
        CostItem("retrieval", pricing.retrieval_per_query, {"mode": ctx.params.mode})
    ]
    if ctx.embedding_tokens:
        items.append(
            CostItem(
                "embedding",
                ctx.embedding_tokens / 1000 * pricing.embedding_per_1k_tokens,
                {"tokens": ctx.embedding_tokens},
            )  # fmt: skip
        )
    if ctx.completion is not None:
        c = ctx.completion
        rate = price_per_1k(pricing.llm_per_1k_tokens, c.model)
        items.append(
            CostItem(
                "llm_inference",
                c.total_tokens / 1000 * rate,
                {
                    "tokens": c.total_tokens,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                    "model": c.model,
                },
            )  # fmt: skip
        )
    elapsed = (now if now is not None else time.perf_counter()) - ctx.started
    items.append(
        CostItem(
            "compute",
            max(0.0, elapsed) * pricing.compute_per_second,
            {"seconds": round(max(0.0, elapsed), 4)},
        )  # fmt: skip
    )
    return items


@dataclass(frozen=True, slots=True)
class PostProcess:
    """Citations, a redacted answer, the bill, and the audit record."""

    pricing: CostSettings
    audit: Callable[[QueryContext], None] | None = None

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        answer, ctx.citations = cite(ctx.answer, ctx)
        result = redact(answer)
        ctx.answer = result.text
        for kind, n in result.counts.items():
            ctx.redactions[str(kind)] = ctx.redactions.get(str(kind), 0) + n
        ctx.costs = costs(ctx, self.pricing)
        if self.audit is not None:
            self.audit(ctx)
        return ctx
