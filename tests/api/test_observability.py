"""Metrics, traces, logs, costs and quotas, observed through the running app."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence

import httpx
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.types import Receive, Scope, Send
from tests.api.conftest import TokenFactory

from tenantrag.app import create_app
from tenantrag.observability.logging import configure_logging
from tenantrag.observability.tracing import extract_context
from tenantrag.services import Services
from tenantrag.settings import Settings

DOCS = {
    "documents": [
        {"id": "leave", "title": "Leave", "text": "Staff request annual leave in the HR portal."},
        {"id": "travel", "title": "Travel", "text": "Economy class is required for short flights."},
    ]
}
SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans of sampled requests, from the process's tracer provider."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "setup_tracing installs the SDK provider"
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    processor.shutdown()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """JSON log lines written while the test runs."""
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    yield stream
    structlog.reset_defaults()


async def test_a_sampled_query_has_spans_per_stage_and_backend(
    client: httpx.AsyncClient, auth: TokenFactory, spans: InMemorySpanExporter
) -> None:
    """A query with a sampled traceparent yields request, stage and backend spans, without text."""
    await client.post("/api/documents", headers=auth(), json=DOCS)
    question = "How do staff request annual leave?"
    r = await client.post(
        "/api/query", headers={**auth(), "traceparent": SAMPLED}, json={"query": question}
    )
    assert r.status_code == 200
    assert r.headers["x-trace-id"] == "0af7651916cd43dd8448eb211c80319c"
    names = {s.name for s in spans.get_finished_spans()}
    for expected in (
        "POST /api/query",
        "stage.Validate",
        "stage.Embed",
        "stage.DetectInjection",
        "stage.Retrieve",
        "stage.Govern",
        "embed.query",
        "retrieve.bm25",
        "retrieve.vector",
        "llm.complete",
        "cache.get",
        "cache.set",
        "store.fetch_chunks",
    ):
        assert expected in names, (expected, sorted(names))
    llm = next(s for s in spans.get_finished_spans() if s.name == "llm.complete")
    assert llm.attributes is not None
    assert llm.attributes["gen_ai.request.model"] == "extractive"
    assert llm.attributes["gen_ai.usage.output_tokens"] > 0  # type: ignore[operator]
    for s in spans.get_finished_spans():
        assert question not in json.dumps(dict(s.attributes or {}))


STAGES = [
    "stage.Validate",
    "stage.Embed",
    "stage.DetectInjection",
    "stage.AnswerCache",
    "stage.Retrieve",
    "stage.Govern",
    "stage.Generate",
    "stage.PostProcess",
    "stage.Account",
]


def one_trace(finished: Sequence[ReadableSpan], trace_id: str) -> list[ReadableSpan]:
    """The spans of `trace_id`, checked to form one tree under one server span."""
    mine = [
        s for s in finished if s.context is not None and f"{s.context.trace_id:032x}" == trace_id
    ]
    servers = [s for s in mine if s.kind is SpanKind.SERVER]
    assert len(servers) == 1, [(s.name, s.kind) for s in mine]
    by_id = {s.context.span_id: s for s in mine if s.context is not None}
    root = servers[0]
    for s in mine:
        node = s
        while node is not root:  # every span's parents lead up to the server span
            assert node.parent is not None and node.parent.span_id in by_id, (s.name, node.name)
            node = by_id[node.parent.span_id]
    return mine


async def test_a_request_is_one_trace_under_one_server_span_with_a_traceparent(
    client: httpx.AsyncClient, auth: TokenFactory, spans: InMemorySpanExporter
) -> None:
    """With a caller's traceparent: one server span, its child of the caller's span, and every
    stage (Generate, PostProcess and Account included) under it, in the caller's trace."""
    await client.post("/api/documents", headers=auth(), json=DOCS)
    spans.clear()
    r = await client.post(
        "/api/query", headers={**auth(), "traceparent": SAMPLED}, json={"query": "Leave?"}
    )
    assert r.status_code == 200
    finished = spans.get_finished_spans()
    mine = one_trace(finished, "0af7651916cd43dd8448eb211c80319c")
    assert len(mine) == len(finished)  # nothing outside the caller's trace
    (server,) = [s for s in mine if s.kind is SpanKind.SERVER]
    assert server.name == "POST /api/query"
    assert server.parent is not None and f"{server.parent.span_id:016x}" == "b7ad6b7169203331"
    names = [s.name for s in mine]
    for stage in STAGES:
        assert names.count(stage) == 1, (stage, names)


