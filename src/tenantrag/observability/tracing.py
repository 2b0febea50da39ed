"""OpenTelemetry tracing: provider setup, W3C trace context, content-free span attributes.

Nothing here touches OpenTelemetry's globals at import time. `setup_tracing` installs the
provider once per process; tests build a `Tracing` around their own provider instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from structlog.typing import EventDict, WrappedLogger

TRACER_NAME: Final = "tenantrag"
# A dead collector must never hold up a request: exports run on the batch processor's thread
# and give up after this long (the exporter's retries share the same deadline).
EXPORT_TIMEOUT_S: Final = 2.0

# GenAI semantic conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/).
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"

# A key holding any of these words (split on `.`, `_`, `-`) may carry user text, hence PII.
CONTENT_WORDS: Final = frozenset(
    {
        "query",
        "text",
        "prompt",
        "question",
        "answer",
        "completion",
        "content",
        "message",
        "messages",
        "snippet",
        "instructions",
    }
)
_KEY_WORDS = re.compile(r"[._\-]")


def is_content_key(key: str) -> bool:
    """True when an attribute named `key` could carry user text."""
    return any(word in CONTENT_WORDS for word in _KEY_WORDS.split(key.lower()))


_SCALARS = (str, bool, int, float)


def _attribute_value(value: object) -> AttributeValue | None:
    """`value` as an OTel attribute value, or None when it is not one (None, dict, object)."""
    if isinstance(value, _SCALARS):
        return value
    # OTel takes homogeneous sequences only; a mixed one would be dropped with a warning.
    if isinstance(value, list | tuple) and len(kinds := {type(item) for item in value}) <= 1:
        return tuple(value) if kinds <= set(_SCALARS) else None
    return None


def safe_attributes(
    attributes: Mapping[str, object], *, record_content: bool = False
) -> dict[str, AttributeValue]:
    """The attributes fit for a span: valid OTel values, and no content keys unless allowed."""
    safe: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if not record_content and is_content_key(key):
            continue
        converted = _attribute_value(value)
        if converted is not None:
            safe[key] = converted
    return safe


def gen_ai_attributes(
    *,
    system: str,
    model: str,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
) -> dict[str, AttributeValue]:
    """GenAI semantic-convention attributes for one model call."""
    attributes: dict[str, AttributeValue] = {GEN_AI_SYSTEM: system, GEN_AI_REQUEST_MODEL: model}
    if input_tokens is not None:
        attributes[GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
    if output_tokens is not None:
        attributes[GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
    return attributes


def build_provider(
    service_name: str,
    *,
    otlp_endpoint: str | None,
    sample_ratio: float,
    exporter: SpanExporter | None = None,
    export_timeout_s: float = EXPORT_TIMEOUT_S,
) -> TracerProvider:
    """A TracerProvider sampling ParentBased(TraceIdRatioBased(ratio)), touching no globals.

    A given `exporter` is wired synchronously (tests read spans right after they end); an
    `otlp_endpoint` such as http://jaeger:4318/v1/traces gets a batching OTLP/HTTP exporter.
    With neither, spans are still created (so requests get trace ids) but go nowhere.
    """
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        resource=Resource.create({SERVICE_NAME: service_name}),
    )
    processor: SpanProcessor | None = None
    if exporter is not None:
        processor = SimpleSpanProcessor(exporter)
    elif otlp_endpoint:
        otlp = OTLPSpanExporter(endpoint=otlp_endpoint, timeout=export_timeout_s)
        processor = BatchSpanProcessor(otlp, export_timeout_millis=export_timeout_s * 1000)
    if processor is not None:
        provider.add_span_processor(processor)
    return provider


def setup_tracing(
    service_name: str,
    *,
    otlp_endpoint: str | None,
    sample_ratio: float = 0.1,
    exporter: SpanExporter | None = None,
    record_content: bool = False,
) -> TracerProvider:
    """Build a provider and make it the process's global one, if none was installed yet.

    OpenTelemetry allows one global provider per process; a second call still returns a fresh
    provider (usable through `Tracing(provider)`) but leaves the global one in place.
    """
    provider = build_provider(
        service_name, otlp_endpoint=otlp_endpoint, sample_ratio=sample_ratio, exporter=exporter
    )
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    _DEFAULT.record_content = record_content
    return provider


class Tracing:
    """A tracer, the W3C propagator and the content rule, passed around instead of globals."""

    def __init__(
        self,
        provider: trace.TracerProvider | None = None,
        *,
        record_content: bool = False,
    ) -> None:
        # Without a provider the global one is used, through OTel's proxy: a tracer taken
        # before `setup_tracing` still delegates to the provider installed later.
        self.tracer = (provider or trace.get_tracer_provider()).get_tracer(TRACER_NAME)
        self.propagator = TraceContextTextMapPropagator()
        self.record_content = record_content

    @contextmanager
    def span(
        self,
        name: str,
        attributes: Mapping[str, object] | None = None,
        /,
        *,
        context: Context | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        **more: object,
    ) -> Iterator[trace.Span]:
        """Start a span as the current one; attributes pass through `safe_attributes`.

        Dotted names go in `attributes`; plain names may be keywords. An exception leaving
        the block is recorded on the span and sets its status to error.

        Inside a request that was not sampled this yields the request's own (non-recording)
        span and starts nothing: our sampler is ParentBased, so a child of an unsampled span
        is dropped anyway, and making one for nothing cost microseconds a time, a dozen
        times per query.
        """
        if context is None:
            current = trace.get_current_span()
            parent = current.get_span_context()
            if parent.is_valid and not parent.trace_flags.sampled and not current.is_recording():
                yield current
                return
        merged = {**(attributes or {}), **more}
        with self.tracer.start_as_current_span(
            name,
            context=context,
            kind=kind,
            attributes=safe_attributes(merged, record_content=self.record_content),
        ) as current:
            yield current

    def set_attributes(self, span: trace.Span, attributes: Mapping[str, object]) -> None:
        """Add attributes known only after a span started (token counts), filtered alike."""
        span.set_attributes(safe_attributes(attributes, record_content=self.record_content))

    def extract(self, headers: Mapping[str, str]) -> Context:
        """The parent context carried by `traceparent`/`tracestate` (header names any case)."""
        carrier = {key.lower(): value for key, value in headers.items()}
        return self.propagator.extract(carrier)

    def inject(self, headers: MutableMapping[str, str], context: Context | None = None) -> None:
        """Write the current (or given) span's `traceparent`/`tracestate` into `headers`."""
        self.propagator.inject(headers, context=context)


_DEFAULT = Tracing()


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, object] | None = None,
    /,
    *,
    context: Context | None = None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    **more: object,
) -> Iterator[trace.Span]:
    """`Tracing.span` on the process's global provider (see `setup_tracing`)."""
    with _DEFAULT.span(name, attributes, context=context, kind=kind, **more) as current:
        yield current


def extract_context(headers: Mapping[str, str]) -> Context:
    """The parent context from W3C `traceparent`/`tracestate` headers (empty if absent/bad)."""
    return _DEFAULT.extract(headers)


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, sampled or not; None outside any span."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


def current_span_id() -> str | None:
    """The current span id as 16 hex digits; None outside any span."""
    context = trace.get_current_span().get_span_context()
    return trace.format_span_id(context.span_id) if context.is_valid else None


def add_trace_context(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Structlog processor: add `trace_id` and `span_id` while a span is current."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", trace.format_trace_id(context.trace_id))
        event_dict.setdefault("span_id", trace.format_span_id(context.span_id))
    return event_dict
