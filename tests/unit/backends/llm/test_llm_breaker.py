"""The circuit breaker's state machine, per tenant and provider, and the LLM wrapper around it."""

from __future__ import annotations

import asyncio

import pytest
from tests.unit.backends.llm.llm_fakes import FakeClock, ScriptedLLM, make_prompt

from tenantrag.backends.llm import CircuitOpen, LLMRequestRejected, LLMServerError, collect
from tenantrag.backends.llm.breaker import BreakerState, CircuitBreaker, CircuitBreakerLLM

ACME, GLOBEX = "acme", "globex"
PROMPT = make_prompt("How much annual leave do employees earn?")


def boom() -> LLMServerError:
    return LLMServerError("The language model answered 500", status=500)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def changes() -> list[tuple[str, str, BreakerState]]:
    return []


@pytest.fixture
def breaker(clock: FakeClock, changes: list[tuple[str, str, BreakerState]]) -> CircuitBreaker:
    return CircuitBreaker(
        threshold=5,
        reset_s=60,
        clock=clock,
        on_state_change=lambda t, p, s: changes.append((t, p, s)),
    )


async def fail_times(llm: CircuitBreakerLLM, upstream: ScriptedLLM, n: int, tenant: str) -> None:
    upstream.script(*(boom() for _ in range(n)))
    for _ in range(n):
        with pytest.raises(LLMServerError):
            await llm.complete(PROMPT, tenant=tenant)


