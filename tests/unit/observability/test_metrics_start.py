"""The series alerts read exist at zero from the start, before their first event."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tenantrag.observability import metrics


def test_alert_series_start_at_zero() -> None:
    """Leakage per tenant, PII per type and breaker state per dependency are exported as 0."""
    metrics.start_at_zero(tenants=["zero-tenant"], pii_types=["email"], dependencies=["zero-dep"])
    leak = "tenantrag_cross_tenant_leakage_total"
    assert REGISTRY.get_sample_value(leak, {"tenant": "zero-tenant"}) == 0.0
    assert (
        REGISTRY.get_sample_value("tenantrag_pii_redactions_total", {"type": "email"}) is not None
    )
    breaker = "tenantrag_circuit_breaker_state"
    assert REGISTRY.get_sample_value(breaker, {"dependency": "zero-dep", "tenant": ""}) == 0.0


def test_a_tenant_gets_its_series_the_first_time_it_appears() -> None:
    """Its leakage counter at 0 and a closed circuit per per-tenant dependency, once only."""
    leak = "tenantrag_cross_tenant_leakage_total"
    breaker = "tenantrag_circuit_breaker_state"
    assert REGISTRY.get_sample_value(leak, {"tenant": "late-tenant"}) is None
    metrics.tenant_appeared("late-tenant", ["openai:gpt-test"])
    assert REGISTRY.get_sample_value(leak, {"tenant": "late-tenant"}) == 0.0
    labels = {"dependency": "openai:gpt-test", "tenant": "late-tenant"}
    assert REGISTRY.get_sample_value(breaker, labels) == 0.0
    metrics.BREAKER_STATE.labels(**labels).set(2)  # the circuit opens later
    metrics.tenant_appeared("late-tenant", ["openai:gpt-test"])
    assert REGISTRY.get_sample_value(breaker, labels) == 2.0  # a second sighting resets nothing
