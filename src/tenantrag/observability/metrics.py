"""Prometheus metrics. Labels stay bounded: route templates, tenants, types; never users or text.

With several uvicorn workers, PROMETHEUS_MULTIPROC_DIR is set before the workers start and
/metrics aggregates every worker's files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.5,
    5.0,
    10.0,
)

HTTP_REQUESTS = Counter(
    "tenantrag_http_requests", "HTTP requests answered", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "tenantrag_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "tenantrag_http_requests_in_flight", "Requests being handled", multiprocess_mode="livesum"
)
RATE_LIMITED = Counter("tenantrag_rate_limited", "Requests refused by the rate limit", ["tenant"])
RATE_LIMITER_ERRORS = Counter(
    "tenantrag_rate_limiter_errors", "Rate-limit checks that failed (storage down)"
)
AUTH_FAILURES = Counter(
    "tenantrag_auth_failures", "Requests refused before a verified credential", ["code"]
)
AUDIT_ANCHORED = Gauge(
    "tenantrag_audit_anchor_timestamp_seconds",
    "When this process last signed the audit chain's head (alert when it stops moving)",
    multiprocess_mode="max",
)
LEAKAGE = Counter(
    "tenantrag_cross_tenant_leakage", "Chunks of another tenant caught and dropped", ["tenant"]
)
PII_REDACTIONS = Counter("tenantrag_pii_redactions", "PII values redacted", ["type"])
INJECTION = Counter(
    "tenantrag_prompt_injection", "Prompt injections detected", ["tenant", "source", "action"]
)
COST = Counter("tenantrag_cost_usd", "Cost accrued in US dollars", ["tenant", "cost_type"])
COST_EVENTS_UNWRITTEN = Gauge(
    "tenantrag_cost_events_unwritten",
    "Cost events kept in memory after a failed ledger write, retried with backoff",
)
COST_EVENTS_DROPPED = Counter(
    "tenantrag_cost_events_dropped",
    "Cost events dropped unwritten: more failed ledger writes than the memory bound holds",
    ["tenant"],
)
TOKENS = Counter("tenantrag_tokens", "Model tokens used", ["tenant", "model", "kind"])
CACHE = Counter("tenantrag_cache_requests", "Cache look-ups", ["cache", "result"])
BREAKER_STATE = Gauge(
    "tenantrag_circuit_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open",
    ["dependency", "tenant"],
    multiprocess_mode="max",
)
QUOTA_RATIO = Gauge(
    "tenantrag_quota_usage_ratio",
    "Share of a tenant quota used this period",
    ["tenant", "quota"],
    multiprocess_mode="max",
)
RETRIEVAL_SCORE = Histogram(
    "tenantrag_retrieval_score",
    "Fused score of the top result",
    ["mode"],
    buckets=(-2.0, -1.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 4.0),
)
REPLICATION_LAG = Gauge(
    "tenantrag_replication_lag_seconds",
    "Seconds since this node's copy of the database last held every committed change",
    multiprocess_mode="max",
)
REPLICA_APPLIED_SEQ = Gauge(
    "tenantrag_replica_applied_seq",
    "The newest change log seq applied to this node's copy",
    multiprocess_mode="max",
)
REPLICA_REBUILD_PROGRESS = Gauge(
    "tenantrag_replica_rebuild_progress_ratio",
    "Share of the database's chunks copied by a node rebuilding on an empty data folder",
    multiprocess_mode="min",
)
DEPENDENCY_UP = Gauge(
    "tenantrag_dependency_up",
    "1 when a dependency answers, 0 when it is down",
    ["dependency"],
    multiprocess_mode="min",
)
# Background ingestion (docs/jobs.md). The depth gauges are read from the store by every
# serving node and worker, so the queue's alert holds even when no worker is left alive.
JOB_QUEUE_ITEMS = Gauge(
    "tenantrag_job_queue_items",
    "Documents of active background jobs, by state (queued, running)",
    ["state"],
    multiprocess_mode="max",
)
JOBS_ACTIVE = Gauge(
    "tenantrag_jobs_active",
    "Background ingestion jobs by status (queued, running)",
    ["status"],
    multiprocess_mode="max",
)
JOB_PROGRESS = Gauge(
    "tenantrag_job_queue_progress_timestamp_seconds",
    "When a document of an active job was last settled, or the newest active job queued if"
    " later (0 with no active job): the stall alert fires when it stops moving",
    multiprocess_mode="max",
)
JOB_DOCUMENTS = Counter(
    "tenantrag_job_documents",
    "Documents of background jobs settled, by outcome (done, unchanged, failed); rate() is"
    " documents per second",
    ["outcome"],
)
JOBS_CREATED = Counter("tenantrag_jobs_created", "Background ingestion jobs queued")
JOBS_FINISHED = Counter("tenantrag_jobs_finished", "Background ingestion jobs run to their end")
JOB_DURATION = Histogram(
    "tenantrag_job_duration_seconds",
    "From queued to finished, per background ingestion job",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
JOB_YIELD_SECONDS = Counter(
    "tenantrag_job_yield_seconds",
    "Seconds background ingestion waited for queries being answered in its process",
)
# Redis away: this process limits and caches on its own (docs/security.md, "Rate limits").
REDIS_FALLBACK = Gauge(
    "tenantrag_redis_fallback",
    "1 while this process uses its per-process rate limits and answer cache because Redis is away",
    multiprocess_mode="max",
)
REDIS_FALLBACK_SECONDS = Counter(
    "tenantrag_redis_fallback_seconds",
    "Seconds this process spent on its per-process fallback because Redis was away",
)
BREAKER_CODES = {"closed": 0, "half_open": 1, "open": 2}


def render() -> tuple[bytes, str]:
    """The exposition text of this process, or of every worker in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def count_redaction(pii_type: str, n: int) -> None:
    """Count `n` redactions of `pii_type` (the log scrubber's callback)."""
    PII_REDACTIONS.labels(type=pii_type).inc(n)


