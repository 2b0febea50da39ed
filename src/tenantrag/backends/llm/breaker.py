"""A circuit breaker per (tenant, provider), and the LLM wrapper that consults it.

closed ──5 consecutive failed requests──▶ open ──60 s──▶ half_open ──trial succeeds──▶ closed
                                           ▲                  │
                                           └──trial fails─────┘

Half-open admits exactly one trial request; others are rejected at once until it ends. One
tenant's failures never open another tenant's circuit. The breaker wraps `RetryingLLM`, so a
request counts once however many attempts it made.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

import structlog

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

BreakerState = Literal["closed", "open", "half_open"]
StateListener = Callable[[str, str, BreakerState], None]  # (tenant, provider, new state)
_SEVERITY: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}
# Statuses that say the provider (not this one request) is unusable: key, account or model.
PROVIDER_STATUSES = frozenset({401, 402, 403, 404})

log = structlog.get_logger(__name__)


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
    provider: str
    trial: bool


class CircuitBreaker:
    """Per-(tenant, provider) circuits; thread-safe; the clock is injectable for tests.

    Args:
        threshold: consecutive failed requests that open a circuit.
        reset_s: how long a circuit stays open before it lets one trial through.
        clock: monotonic seconds.
        on_state_change: called as (tenant, provider, state) after every transition.
    """

    def __init__(
        self,
        *,
        threshold: int = 5,
        reset_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        if threshold < 1 or reset_s <= 0:
            raise ValueError("threshold must be >= 1 and reset_s > 0")
        self.threshold, self.reset_s, self.clock = threshold, reset_s, clock
        self.on_state_change = on_state_change
        # Only circuits with failures are kept, so memory follows trouble, not tenants.
        self._circuits: dict[tuple[str, str], _Circuit] = {}
        self._lock = threading.Lock()

    def admit(self, tenant: str, provider: str) -> Admission:
        """A pass for one request; CircuitOpen (with retry_after) when the circuit refuses it."""
        with self._lock:
            circuit, changed = self._current(tenant, provider)
            if circuit.state == "closed":
                admission = Admission(tenant, provider, trial=False)
            elif circuit.state == "half_open" and not circuit.trial_running:
                circuit.trial_running = True
                admission = Admission(tenant, provider, trial=True)
            else:
                admission = None
                wait = circuit.opened_at + self.reset_s - self.clock()
        self._announce(tenant, provider, changed)
        if admission is None:
            raise CircuitOpen(
                f"The language model is failing for this tenant; retry in {max(wait, 1):.0f}s",
                retry_after=max(wait, 1.0),
            )
        return admission

    def success(self, admission: Admission) -> None:
        """Record that the admitted request succeeded."""
        with self._lock:
            key = (admission.tenant, admission.provider)
            circuit = self._circuits.get(key)
            changed: BreakerState | None = None
            if circuit is None:
                return
            if circuit.state == "closed" or (circuit.state == "half_open" and admission.trial):
                changed = "closed" if circuit.state != "closed" else None
                del self._circuits[key]
        self._announce(admission.tenant, admission.provider, changed)

    def failure(self, admission: Admission) -> None:
        """Record that the admitted request failed upstream."""
        with self._lock:
            key = (admission.tenant, admission.provider)
            circuit = self._circuits.setdefault(key, _Circuit())
            changed: BreakerState | None = None
            if circuit.state == "closed":
                circuit.failures += 1
                if circuit.failures >= self.threshold:
                    changed = self._open(circuit)
            elif circuit.state == "half_open" and admission.trial:
                changed = self._open(circuit)
            # A request admitted before the circuit opened says nothing new: ignored.
        self._announce(admission.tenant, admission.provider, changed)

    def release(self, admission: Admission) -> None:
        """Hand back a pass whose request ended without a verdict (cancelled, or our own bug)."""
        with self._lock:
            circuit = self._circuits.get((admission.tenant, admission.provider))
            if circuit is not None and circuit.state == "half_open" and admission.trial:
                circuit.trial_running = False

    def state(self, tenant: str, provider: str | None = None) -> BreakerState:
        """The circuit's state; without `provider`, the worst over the tenant's providers."""
        with self._lock:
            keys = [k for k in self._circuits if k[0] == tenant and provider in (None, k[1])]
            found = [(k, *self._current(*k)) for k in keys]
        for (_, prov), _, changed in found:
            self._announce(tenant, prov, changed)
        states = [circuit.state for _, circuit, _ in found]
        return max(states, key=_SEVERITY.__getitem__, default="closed")

    def _open(self, circuit: _Circuit) -> BreakerState:
        circuit.state, circuit.opened_at = "open", self.clock()
        circuit.failures, circuit.trial_running = 0, False
        return "open"

    def _current(self, tenant: str, provider: str) -> tuple[_Circuit, BreakerState | None]:
        """The circuit, moved from open to half_open once its time is up (lock held)."""
        circuit = self._circuits.get((tenant, provider))
        if circuit is None:
            return _Circuit(), None
        if circuit.state == "open" and self.clock() >= circuit.opened_at + self.reset_s:
            circuit.state, circuit.trial_running = "half_open", False
            return circuit, "half_open"
        return circuit, None

    def _announce(self, tenant: str, provider: str, state: BreakerState | None) -> None:
        if state is None:
            return
        log.warning("llm_circuit_state", tenant_id=tenant, provider=provider, state=state)
        if self.on_state_change is not None:
            try:
                self.on_state_change(tenant, provider, state)
            except Exception:  # a broken metrics hook must not fail the request
                log.exception("breaker_listener_failed")


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
