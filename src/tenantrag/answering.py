"""Wires the /api/query side: the model (behind breaker, retry, fallback), the stages, the cache."""

from __future__ import annotations

from collections.abc import Callable

from tenantrag.backends.cache import Cache
from tenantrag.backends.llm import build_llm
from tenantrag.backends.llm.breaker import CircuitBreaker
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.observability import metrics
from tenantrag.pipeline import Pipeline
from tenantrag.pipeline.account import Account, Recorder
from tenantrag.pipeline.context import QueryContext
from tenantrag.pipeline.embed import Embed
from tenantrag.pipeline.generate import Generate
from tenantrag.pipeline.govern import Govern
from tenantrag.pipeline.postprocess import PostProcess
from tenantrag.pipeline.search import Retrieve
from tenantrag.pipeline.service import QueryService
from tenantrag.pipeline.validate import DetectInjection, Validate
from tenantrag.rag import Rag
from tenantrag.settings import Settings


def build_query_service(
    settings: Settings,
    store: SQLiteStore,
    rag: Rag,
    cache: Cache,
    audit: Callable[[QueryContext], None],
    on_leakage: Callable[[QueryContext, object], None],
    recorder: Recorder,
) -> QueryService:
    """The six stages over `rag`, with the answer cache in front of stages 3 to 6."""
    breaker = CircuitBreaker(
        threshold=settings.llm.breaker_threshold, reset_s=settings.llm.breaker_reset_s,
        on_state_change=lambda tenant, provider, state: metrics.set_breaker_state(
            f"llm:{provider}", tenant, state
        ),
    )  # fmt: skip
    llm = build_llm(
        settings.llm, count_tokens=rag.embedder.count_tokens, breaker=breaker,
        embed=rag.embedder.embed, query_vector=rag.query_cache.lookup,
    )  # fmt: skip
    count = rag.embedder.count_tokens if settings.llm.provider == "extractive" else None
    return QueryService(
        store=store,
        front=Pipeline(Validate(settings.max_query_chars), Embed(rag), DetectInjection()),
        middle=Pipeline(Retrieve(rag.retriever), Govern(on_leakage=on_leakage)),
        generate=Generate(llm, settings.llm, count),
        post=PostProcess(settings.cost, audit),
        account=Account(recorder),
        cache=cache,
        ttl_s=settings.cache_ttl_s,
    )