def count_redactions(counts: Mapping[str, int]) -> None:
    """Count the redactions of one text, by PII type (search results, chunks, answers)."""
    for pii_type, n in counts.items():
        PII_REDACTIONS.labels(type=pii_type).inc(n)


def set_breaker_state(dependency: str, tenant: str, state: str) -> None:
    """Callback for circuit breakers: publish a state change."""
    BREAKER_STATE.labels(dependency=dependency, tenant=tenant).set(BREAKER_CODES.get(state, 0))


def start_at_zero(
    *,
    tenants: Iterable[str],
    pii_types: Iterable[str],
    dependencies: Iterable[str],
    tenant_dependencies: Iterable[str] = (),
) -> None:
    """Create the series alerts read, at zero, so `increase()` and dashboards see the first event.

    A labelled counter has no series until a label set is first used; an alert on
    `increase(tenantrag_cross_tenant_leakage_total[5m]) > 0` would miss the very first leak.
    `dependencies` have one circuit for everyone (tenant ""); `tenant_dependencies` one per
    tenant (the answer model's), so each tenant gets its own series of them.
    """
    tenant_dependencies = tuple(tenant_dependencies)
    for tenant in tenants:
        tenant_appeared(tenant, tenant_dependencies)
    for pii_type in pii_types:
        PII_REDACTIONS.labels(type=pii_type)
    for dependency in dependencies:
        BREAKER_STATE.labels(dependency=dependency, tenant="").set(0)
    for outcome in ("done", "unchanged", "failed"):
        JOB_DOCUMENTS.labels(outcome=outcome)
    for state in ("queued", "running"):
        JOB_QUEUE_ITEMS.labels(state=state)
        JOBS_ACTIVE.labels(status=state)


_SEEN_TENANTS: set[str] = set()


def tenant_appeared(tenant: str, dependencies: Iterable[str] = ()) -> None:
    """Create a tenant's alert series at zero the first time this process sees the tenant.

    Tenants are created while the service runs (by the CLI, in another process); the first
    request of one reaches the auth middleware's look-up, which calls this, before anything
    can count against the tenant. Afterwards this is one set look-up per request.
    """
    if tenant in _SEEN_TENANTS:
        return
    LEAKAGE.labels(tenant=tenant)
    for dependency in dependencies:
        BREAKER_STATE.labels(dependency=dependency, tenant=tenant).set(0)
    _SEEN_TENANTS.add(tenant)
