"""Tracing: sampling, W3C context, content-free attributes, OTLP/HTTP export, log correlation."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import structlog
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tenantrag.observability.tracing import (
    GEN_AI_REQUEST_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
    Tracing,
    add_trace_context,
    build_provider,
    current_span_id,
    current_trace_id,
    extract_context,
    gen_ai_attributes,
    safe_attributes,
)

SRC = Path(__file__).resolve().parents[3] / "src"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def traceparent(flags: str) -> dict[str, str]:
    """A W3C traceparent header with the given flags (01 sampled, 00 not)."""
    return {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-{flags}"}


def in_memory(
    ratio: float, *, record_content: bool = False
) -> tuple[Tracing, InMemorySpanExporter]:
    """A Tracing on its own provider whose finished spans land in memory."""
    exporter = InMemorySpanExporter()
    provider = build_provider("test", otlp_endpoint=None, sample_ratio=ratio, exporter=exporter)
    return Tracing(provider, record_content=record_content), exporter


class TestSampling:
    def test_spans_reach_the_exporter_with_their_attributes(self) -> None:
        """At ratio 1 every span is exported, nested spans share the trace id."""
        tracing, exporter = in_memory(1.0)
        with tracing.span("outer", {GEN_AI_REQUEST_MODEL: "gpt-x"}), tracing.span("inner", k=3):
            pass
        inner, outer = exporter.get_finished_spans()
        assert (inner.name, outer.name) == ("inner", "outer")
        assert outer.attributes == {GEN_AI_REQUEST_MODEL: "gpt-x"}
        assert inner.attributes == {"k": 3}
        assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
        assert inner.context.trace_id == outer.context.trace_id

    def test_ratio_zero_exports_nothing_but_still_gives_a_trace_id(self) -> None:
        """An unsampled root span records nothing, yet the request still has a trace id."""
        tracing, exporter = in_memory(0.0)
        with tracing.span("request") as span:
            assert not span.is_recording()
            trace_id, span_id = current_trace_id(), current_span_id()
        assert exporter.get_finished_spans() == ()
        assert trace_id is not None and len(trace_id) == 32 and int(trace_id, 16) != 0
        assert span_id is not None and len(span_id) == 16

    def test_children_of_an_unsampled_span_are_the_span_itself(self) -> None:
        """Inside an unsampled request a child span is not made: it would be dropped anyway.

        The request keeps its one trace and span id for logs; a sampled request still gets
        its children, and a root span is always started.
        """
        tracing, exporter = in_memory(0.0)
        with tracing.span("request") as request:
            with tracing.span("stage") as stage:
                assert stage is request
                inner_ids = current_trace_id(), current_span_id()
            ids = current_trace_id(), current_span_id()
        assert inner_ids == ids
        assert exporter.get_finished_spans() == ()
        parent = tracing.extract(traceparent("01"))
        with tracing.span("request", context=parent) as sampled, tracing.span("stage") as stage:
            assert stage is not sampled and stage.is_recording()
        assert [s.name for s in exporter.get_finished_spans()] == ["stage", "request"]

    def test_no_trace_id_outside_a_span(self) -> None:
        """With no current span there is no trace id to report."""
        assert current_trace_id() is None
        assert current_span_id() is None


class TestW3CTraceContext:
    def test_sampled_parent_is_recorded_even_at_ratio_zero(self) -> None:
        """ParentBased honours an incoming sampled flag and keeps the caller's trace id."""
        tracing, exporter = in_memory(0.0)
        with tracing.span("request", context=tracing.extract(traceparent("01"))):
            assert current_trace_id() == TRACE_ID
        (span,) = exporter.get_finished_spans()
        assert format(span.context.trace_id, "032x") == TRACE_ID
        assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID

    def test_unsampled_parent_is_not_recorded_at_ratio_one(self) -> None:
        """An incoming 00 flag wins over the local ratio, and the trace id is still kept."""
        tracing, exporter = in_memory(1.0)
        with tracing.span("request", context=tracing.extract(traceparent("00"))):
            assert current_trace_id() == TRACE_ID
        assert exporter.get_finished_spans() == ()

    def test_header_names_are_case_insensitive(self) -> None:
        """`Traceparent` as an HTTP stack may spell it is still honoured."""
        tracing, _ = in_memory(1.0)
        headers = {"Traceparent": traceparent("01")["traceparent"]}
        with tracing.span("request", context=extract_context(headers)):
            assert current_trace_id() == TRACE_ID

    def test_malformed_traceparent_starts_a_new_trace(self) -> None:
        """A garbage header is ignored: the span gets a fresh, valid trace id."""
        tracing, _ = in_memory(1.0)
        with tracing.span("request", context=tracing.extract({"traceparent": "00-zz-yy-01"})):
            trace_id = current_trace_id()
        assert trace_id is not None and trace_id != TRACE_ID

    def test_inject_writes_the_current_span_as_traceparent(self) -> None:
        """Outgoing calls carry the current trace id and span id in `traceparent`."""
        tracing, _ = in_memory(1.0)
        headers: dict[str, str] = {}
        with tracing.span("call"):
            tracing.inject(headers)
            expected = f"00-{current_trace_id()}-{current_span_id()}-"
        version_ids, flags = headers["traceparent"][:-2], int(headers["traceparent"][-2:], 16)
        assert version_ids == expected
        assert flags & 0x01  # sampled (the SDK may also set 0x02, "random trace id")


