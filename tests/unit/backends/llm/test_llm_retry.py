"""RetryingLLM: which failures are retried, how often, and how long it waits between attempts."""

from __future__ import annotations

import pytest
from tests.unit.backends.llm.llm_fakes import ScriptedLLM, make_prompt

from tenantrag.backends.llm import (
    Delta,
    LLMRateLimited,
    LLMRequestRejected,
    LLMServerError,
    LLMTimeout,
    LLMUnreachable,
    collect,
)
from tenantrag.backends.llm.retry import RetryingLLM

PROMPT = make_prompt("How much annual leave do employees earn?")


class Sleeps(list[float]):
    """Records each requested wait instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def server_error(retry_after: float | None = None) -> LLMServerError:
    return LLMServerError("The language model answered 503", status=503, retry_after=retry_after)


def retrying(upstream: ScriptedLLM, sleeps: Sleeps, **options: float) -> RetryingLLM:
    return RetryingLLM(upstream, sleep=sleeps, jitter=lambda: 0.0, **options)  # type: ignore[arg-type]  # test options are all numbers


class TestAttempts:
    async def test_gives_up_after_three_attempts_in_all(self) -> None:
        """Three 5xx in a row: three calls, two waits, and the last error is raised."""
        upstream, sleeps = ScriptedLLM(*(server_error() for _ in range(4))), Sleeps()
        with pytest.raises(LLMServerError):
            await retrying(upstream, sleeps).complete(PROMPT, tenant="acme")
        assert upstream.calls == 3
        assert sleeps == [0.5, 1.0]

    @pytest.mark.parametrize(
        "error",
        [
            server_error(),
            LLMRateLimited("429"),
            LLMTimeout("timed out"),
            LLMUnreachable("connection refused"),
        ],
        ids=["5xx", "429", "timeout", "connection"],
    )
    async def test_transient_failures_are_retried(self, error: Exception) -> None:
        """Timeouts, connection errors, 429 and 5xx are retried until an attempt succeeds."""
        upstream, sleeps = ScriptedLLM(error, "recovered"), Sleeps()
        completion = await retrying(upstream, sleeps).complete(PROMPT, tenant="acme")
        assert completion.text == "recovered"
        assert upstream.calls == 2

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
    async def test_other_client_errors_are_never_retried(self, status: int) -> None:
        """A 4xx other than 429 fails on the first attempt, without waiting."""
        upstream = ScriptedLLM(LLMRequestRejected("rejected", status=status), "never reached")
        sleeps = Sleeps()
        with pytest.raises(LLMRequestRejected):
            await retrying(upstream, sleeps).complete(PROMPT, tenant="acme")
        assert (upstream.calls, sleeps) == (1, [])


class TestBackoff:
    async def test_backoff_doubles_and_is_capped(self) -> None:
        """Waits go 0.5, 1, 2, 4, … and never exceed the cap."""
        upstream, sleeps = ScriptedLLM(*(server_error() for _ in range(6))), Sleeps()
        llm = retrying(upstream, sleeps, max_attempts=6, max_backoff=3.0)
        with pytest.raises(LLMServerError):
            await llm.complete(PROMPT, tenant="acme")
        assert sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]

    async def test_jitter_adds_at_most_a_quarter(self) -> None:
        """With real randomness each wait lies between the base and 1.25 times it."""
        upstream, sleeps = ScriptedLLM(*(server_error() for _ in range(5))), Sleeps()
        llm = RetryingLLM(upstream, max_attempts=5, sleep=sleeps)
        with pytest.raises(LLMServerError):
            await llm.complete(PROMPT, tenant="acme")
        for wait, base in zip(sleeps, [0.5, 1.0, 2.0, 4.0], strict=True):
            assert base <= wait <= base * 1.25

    async def test_retry_after_is_honoured(self) -> None:
        """A 429 saying Retry-After: 4 waits 4 s, not the 0.5 s backoff."""
        upstream = ScriptedLLM(LLMRateLimited("slow down", retry_after=4), "ok")
        sleeps = Sleeps()
        await retrying(upstream, sleeps).complete(PROMPT, tenant="acme")
        assert sleeps == [4.0]

    async def test_a_short_retry_after_does_not_shorten_the_backoff(self) -> None:
        """Retry-After: 0.1 on the second failure still waits the 1 s backoff."""
        upstream = ScriptedLLM(server_error(), server_error(retry_after=0.1), "ok")
        sleeps = Sleeps()
        await retrying(upstream, sleeps).complete(PROMPT, tenant="acme")
        assert sleeps == [0.5, 1.0]

    async def test_a_retry_after_beyond_the_cap_stops_retrying(self) -> None:
        """Asked to wait 120 s with a 10 s cap, it gives up at once so the fallback can answer."""
        upstream = ScriptedLLM(LLMRateLimited("quota", retry_after=120), "ok")
        sleeps = Sleeps()
        with pytest.raises(LLMRateLimited):
            await retrying(upstream, sleeps).complete(PROMPT, tenant="acme")
        assert (upstream.calls, sleeps) == (1, [])


class TestStreams:
    async def test_a_stream_failing_before_its_first_event_is_retried(self) -> None:
        """Nothing was sent yet, so the whole stream can start again."""
        upstream, sleeps = ScriptedLLM(server_error(), "streamed"), Sleeps()
        completion = await collect(retrying(upstream, sleeps).stream(PROMPT, tenant="acme"))
        assert completion.text == "streamed"
        assert (upstream.calls, sleeps) == (2, [0.5])

    async def test_a_stream_failing_midway_is_not_retried(self) -> None:
        """After text went out, a failure is raised rather than sending the text twice."""

        class MidwayFailure(ScriptedLLM):
            async def stream(self, prompt, *, tenant):  # type: ignore[no-untyped-def]  # a one-off failing stream
                self.calls += 1
                yield Delta("partial ")
                raise LLMUnreachable("connection dropped")

        upstream, sleeps = MidwayFailure(), Sleeps()
        received: list[Delta] = []
        with pytest.raises(LLMUnreachable):
            async for event in retrying(upstream, sleeps).stream(PROMPT, tenant="acme"):
                assert isinstance(event, Delta)
                received.append(event)
        assert received == [Delta("partial ")]
        assert (upstream.calls, sleeps) == (1, [])


def test_at_least_one_attempt_is_required() -> None:
    """max_attempts=0 is a configuration error."""
    with pytest.raises(ValueError):
        RetryingLLM(ScriptedLLM(), max_attempts=0)
