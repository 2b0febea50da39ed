"""Wires the /api/query side: the model behind its breaker, retry and fallback; the stages; the cache."""

from __future__ import annotations

from collections.abc import Callable

from tenantrag.backends.cache import Cache
from tenantrag.backends.llm import LLM, FallbackLLM
from tenantrag.backends.llm.extractive import ExtractiveLLM
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.observability import metrics
from tenantrag.pipeline import Pipeline
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


def build_llm(settings: Settings, count_tokens: Callable[[str], int]) -> LLM:
    """The configured model; an OpenAI-compatible one is wrapped, read inside-out, as
    FallbackLLM(CircuitBreakerLLM(RetryingLLM(OpenAIChatLLM)), ExtractiveLLM)."""
    extractive = ExtractiveLLM(count_tokens=count_tokens)
    s = settings.llm
    if s.provider == "extractive":
        return extractive
    from tenantrag.backends.llm.breaker import CircuitBreaker, CircuitBreakerLLM
    from tenantrag.backends.llm.openai import OpenAIChatLLM
    from tenantrag.backends.llm.retry import RetryingLLM

    chat = OpenAIChatLLM(
        base_url=s.base_url, model=s.model, api_key=s.api_key, timeout=s.timeout_s,
        max_tokens=s.max_completion_tokens,
    )  # fmt: skip
    breaker = CircuitBreaker(
        threshold=s.breaker_threshold, reset_s=s.breaker_reset_s,
        on_state_change=lambda tenant, provider, state: metrics.set_breaker_state(
            f"llm:{provider}", tenant, state
        ),
    )  # fmt: skip
    retrying = RetryingLLM(
        chat, max_attempts=s.max_attempts, initial=s.backoff_initial_s, max_backoff=s.backoff_max_s
    )
    return FallbackLLM(CircuitBreakerLLM(retrying, breaker, provider=s.model), extractive)


def build_query_service(
    settings: Settings,
    store: SQLiteStore,
    rag: Rag,
    cache: Cache,
    audit: Callable[[QueryContext], None],
    on_leakage: Callable[[QueryContext, object], None],
) -> QueryService:
    """The six stages over `rag`, with the answer cache in front of stages 3 to 6."""
    llm = build_llm(settings, rag.embedder.count_tokens)
    count = rag.embedder.count_tokens if settings.llm.provider == "extractive" else None
    return QueryService(
        store=store,
        front=Pipeline(Validate(settings.max_query_chars), Embed(rag), DetectInjection()),
        middle=Pipeline(Retrieve(rag.retriever), Govern(on_leakage=on_leakage)),
        generate=Generate(llm, settings.llm, count),
        post=PostProcess(settings.cost, audit),
        cache=cache,
        ttl_s=settings.cache_ttl_s,
    )