class TestContentFreeAttributes:
    def test_query_text_never_reaches_a_span_by_default(self) -> None:
        """Keys naming user text (query, prompt, answer, ...) are dropped; counts are kept."""
        tracing, exporter = in_memory(1.0)
        content = {
            "gen_ai.prompt": "my SSN is 123",
            "db.query.text": "SELECT",
            "user_question": "q",
        }
        with tracing.span("retrieve", content, query="alice@example.com", top_k=5) as live:
            tracing.set_attributes(live, {"answer": "secret", GEN_AI_USAGE_INPUT_TOKENS: 12})
        (span,) = exporter.get_finished_spans()
        assert span.attributes == {"top_k": 5, GEN_AI_USAGE_INPUT_TOKENS: 12}

    def test_record_content_flag_lets_text_through(self) -> None:
        """With record_content=True the query text is kept on the span."""
        tracing, exporter = in_memory(1.0, record_content=True)
        with tracing.span("retrieve", query="what is the refund policy"):
            pass
        (span,) = exporter.get_finished_spans()
        assert span.attributes == {"query": "what is the refund policy"}

    def test_safe_attributes_drops_values_otel_cannot_hold(self) -> None:
        """None, dicts and mixed lists are dropped; homogeneous lists become tuples."""
        kept = safe_attributes({"a": None, "b": {"x": 1}, "c": [1, "x"], "d": [1, 2], "e": 1.5})
        assert kept == {"d": (1, 2), "e": 1.5}

    def test_ids_and_counts_are_not_mistaken_for_content(self) -> None:
        """Keys such as document_id or gen_ai.usage.output_tokens pass the content filter."""
        kept = {"document_id": "d1", "tenant_id": "acme", "gen_ai.usage.output_tokens": 3}
        assert safe_attributes({**kept, "query_text": "x", "gen_ai.completion": "y"}) == kept

    def test_gen_ai_attributes_use_the_semantic_convention_names(self) -> None:
        """One model call is described with gen_ai.* keys, token counts only when known."""
        assert gen_ai_attributes(system="openai", model="m", input_tokens=7) == {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "m",
            "gen_ai.usage.input_tokens": 7,
        }

    def test_exceptions_are_recorded_and_mark_the_span_as_error(self) -> None:
        """An exception leaving the block is re-raised and recorded on the span."""
        tracing, exporter = in_memory(1.0)
        with pytest.raises(RuntimeError), tracing.span("boom"):
            raise RuntimeError("backend down")
        (span,) = exporter.get_finished_spans()
        assert span.status.status_code.name == "ERROR"
        assert span.events[0].name == "exception"


class TestLogCorrelation:
    def test_log_lines_carry_the_current_trace_and_span_ids(self) -> None:
        """Inside a span every log line has trace_id and span_id; outside it has neither."""
        out = io.StringIO()
        log = structlog.wrap_logger(
            structlog.PrintLogger(out),
            processors=[add_trace_context, structlog.processors.JSONRenderer()],
        )
        tracing, _ = in_memory(0.0)
        with tracing.span("request"):
            log.info("inside")
            trace_id, span_id = current_trace_id(), current_span_id()
        log.info("outside")
        inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
        assert (inside["trace_id"], inside["span_id"]) == (trace_id, span_id)
        assert "trace_id" not in outside and "span_id" not in outside


