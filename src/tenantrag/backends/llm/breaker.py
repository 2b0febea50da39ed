"""The LLM wrapper that consults a circuit breaker (backends/breaker.py) per tenant and provider.

It wraps `RetryingLLM`, so a request counts once however many attempts it made; 5 consecutive
failed requests open the tenant's circuit for 60 s by default.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tenantrag.backends.breaker import Admission, BreakerState, CircuitBreaker
from tenantrag.backends.llm import (
    LLM,
    CircuitOpen,
    Completion,
    Done,
    LLMRequestRejected,
    Prompt,
    StreamEvent,
    closing,
)
from tenantrag.errors import UpstreamError

__all__ = ["BreakerState", "CircuitBreaker", "CircuitBreakerLLM", "counts_as_failure"]
# Statuses that say the provider (not this one request) is unusable: key, account or model.
PROVIDER_STATUSES = frozenset({401, 402, 403, 404})


def counts_as_failure(exc: UpstreamError) -> bool:
    """True unless the error is about this one request (a 400 for a too-long prompt, say)."""
    if isinstance(exc, CircuitOpen):
        return False
    if isinstance(exc, LLMRequestRejected):
        return exc.status in PROVIDER_STATUSES
    return True


class CircuitBreakerLLM:
    """Fails fast with CircuitOpen while the tenant's circuit for this provider is open."""

    def __init__(self, inner: LLM, breaker: CircuitBreaker, *, provider: str | None = None) -> None:
        self.inner, self.breaker = inner, breaker
        self.provider = provider or inner.model
        self.model = inner.model

    async def complete(self, prompt: Prompt, *, tenant: str) -> Completion:
        """The inner model's answer, if the circuit admits the request."""
        admission = self.breaker.admit(tenant, self.provider)
        try:
            completion = await self.inner.complete(prompt, tenant=tenant)
        except UpstreamError as exc:
            self._record(admission, exc)
            raise
        except BaseException:
            self.breaker.release(admission)
            raise
        self.breaker.success(admission)
        return completion

    async def stream(self, prompt: Prompt, *, tenant: str) -> AsyncIterator[StreamEvent]:
        """The inner model's stream, if the circuit admits it; the outcome is its ending."""
        admission = self.breaker.admit(tenant, self.provider)
        settled = False
        try:
            async with closing(self.inner.stream(prompt, tenant=tenant)) as events:
                async for event in events:
                    if isinstance(event, Done):
                        self.breaker.success(admission)
                        settled = True
                    yield event
        except UpstreamError as exc:
            if not settled:
                self._record(admission, exc)
                settled = True
            raise
        finally:
            if not settled:  # the consumer stopped early or was cancelled: no verdict
                self.breaker.release(admission)

    def _record(self, admission: Admission, exc: UpstreamError) -> None:
        if counts_as_failure(exc):
            self.breaker.failure(admission)
        else:
            self.breaker.release(admission)