class TestStateMachine:
    async def test_five_consecutive_failures_open_the_circuit(
        self, breaker: CircuitBreaker, changes: list[tuple[str, str, BreakerState]]
    ) -> None:
        """Four failures leave it closed; the fifth opens it and tells the listener."""
        upstream = ScriptedLLM()
        llm = CircuitBreakerLLM(upstream, breaker)
        await fail_times(llm, upstream, 4, ACME)
        assert breaker.state(ACME) == "closed"
        await fail_times(llm, upstream, 1, ACME)
        assert breaker.state(ACME) == "open"
        assert changes == [(ACME, "scripted", "open")]

    async def test_a_success_resets_the_count(self, breaker: CircuitBreaker) -> None:
        """Failures must be consecutive: a success in between starts the count again."""
        upstream = ScriptedLLM()
        llm = CircuitBreakerLLM(upstream, breaker)
        await fail_times(llm, upstream, 4, ACME)
        await llm.complete(PROMPT, tenant=ACME)
        await fail_times(llm, upstream, 4, ACME)
        assert breaker.state(ACME) == "closed"

    async def test_open_circuit_rejects_without_calling_upstream(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        """While open, calls fail fast with CircuitOpen and a Retry-After of the time left."""
        upstream = ScriptedLLM()
        llm = CircuitBreakerLLM(upstream, breaker)
        await fail_times(llm, upstream, 5, ACME)
        clock.advance(45)
        with pytest.raises(CircuitOpen) as raised:
            await llm.complete(PROMPT, tenant=ACME)
        assert upstream.calls == 5
        assert raised.value.retry_after == pytest.approx(15)
        assert raised.value.status_code == 503

    async def test_after_the_reset_time_one_trial_success_closes_it(
        self,
        breaker: CircuitBreaker,
        clock: FakeClock,
        changes: list[tuple[str, str, BreakerState]],
    ) -> None:
        """60 s after opening it is half-open; a successful trial closes it."""
        upstream = ScriptedLLM()
        llm = CircuitBreakerLLM(upstream, breaker)
        await fail_times(llm, upstream, 5, ACME)
        clock.advance(59.9)
        assert breaker.state(ACME) == "open"
        clock.advance(0.1)
        assert breaker.state(ACME) == "half_open"
        assert (await llm.complete(PROMPT, tenant=ACME)).text == "ok"
        assert breaker.state(ACME) == "closed"
        assert [s for _, _, s in changes] == ["open", "half_open", "closed"]

    async def test_a_failed_trial_reopens_it_for_another_full_period(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        """A failing trial re-opens the circuit, and the wait starts again from then."""
        upstream = ScriptedLLM()
        llm = CircuitBreakerLLM(upstream, breaker)
        await fail_times(llm, upstream, 5, ACME)
        clock.advance(60)
        await fail_times(llm, upstream, 1, ACME)
        assert breaker.state(ACME) == "open"
        clock.advance(59)
        with pytest.raises(CircuitOpen):
            await llm.complete(PROMPT, tenant=ACME)
        clock.advance(1)
        assert breaker.state(ACME) == "half_open"

    async def test_half_open_lets_exactly_one_trial_through(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        """While the trial is running, concurrent requests are rejected at once."""
        upstream = ScriptedLLM()
        llm = CircuitBreakerLLM(upstream, breaker)
        await fail_times(llm, upstream, 5, ACME)
        clock.advance(60)
        upstream.gate = asyncio.Event()
        trial = asyncio.create_task(llm.complete(PROMPT, tenant=ACME))
        await asyncio.sleep(0)  # let the trial take its pass and block upstream
        others = await asyncio.gather(
            *(llm.complete(PROMPT, tenant=ACME) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(o, CircuitOpen) for o in others)
        upstream.gate.set()
        assert (await trial).text == "ok"
        assert upstream.calls == 6
        assert breaker.state(ACME) == "closed"

    async def test_a_cancelled_trial_frees_the_slot(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        """A trial that is cancelled gives no verdict, and the next request becomes the trial."""
        upstream = ScriptedLLM()
        llm = CircuitBreakerLLM(upstream, breaker)
        await fail_times(llm, upstream, 5, ACME)
        clock.advance(60)
        upstream.gate = asyncio.Event()
        trial = asyncio.create_task(llm.complete(PROMPT, tenant=ACME))
        await asyncio.sleep(0)
        trial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trial
        upstream.gate = None
        assert breaker.state(ACME) == "half_open"
        assert (await llm.complete(PROMPT, tenant=ACME)).text == "ok"
        assert breaker.state(ACME) == "closed"


class TestIsolation:
    async def test_one_tenants_failures_never_open_anothers_circuit(
        self, breaker: CircuitBreaker
    ) -> None:
        """Acme's open circuit leaves Globex closed and served."""
        upstream = ScriptedLLM()
        llm = CircuitBreakerLLM(upstream, breaker)
        await fail_times(llm, upstream, 5, ACME)
        assert breaker.state(ACME) == "open"
        assert breaker.state(GLOBEX) == "closed"
        assert (await llm.complete(PROMPT, tenant=GLOBEX)).text == "ok"

    async def test_failures_of_different_tenants_do_not_add_up(
        self, breaker: CircuitBreaker
    ) -> None:
        """Four failures each for two tenants open neither circuit."""
        upstream = ScriptedLLM()
        llm = CircuitBreakerLLM(upstream, breaker)
        for _ in range(4):
            await fail_times(llm, upstream, 1, ACME)
            await fail_times(llm, upstream, 1, GLOBEX)
        assert breaker.state(ACME) == breaker.state(GLOBEX) == "closed"

    async def test_providers_have_separate_circuits(self, breaker: CircuitBreaker) -> None:
        """A tenant's circuit for one provider does not block another provider."""
        primary, backup = ScriptedLLM(), ScriptedLLM()
        first = CircuitBreakerLLM(primary, breaker, provider="openai:gpt-4o")
        second = CircuitBreakerLLM(backup, breaker, provider="azure:gpt-4o")
        await fail_times(first, primary, 5, ACME)
        assert breaker.state(ACME, "openai:gpt-4o") == "open"
        assert breaker.state(ACME, "azure:gpt-4o") == "closed"
        assert breaker.state(ACME) == "open"  # the tenant's worst, for metrics
        assert (await second.complete(PROMPT, tenant=ACME)).text == "ok"


class TestWhatCounts:
    async def test_a_bad_request_is_not_a_provider_failure(self, breaker: CircuitBreaker) -> None:
        """400s are about one request, so five of them leave the circuit closed."""
        upstream = ScriptedLLM(*(LLMRequestRejected("too long", status=400) for _ in range(5)))
        llm = CircuitBreakerLLM(upstream, breaker)
        for _ in range(5):
            with pytest.raises(LLMRequestRejected):
                await llm.complete(PROMPT, tenant=ACME)
        assert breaker.state(ACME) == "closed"

    async def test_an_invalid_key_is_a_provider_failure(self, breaker: CircuitBreaker) -> None:
        """401s mean the provider is unusable, so five of them open the circuit."""
        upstream = ScriptedLLM(*(LLMRequestRejected("bad key", status=401) for _ in range(5)))
        llm = CircuitBreakerLLM(upstream, breaker)
        for _ in range(5):
            with pytest.raises(LLMRequestRejected):
                await llm.complete(PROMPT, tenant=ACME)
        assert breaker.state(ACME) == "open"

    async def test_streams_count_like_requests(self, breaker: CircuitBreaker) -> None:
        """Five failed streams open the circuit; then a stream is refused before any event."""
        upstream = ScriptedLLM(*(boom() for _ in range(5)))
        llm = CircuitBreakerLLM(upstream, breaker)
        for _ in range(5):
            with pytest.raises(LLMServerError):
                await collect(llm.stream(PROMPT, tenant=ACME))
        with pytest.raises(CircuitOpen):
            await collect(llm.stream(PROMPT, tenant=ACME))
        assert upstream.calls == 5


def test_a_failing_listener_does_not_break_the_breaker(clock: FakeClock) -> None:
    """An exception in the state-change hook is logged, and the transition still happens."""

    def broken(tenant: str, provider: str, state: BreakerState) -> None:
        raise RuntimeError("metrics down")

    breaker = CircuitBreaker(threshold=1, clock=clock, on_state_change=broken)
    breaker.failure(breaker.admit(ACME, "p"))
    assert breaker.state(ACME, "p") == "open"


def test_bad_settings_are_refused() -> None:
    """A zero threshold or reset time is a configuration error."""
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(reset_s=0)
