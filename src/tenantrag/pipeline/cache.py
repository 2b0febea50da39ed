"""The answer cache as a wrapper around stages 3 to 6: on a hit they do not run.

The key holds the tenant's corpus version (its newest change seq), so any ingest or delete in
the tenant makes every older entry unreachable; and the caller's clearance, so a user never
receives an answer built from chunks above their own clearance. Every key lives in the
tenant's own namespace (`Cache` adds the `<tenant>:` prefix). Degraded answers are not stored.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from tenantrag.backends.cache import Cache, make_key
from tenantrag.backends.store import CorpusReader
from tenantrag.models import Classification
from tenantrag.observability.tracing import span
from tenantrag.pipeline.context import Citation, QueryContext
from tenantrag.pipeline.stages import Pipeline, Stage

CACHE_VERSION = "answer-v3"  # v3: citations' ids, titles redacted; links defused


@dataclass(frozen=True, slots=True)
class AnswerCache:
    """Runs `inner` (stages 3-6) unless an identical question has a fresh answer cached."""

    inner: Pipeline
    cache: Cache
    store: CorpusReader
    model: str
    ttl_s: int

    @classmethod
    def around(
        cls, *stages: Stage, cache: Cache, store: CorpusReader, model: str, ttl_s: int
    ) -> AnswerCache:
        """The cache around `stages`, which run in order on a miss."""
        return cls(Pipeline(*stages), cache, store, model, ttl_s)

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The wrapped stages, in order."""
        return self.inner.stages

    def key(self, ctx: QueryContext) -> str:
        """The cache key of the answer `ctx` would get (its question already normalised)."""
        with span("store.corpus_version", {"db.system": "sqlite"}):
            # One indexed MAX() read: cheaper inline than the hand-off to a worker thread.
            version = self.store.latest_seq(ctx.tenant.id)
        t, p = ctx.tenant, ctx.params
        return make_key(
            CACHE_VERSION,
            ctx.question,
            p.mode,
            str(p.top_k),
            json.dumps(p.filters or {}, sort_keys=True),
            ctx.principal.clearance.label,
            str(version),
            self.model,
            f"{t.bm25_weight}:{t.vector_weight}:{t.fusion}",
            t.injection_policy,
            p.fusion or "",
        )

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        key = self.key(ctx)
        with span("cache.get", {"cache": self.cache.name}):
            raw = await self.cache.get(ctx.tenant.id, key)
        if raw is not None:
            restore(ctx, raw)
            if ctx.deltas is not None:  # a streamed request gets the whole answer at once
                await ctx.deltas(ctx.answer)
            return ctx
        ctx = await self.inner.run(ctx)
        if not ctx.degraded:
            with span("cache.set", {"cache": self.cache.name}):
                await self.cache.set(ctx.tenant.id, key, snapshot(ctx), ttl_s=self.ttl_s)
        return ctx


def snapshot(ctx: QueryContext) -> bytes:
    """What a later identical question needs of this answer: text, sources, label, flags."""
    entry: dict[str, Any] = {
        "answer": ctx.answer,
        "citations": [asdict(c) for c in ctx.citations],
        "classification": ctx.classification.label,
        "flags": ctx.flags,
    }
    return json.dumps(entry).encode()


def restore(ctx: QueryContext, raw: bytes) -> None:
    """Fill `ctx` from a cached answer: no model call, so no completion and no usage."""
    entry = json.loads(raw)
    ctx.answer = entry["answer"]
    ctx.citations = [Citation(**c) for c in entry["citations"]]
    ctx.classification = Classification.parse(entry["classification"])
    for name in entry["flags"]:
        ctx.flag(name)
    ctx.completion = None
    ctx.cached = True
