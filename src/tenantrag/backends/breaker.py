"""The circuit breaker: one per (tenant, dependency), shared by the LLM stack and the caches.

closed ──threshold consecutive failures──▶ open ──reset_s──▶ half_open ──trial succeeds──▶ closed
                                            ▲                    │
                                            └────trial fails─────┘

Half-open admits exactly one trial request; others are refused at once until it ends. A
request asks `admit` for a pass and hands it back with `success`, `failure` or, when it ended
without a verdict (cancelled), `release`. The LLM keys circuits by tenant and provider, so one
tenant's failures never open another tenant's circuit; a shared dependency such as the Redis
cache uses the tenant "" (one circuit for everyone).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog

from tenantrag.errors import DependencyUnavailable

BreakerState = Literal["closed", "open", "half_open"]
StateListener = Callable[[str, str, BreakerState], None]  # (tenant, dependency, new state)
_SEVERITY: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}

log = structlog.get_logger(__name__)


class CircuitOpen(DependencyUnavailable):
    """The circuit is open for this tenant and dependency: failing fast."""


@dataclass(slots=True)
class _Circuit:
    state: BreakerState = "closed"
    failures: int = 0
    opened_at: float = 0.0
    trial_running: bool = False


@dataclass(frozen=True, slots=True)
class Admission:
    """A pass to make one request; hand it back with its outcome."""

    tenant: str
    dependency: str
    trial: bool


class CircuitBreaker:
    """Per-(tenant, dependency) circuits; thread-safe; the clock is injectable for tests.

    Args:
        threshold: consecutive failed requests that open a circuit.
        reset_s: how long a circuit stays open before it lets one trial through.
        clock: monotonic seconds.
        on_state_change: called as (tenant, dependency, state) after every transition.
        what: the dependency as the CircuitOpen message names it.
    """

    def __init__(
        self,
        *,
        what: str = "The dependency",
        threshold: int = 5,
        reset_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        if threshold < 1 or reset_s <= 0:
            raise ValueError("threshold must be >= 1 and reset_s > 0")
        self.threshold, self.reset_s, self.clock = threshold, reset_s, clock
        self.on_state_change = on_state_change
        self.what = what
        # Only circuits with failures are kept, so memory follows trouble, not tenants.
        self._circuits: dict[tuple[str, str], _Circuit] = {}
        self._lock = threading.Lock()

    def admit(self, tenant: str, dependency: str) -> Admission:
        """A pass for one request; CircuitOpen (with retry_after) when the circuit refuses it."""
        with self._lock:
            circuit, changed = self._current(tenant, dependency)
            if circuit.state == "closed":
                admission = Admission(tenant, dependency, trial=False)
            elif circuit.state == "half_open" and not circuit.trial_running:
                circuit.trial_running = True
                admission = Admission(tenant, dependency, trial=True)
            else:
                admission = None
                wait = circuit.opened_at + self.reset_s - self.clock()
        self._announce(tenant, dependency, changed)
        if admission is None:
            raise CircuitOpen(
                f"{self.what} is failing; retry in {max(wait, 1):.0f}s", retry_after=max(wait, 1.0)
            )
        return admission

    def success(self, admission: Admission) -> None:
        """Record that the admitted request succeeded."""
        with self._lock:
            key = (admission.tenant, admission.dependency)
            circuit = self._circuits.get(key)
            changed: BreakerState | None = None
            if circuit is None:
                return
            if circuit.state == "closed" or (circuit.state == "half_open" and admission.trial):
                changed = "closed" if circuit.state != "closed" else None
                del self._circuits[key]
        self._announce(admission.tenant, admission.dependency, changed)

    def failure(self, admission: Admission) -> None:
        """Record that the admitted request failed upstream."""
        with self._lock:
            key = (admission.tenant, admission.dependency)
            circuit = self._circuits.setdefault(key, _Circuit())
            changed: BreakerState | None = None
            if circuit.state == "closed":
                circuit.failures += 1
                if circuit.failures >= self.threshold:
                    changed = self._open(circuit)
            elif circuit.state == "half_open" and admission.trial:
                changed = self._open(circuit)
            # A request admitted before the circuit opened says nothing new: ignored.
        self._announce(admission.tenant, admission.dependency, changed)

    def release(self, admission: Admission) -> None:
        """Hand back a pass whose request ended without a verdict (cancelled, or our own bug)."""
        with self._lock:
            circuit = self._circuits.get((admission.tenant, admission.dependency))
            if circuit is not None and circuit.state == "half_open" and admission.trial:
                circuit.trial_running = False

    def state(self, tenant: str, dependency: str | None = None) -> BreakerState:
        """The circuit's state; without `dependency`, the worst over the tenant's circuits."""
        with self._lock:
            keys = [k for k in self._circuits if k[0] == tenant and dependency in (None, k[1])]
            found = [(k, *self._current(*k)) for k in keys]
        for (_, dep), _, changed in found:
            self._announce(tenant, dep, changed)
        states = [circuit.state for _, circuit, _ in found]
        return max(states, key=_SEVERITY.__getitem__, default="closed")

    def _open(self, circuit: _Circuit) -> BreakerState:
        circuit.state, circuit.opened_at = "open", self.clock()
        circuit.failures, circuit.trial_running = 0, False
        return "open"

    def _current(self, tenant: str, dependency: str) -> tuple[_Circuit, BreakerState | None]:
        """The circuit, moved from open to half_open once its time is up (lock held)."""
        circuit = self._circuits.get((tenant, dependency))
        if circuit is None:
            return _Circuit(), None
        if circuit.state == "open" and self.clock() >= circuit.opened_at + self.reset_s:
            circuit.state, circuit.trial_running = "half_open", False
            return circuit, "half_open"
        return circuit, None

    def _announce(self, tenant: str, dependency: str, state: BreakerState | None) -> None:
        """Log a state change (an opening as an error) and tell the listener; lock released."""
        if state is None:
            return
        if state == "open":
            log.error(
                "circuit_opened",
                dependency=dependency,
                tenant_id=tenant,
                breaker_state=state,
                retry_in_s=self.reset_s,
            )
        else:
            log.info("circuit_state", dependency=dependency, tenant_id=tenant, breaker_state=state)
        if self.on_state_change is not None:
            try:
                self.on_state_change(tenant, dependency, state)
            except Exception:  # a broken metrics hook must not fail the request
                log.exception("breaker_listener_failed")
