"""The shared circuit breaker as a cache uses it: one circuit (tenant "") for the dependency."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from tenantrag.backends.breaker import Admission, BreakerState, CircuitBreaker, CircuitOpen

if TYPE_CHECKING:
    from conftest import FakeClock


@pytest.fixture
def changes() -> list[tuple[str, BreakerState]]:
    return []


@pytest.fixture
def breaker(clock: FakeClock, changes: list[tuple[str, BreakerState]]) -> Breaker:
    return Breaker(
        CircuitBreaker(
            threshold=3,
            reset_s=10,
            clock=clock,
            on_state_change=lambda _tenant, dep, state: changes.append((dep, state)),
        )
    )


class Breaker:
    """The calls a cache makes on the breaker for its one circuit ("", "redis")."""

    def __init__(self, inner: CircuitBreaker) -> None:
        self.inner = inner
        self.admission: Admission | None = None

    @property
    def state(self) -> BreakerState:
        return self.inner.state("", "redis")

    def allow(self) -> bool:
        try:
            self.admission = self.inner.admit("", "redis")
        except CircuitOpen:
            return False
        return True

    def success(self) -> None:
        assert self.admission is not None
        self.inner.success(self.admission)

    def failure(self) -> None:
        assert self.admission is not None
        self.inner.failure(self.admission)

    def abandon(self) -> None:
        assert self.admission is not None
        self.inner.release(self.admission)


def fail(breaker: Breaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.failure()


class TestSharedCircuit:
    def test_stays_closed_below_threshold(self, breaker: Breaker) -> None:
        """Fewer consecutive failures than the threshold leave the breaker closed."""
        fail(breaker, 2)
        assert breaker.state == "closed"
        assert breaker.allow()

    def test_success_resets_the_failure_count(self, breaker: Breaker) -> None:
        """Only consecutive failures count: a success in between starts the count again."""
        fail(breaker, 2)
        breaker.success()
        fail(breaker, 2)
        assert breaker.state == "closed"

    def test_opens_at_threshold_and_refuses_calls(self, breaker: Breaker, clock: FakeClock) -> None:
        """The threshold-th consecutive failure opens it; calls are refused until reset_s."""
        fail(breaker, 3)
        assert breaker.state == "open"
        clock.advance(9.9)
        assert not breaker.allow()
        assert breaker.state == "open"

    def test_half_open_lets_one_trial_through(self, breaker: Breaker, clock: FakeClock) -> None:
        """After reset_s exactly one trial call is allowed while it is running."""
        fail(breaker, 3)
        clock.advance(10)
        assert breaker.allow()
        assert breaker.state == "half_open"
        assert not breaker.allow()

    def test_successful_trial_closes(self, breaker: Breaker, clock: FakeClock) -> None:
        """A trial that works closes the breaker and every call is allowed again."""
        fail(breaker, 3)
        clock.advance(10)
        assert breaker.allow()
        breaker.success()
        assert breaker.state == "closed"
        assert breaker.allow()
        assert breaker.allow()

    def test_failed_trial_reopens_for_another_period(
        self, breaker: Breaker, clock: FakeClock
    ) -> None:
        """A trial that fails re-opens the breaker for a full reset_s, whatever the threshold."""
        fail(breaker, 3)
        clock.advance(10)
        assert breaker.allow()
        breaker.failure()
        assert breaker.state == "open"
        clock.advance(9)
        assert not breaker.allow()
        clock.advance(1)
        assert breaker.allow()

    def test_abandoned_trial_frees_the_slot(self, breaker: Breaker, clock: FakeClock) -> None:
        """A trial that ends without an outcome (cancelled) lets the next call be the trial."""
        fail(breaker, 3)
        clock.advance(10)
        assert breaker.allow()
        breaker.abandon()
        assert breaker.allow()
        assert breaker.state == "half_open"

    def test_reports_each_state_change_once(
        self,
        breaker: Breaker,
        clock: FakeClock,
        changes: list[tuple[str, BreakerState]],
    ) -> None:
        """The callback hears each change of state once, not each call."""
        fail(breaker, 3)
        for _ in range(20):
            breaker.allow()
        clock.advance(10)
        assert breaker.allow()
        breaker.success()
        breaker.success()
        assert changes == [("redis", "open"), ("redis", "half_open"), ("redis", "closed")]

    def test_logs_one_error_per_opening(self, breaker: Breaker, clock: FakeClock) -> None:
        """Opening logs one ERROR line naming the dependency, however many calls are refused."""
        with capture_logs() as logs:
            fail(breaker, 3)
            for _ in range(50):
                breaker.allow()
        errors = [entry for entry in logs if entry["log_level"] == "error"]
        assert len(errors) == 1
        assert errors[0]["dependency"] == "redis"
        assert errors[0]["breaker_state"] == "open"

    @pytest.mark.parametrize(("threshold", "reset_s"), [(0, 10.0), (3, 0.0)])
    def test_rejects_nonsense_settings(self, threshold: int, reset_s: float) -> None:
        """A threshold under one or a non-positive reset period is refused."""
        with pytest.raises(ValueError, match="threshold"):
            CircuitBreaker(threshold=threshold, reset_s=reset_s)