async def test_a_request_is_one_trace_under_one_server_span_without_a_traceparent(
    client: httpx.AsyncClient, auth: TokenFactory, spans: InMemorySpanExporter
) -> None:
    """Without a traceparent each request starts one trace of its own (X-Trace-ID), sampled
    at the configured ratio: a sampled one holds one server span, a root, with every stage
    under it, and no request leaves a second, orphan server span."""
    await client.post("/api/documents", headers=auth(), json=DOCS)
    await client.post("/api/query", headers=auth(), json={"query": "Leave?"})  # then cache hits
    spans.clear()
    sampled: list[str] = []
    for _ in range(400):  # at the default ratio of 0.1, none sampled in 400 has p < 1e-18
        r = await client.post("/api/query", headers=auth(), json={"query": "Leave?"})
        assert r.status_code == 200
        if spans.get_finished_spans():
            sampled.append(r.headers["x-trace-id"])
            break
    assert sampled, "no request was sampled"
    finished = spans.get_finished_spans()
    mine = one_trace(finished, sampled[0])
    assert len(mine) == len(finished)  # no orphan span in another trace
    (server,) = [s for s in mine if s.kind is SpanKind.SERVER]
    assert server.parent is None and server.name == "POST /api/query"
    assert {"stage.Validate", "stage.Embed", "stage.AnswerCache", "stage.Account"} <= {
        s.name for s in mine
    }


async def test_an_outer_asgi_instrumentation_span_is_the_requests_server_span(
    settings: Settings, services: Services, auth: TokenFactory, spans: InMemorySpanExporter
) -> None:
    """Served under an ASGI instrumentation (as `opentelemetry-instrument` wraps the app), the
    request keeps that layer's server span and trace: the app starts no second one."""
    tracer = trace.get_tracer("outer-instrumentation")
    app = create_app(settings, services)

    async def instrumented(scope: Scope, receive: Receive, send: Send) -> None:
        # stands in for opentelemetry-instrumentation-asgi's OpenTelemetryMiddleware
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        parent = extract_context(headers)
        with tracer.start_as_current_span("outer", context=parent, kind=SpanKind.SERVER):
            await app(scope, receive, send)

    transport = httpx.ASGITransport(app=instrumented)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        r = await http.get("/api/me", headers={**auth(), "traceparent": SAMPLED})
    assert r.status_code == 200
    finished = spans.get_finished_spans()
    (server,) = [s for s in finished if s.kind is SpanKind.SERVER]
    assert server.name == "GET /api/me"  # the outer span, named by our route template
    assert r.headers["x-trace-id"] == f"{server.context.trace_id:032x}"


async def test_log_lines_are_json_with_context_and_no_pii(
    client: httpx.AsyncClient, auth: TokenFactory, log_lines: io.StringIO
) -> None:
    """Request logs are JSON with request, tenant and trace ids; PII in any field is redacted."""
    await client.get("/api/me", headers={**auth(), "X-Request-ID": "req-abcdef12"})
    structlog.get_logger("tenantrag.test").info("note", contact="bob@example.com 555-867-5309")
    records = [json.loads(line) for line in log_lines.getvalue().splitlines() if line]
    request = next(r for r in records if r.get("event") == "request")
    for field in ("timestamp", "level", "logger", "event", "request_id", "tenant_id", "trace_id"):
        assert field in request, field
    assert request["request_id"] == "req-abcdef12" and request["tenant_id"] == "acme"
    note = next(r for r in records if r.get("event") == "note")
    assert "bob@example.com" not in note["contact"] and "[REDACTED_EMAIL]" in note["contact"]