@dataclass
class Collector:
    """A tiny OTLP/HTTP receiver on 127.0.0.1 that decodes what it is sent."""

    url: str
    requests: list[tuple[str, str, ExportTraceServiceRequest]] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    hang: bool = False


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A receiver answering POST /v1/traces like an OpenTelemetry collector."""
    state = Collector(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest.FromString(body)
            state.requests.append((self.path, self.headers["Content-Type"], request))
            state.received.set()
            if state.hang:  # a collector that accepts and answers only when released
                state.release.wait(timeout=30)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


class TestOTLPExport:
    def test_spans_arrive_at_an_otlp_http_collector(self, collector: Collector) -> None:
        """The real OTLP/HTTP exporter posts protobuf to /v1/traces with the service name."""
        provider = build_provider("tenantrag-test", otlp_endpoint=collector.url, sample_ratio=1.0)
        tracing = Tracing(provider)
        with tracing.span("http.request", route="/api/query"):
            trace_id = current_trace_id()
        assert provider.force_flush(timeout_millis=10_000)
        provider.shutdown()
        ((path, content_type, request),) = collector.requests
        assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
        (resource_spans,) = request.resource_spans
        resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        assert resource["service.name"] == "tenantrag-test"
        (span,) = resource_spans.scope_spans[0].spans
        assert span.name == "http.request"
        assert span.trace_id.hex() == trace_id
        assert {a.key: a.value.string_value for a in span.attributes} == {"route": "/api/query"}

    def test_span_end_does_not_wait_for_a_hanging_collector(self, collector: Collector) -> None:
        """A span ends while an export to a collector that never answers is still in flight."""
        collector.hang = True
        provider = build_provider(
            "t", otlp_endpoint=collector.url, sample_ratio=1.0, export_timeout_s=30
        )
        tracing = Tracing(provider)
        with tracing.span("first"):
            pass
        flusher = threading.Thread(target=provider.force_flush)
        flusher.start()
        assert collector.received.wait(timeout=10)
        with tracing.span("second"):
            pass
        assert flusher.is_alive()  # "first" is still being exported, yet "second" has ended
        collector.release.set()
        flusher.join()
        provider.shutdown()
        assert collector.requests[0][2].resource_spans[0].scope_spans[0].spans[0].name == "first"

    def test_export_gives_up_on_a_hanging_collector(self, collector: Collector) -> None:
        """With a short export timeout, a flush returns while the collector still hangs."""
        collector.hang = True
        provider = build_provider(
            "t", otlp_endpoint=collector.url, sample_ratio=1.0, export_timeout_s=0.3
        )
        with Tracing(provider).span("lost"):
            pass
        flusher = threading.Thread(target=provider.force_flush)
        flusher.start()
        flusher.join(timeout=8)  # far above 0.3 s, far below the exporter's default 10 s
        assert not flusher.is_alive() and not collector.release.is_set()
        collector.release.set()
        provider.shutdown()


@pytest.mark.integration
def test_setup_tracing_installs_the_global_provider_once() -> None:
    """In a fresh process, setup_tracing makes module-level span() export; a second call
    returns a new provider but keeps the first one global."""
    script = """
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tenantrag.observability.tracing import setup_tracing, span
exporter = InMemorySpanExporter()
first = setup_tracing("svc", otlp_endpoint=None, sample_ratio=1.0, exporter=exporter)
with span("via.global", query="secret", top_k=2):
    pass
second = setup_tracing("svc", otlp_endpoint=None, sample_ratio=1.0)
print(trace.get_tracer_provider() is first, second is not first,
      [(s.name, dict(s.attributes)) for s in exporter.get_finished_spans()])
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC)},
    )
    assert result.stdout.strip() == "True True [('via.global', {'top_k': 2})]"


def test_build_provider_leaves_the_global_provider_alone() -> None:
    """Building a provider for a test or a worker never replaces OpenTelemetry's global one."""
    from opentelemetry import trace

    before = trace.get_tracer_provider()
    provider = build_provider("t", otlp_endpoint=None, sample_ratio=1.0)
    assert isinstance(provider, TracerProvider)
    assert trace.get_tracer_provider() is before
