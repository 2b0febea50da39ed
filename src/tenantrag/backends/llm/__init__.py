"""The LLM seam: what a model is given (Prompt), what it returns (Completion) and how it fails.

Adapters: `ExtractiveLLM` (offline, the default) and `OpenAIChatLLM` (any OpenAI-compatible API).
Wrappers, read inside-out like middleware:

    FallbackLLM(CircuitBreakerLLM(RetryingLLM(OpenAIChatLLM(...)), breaker), ExtractiveLLM(...))

A stream yields `Delta`s and ends with exactly one `Done` whose completion holds the whole text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

import structlog

from tenantrag.backends.breaker import (
    CircuitOpen as CircuitOpen,
)  # re-exported: LLM callers catch it
from tenantrag.backends.llm.tokens import TokenCounter, rough_count
from tenantrag.errors import DependencyUnavailable, UpstreamError, UpstreamTimeout
from tenantrag.models import Hit

if TYPE_CHECKING:
    import httpx
    import numpy as np

    from tenantrag.backends.breaker import CircuitBreaker
    from tenantrag.settings import LLMSettings

T = TypeVar("T")
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ContextBlock:
    """One retrieved chunk as the model sees it, numbered for citations as [index]."""

    index: int
    chunk_id: str
    document_id: str
    title: str
    text: str
    score: float
    untrusted: bool = False  # flagged by the injection detector: quoted, never obeyed
    # The vectors of `sentences(text)` as ingestion stored them (unit rows, migration 0007),
    # for the extractive answerer; None when the chunk has none.
    sentence_vectors: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def from_hit(
        cls,
        index: int,
        hit: Hit,
        *,
        untrusted: bool = False,
        sentence_vectors: np.ndarray | None = None,
    ) -> ContextBlock:
        """The block numbered `index` for a retrieved hit."""
        chunk = hit.chunk
        return cls(
            index,
            chunk.chunk_id,
            chunk.document_id,
            chunk.title,
            chunk.text,
            hit.score,
            untrusted,
            sentence_vectors,
        )


@dataclass(frozen=True, slots=True)
class Prompt:
    """Everything a model is asked: chat messages plus the parts they were built from."""

    system: str
    blocks: tuple[ContextBlock, ...]
    question: str
    messages: list[dict[str, str]]
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's whole answer and its token usage."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    degraded: bool = False  # answered by the offline fallback because the model failed

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of streamed answer text."""

    text: str


@dataclass(frozen=True, slots=True)
class Done:
    """The end of a stream: the whole completion, usage included."""

    completion: Completion


StreamEvent = Delta | Done


@runtime_checkable
class LLM(Protocol):
    """Writes an answer to a prompt, for one tenant."""

    model: str

    async def complete(self, prompt: Prompt, *, tenant: str) -> Completion:
        """The whole answer."""
        ...

    def stream(self, prompt: Prompt, *, tenant: str) -> AsyncIterator[StreamEvent]:
        """The answer as `Delta`s, then one `Done`."""
        ...


class LLMServerError(UpstreamError):
    """The model's API answered 5xx; worth retrying."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class LLMRateLimited(DependencyUnavailable):
    """The model's API answered 429; retry after `retry_after` seconds when it says so."""

    status = 429


class LLMTimeout(UpstreamTimeout):
    """The model's API did not answer within the timeout."""

    retry_after: float | None = None


class LLMUnreachable(DependencyUnavailable):
    """The model's API could not be reached, or dropped the connection."""


class LLMRequestRejected(UpstreamError):
    """The model's API refused the request (4xx other than 429); retrying will not help."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


RETRYABLE: tuple[type[UpstreamError], ...] = (
    LLMServerError,
    LLMRateLimited,
    LLMTimeout,
    LLMUnreachable,
)


def is_retryable(exc: BaseException) -> bool:
    """True for timeouts, connection errors, 429 and 5xx."""
    return isinstance(exc, RETRYABLE)


def retry_after_of(exc: BaseException | None) -> float | None:
    """The seconds the upstream asked us to wait, if it said."""
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) else None


@asynccontextmanager
async def closing(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close an async generator when the block ends, so its HTTP response is released at once."""
    try:
        yield stream
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


async def close_llm(llm: object) -> None:
    """Close every HTTP client in a wrapper stack (wrappers keep theirs in `primary`/`inner`)."""
    seen: set[int] = set()
    stack = [llm]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        aclose = getattr(current, "aclose", None)
        if aclose is not None:
            await aclose()
        stack.extend(
            getattr(current, name)
            for name in ("primary", "fallback", "inner")
            if hasattr(current, name)
        )