@pytest.mark.usefixtures("clear_of_month_end")
async def test_cost_events_follow_the_seed_shape_and_reach_usage(
    client: httpx.AsyncClient, auth: TokenFactory, log_lines: io.StringIO
) -> None:
    """Queries log cost_event lines in the seed shape; /api/usage sums them by type."""
    await client.post("/api/documents", headers=auth(), json=DOCS)
    await client.post("/api/query", headers=auth(), json={"query": "How is leave requested?"})
    events = [
        json.loads(line) for line in log_lines.getvalue().splitlines() if '"cost_event"' in line
    ]
    types = {e["cost_type"] for e in events}
    assert {"retrieval", "llm_inference", "compute"} <= types
    for e in events:
        assert {"event", "tenant_id", "cost_type", "amount", "details"} <= set(e)
        assert e["tenant_id"] == "acme"
    usage = (await client.get("/api/usage", headers=auth())).json()
    assert usage["by_type"]["retrieval"]["amount_usd"] == pytest.approx(0.001)
    assert usage["by_type"]["llm_inference"]["tokens"] > 0
    assert usage["quotas"]["documents"] == {"limit": 100_000, "used": 2}
    other = (await client.get("/api/usage", headers=auth("globex"))).json()
    assert other["total"]["events"] == 0 or "llm_inference" not in other["by_type"]


async def test_usage_rejects_bad_dates(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    """Dates that are malformed, reversed or too far apart get 422."""
    for params in (
        {"from": "yesterday"},
        {"from": "2026-11-20", "to": "2026-11-01"},
        {"from": "2020-01-01", "to": "2026-01-01"},
    ):
        r = await client.get("/api/usage", headers=auth(), params=params)
        assert r.status_code == 422, params


@pytest.mark.usefixtures("clear_of_month_end")
async def test_monthly_token_budget_is_enforced(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Once the month's tokens pass the budget, queries get 429 quota_exceeded naming the reset."""
    await client.post("/api/documents", headers=auth(), json=DOCS)
    services.store.update_tenant("acme", monthly_token_budget=10)
    first = await client.post(
        "/api/query", headers=auth(), json={"query": "How is leave requested?"}
    )
    assert first.status_code == 200
    r = await client.post("/api/query", headers=auth(), json={"query": "What class for flights?"})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "quota_exceeded"
    assert "resets at" in r.json()["error"]["message"]
    assert int(r.headers["retry-after"]) > 0
    ok = await client.post("/api/query", headers=auth("globex"), json={"query": "leave?"})
    assert ok.status_code == 200


async def test_a_tenant_created_while_serving_has_its_alert_series_from_its_first_request(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """A tenant made after start-up (as by the CLI) is exported at zero once it is first seen."""
    from tenantrag.models import Tenant

    tenant = f"late-{uuid.uuid4().hex[:8]}"
    services.store.create_tenant(Tenant(id=tenant))
    series = f'tenantrag_cross_tenant_leakage_total{{tenant="{tenant}"}} 0.0'
    assert series not in (await client.get("/metrics")).text
    assert (await client.get("/api/me", headers=auth(tenant))).status_code == 200
    assert series in (await client.get("/metrics")).text


@pytest.mark.integration
async def test_metrics_expose_custom_series_and_pass_promtool(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """After traffic, /metrics carries the custom series and `promtool check metrics` accepts it."""
    await client.post("/api/documents", headers=auth(), json=DOCS)
    for _ in range(2):
        await client.post("/api/query", headers=auth(), json={"query": "How is leave requested?"})
    text = (await client.get("/metrics")).text
    for name in (
        "tenantrag_cost_usd_total",
        "tenantrag_tokens_total",
        "tenantrag_cache_requests_total",
        "tenantrag_retrieval_score_bucket",
        "tenantrag_quota_usage_ratio",
        "tenantrag_http_requests_in_flight",
    ):
        assert name in text, name
    assert 'tenantrag_cache_requests_total{cache="answers",result="hit"}' in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/install-tools.sh"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
