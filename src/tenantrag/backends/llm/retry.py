"""Retries of transient upstream failures: timeouts, lost connections, 429 and 5xx.

At most `max_attempts` attempts in all, none started after `max_elapsed` seconds, waiting
`initial`·2ⁿ seconds (+ up to 25 % jitter, capped at `max_backoff`) between them, or longer
when the upstream's Retry-After asks for it. A Retry-After beyond the cap ends the retries at
once: waiting less would only be refused again, and the caller (the fallback) can answer
sooner. Other 4xx are never retried.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_never,
)
from tenacity.stop import stop_base

from tenantrag.backends.llm import (
    LLM,
    Completion,
    Prompt,
    StreamEvent,
    closing,
    is_retryable,
    retry_after_of,
)

JITTER = 0.25

log = structlog.get_logger(__name__)


class _RetryAfterTooLong(stop_base):
    """Stop when the upstream asks us to wait longer than we are willing to."""

    def __init__(self, cap: float) -> None:
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        wait = retry_after_of(outcome.exception()) if outcome is not None else None
        return wait is not None and wait > self.cap


class RetryingLLM:
    """Retries the inner model's transient failures with exponential backoff and jitter.

    Args:
        inner: the model to call.
        max_attempts: attempts in all, the first included.
        initial: the first backoff in seconds; it doubles with each retry.
        max_backoff: no wait is longer; a longer Retry-After stops the retries.
        max_elapsed: no new attempt starts this many seconds after the first began (None: no limit),
            so a hanging upstream costs one timeout, not three.
        sleep: how to wait (tests pass a recorder).
        jitter: a number in [0, 1) scaling the jitter (tests pass a constant).
    """

    def __init__(
        self,
        inner: LLM,
        *,
        max_attempts: int = 3,
        initial: float = 0.5,
        max_backoff: float = 10.0,
        max_elapsed: float | None = 20.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.inner, self.model = inner, inner.model
        self.max_attempts, self.initial, self.max_backoff = max_attempts, initial, max_backoff
        self.max_elapsed = max_elapsed
        self.sleep, self.jitter = sleep, jitter

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        wait = self.initial * 2.0 ** (attempt - 1) * (1 + JITTER * self.jitter())
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.max_backoff)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.backoff(state.attempt_number, retry_after_of(exc))

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.info("llm_retry", attempt=state.attempt_number, wait_s=round(wait, 3), error=repr(exc))

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts)
            | _RetryAfterTooLong(self.max_backoff)
            | (stop_never if self.max_elapsed is None else stop_after_delay(self.max_elapsed)),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            sleep=self.sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )

    async def complete(self, prompt: Prompt, *, tenant: str) -> Completion:
        """The inner model's answer, retried on transient failures."""
        async for attempt in self._retrying():
            with attempt:
                return await self.inner.complete(prompt, tenant=tenant)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def stream(self, prompt: Prompt, *, tenant: str) -> AsyncIterator[StreamEvent]:
        """The inner model's stream; retried only until its first event, never after."""
        events: AsyncIterator[StreamEvent] | None = None
        async for attempt in self._retrying():
            with attempt:
                events = self.inner.stream(prompt, tenant=tenant)
                try:
                    first = await anext(events)
                except BaseException:
                    async with closing(events):
                        raise
        assert events is not None  # tenacity either succeeded or re-raised
        async with closing(events):
            yield first
            async for event in events:
                yield event