async def collect(stream: AsyncIterator[StreamEvent]) -> Completion:
    """The completion that ends `stream`, after checking the deltas add up to its text."""
    parts: list[str] = []
    async with closing(stream):
        async for event in stream:
            if isinstance(event, Delta):
                parts.append(event.text)
            else:
                if "".join(parts) != event.completion.text:
                    raise RuntimeError("stream deltas do not add up to the completion")
                return event.completion
    raise RuntimeError("stream ended without a Done event")


class FallbackLLM:
    """Answers with `fallback`, marked degraded, whenever `primary` fails upstream.

    If `primary` fails after it has streamed some text, that text cannot be taken back: the stream
    ends with a short notice and a degraded completion holding what was sent.
    """

    INTERRUPTED = "\n\n_(The answer was interrupted: the language model stopped responding.)_"

    def __init__(self, primary: LLM, fallback: LLM) -> None:
        self.primary, self.fallback = primary, fallback
        self.model = primary.model

    async def complete(self, prompt: Prompt, *, tenant: str) -> Completion:
        """The primary's answer, else the fallback's with degraded=True."""
        try:
            return await self.primary.complete(prompt, tenant=tenant)
        except UpstreamError as exc:
            log.warning("llm_degraded", tenant_id=tenant, reason=exc.code, error=exc.message)
        completion = await self.fallback.complete(prompt, tenant=tenant)
        return dataclasses.replace(completion, degraded=True)

    async def stream(self, prompt: Prompt, *, tenant: str) -> AsyncIterator[StreamEvent]:
        """The primary's stream, else the fallback's whose Done is marked degraded."""
        sent: list[str] = []
        try:
            async with closing(self.primary.stream(prompt, tenant=tenant)) as events:
                async for event in events:
                    if isinstance(event, Delta):
                        sent.append(event.text)
                    yield event
            return
        except UpstreamError as exc:
            log.warning("llm_degraded", tenant_id=tenant, reason=exc.code, error=exc.message)
        if sent:
            yield Delta(self.INTERRUPTED)
            text = "".join(sent)
            used = rough_count(text)  # the upstream's own count never arrived
            completion = Completion(text + self.INTERRUPTED, self.model, prompt.prompt_tokens, used)
            yield Done(dataclasses.replace(completion, degraded=True))
            return
        async with closing(self.fallback.stream(prompt, tenant=tenant)) as events:
            async for event in events:
                if isinstance(event, Done):
                    event = Done(dataclasses.replace(event.completion, degraded=True))
                yield event


def build_llm(
    settings: LLMSettings,
    *,
    count_tokens: TokenCounter,
    breaker: CircuitBreaker | None = None,
    client: httpx.AsyncClient | None = None,
    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    query_vector: Callable[[str, str], np.ndarray | None] | None = None,
) -> LLM:
    """The configured answerer: extractive alone, or the OpenAI stack that falls back to it.

    Args:
        settings: TENANTRAG_LLM__* settings.
        count_tokens: the local tokenizer's counter (the embedder's) for extractive usage.
        breaker: a shared breaker, e.g. one whose on_state_change feeds metrics.
        client: an httpx client the app opens and closes in its lifespan.
        embed: the embedding model, for the extractive answerer's sentence scoring by meaning.
        query_vector: (tenant, question) -> the vector the pipeline already computed, or None.
    """
    # Imported here because each of these modules imports this one for the shared types.
    from tenantrag.backends.breaker import CircuitBreaker
    from tenantrag.backends.llm.breaker import CircuitBreakerLLM
    from tenantrag.backends.llm.extractive import ExtractiveLLM
    from tenantrag.backends.llm.openai import OpenAIChatLLM
    from tenantrag.backends.llm.retry import RetryingLLM

    extractive = ExtractiveLLM(count_tokens=count_tokens, embed=embed, query_vector=query_vector)
    if settings.provider == "extractive":
        return extractive
    breaker = breaker or CircuitBreaker(
        what="The language model",
        threshold=settings.breaker_threshold,
        reset_s=settings.breaker_reset_s,
    )
    retrying = RetryingLLM(
        OpenAIChatLLM.from_settings(settings, client=client),
        max_attempts=settings.max_attempts,
        initial=settings.backoff_initial_s,
        max_backoff=settings.backoff_max_s,
    )
    provider = f"openai:{settings.model}"
    return FallbackLLM(CircuitBreakerLLM(retrying, breaker, provider=provider), extractive)
