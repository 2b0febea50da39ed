"""X-Request-ID and the W3C trace context: read or made, bound to logs, returned on the response."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantrag.governance.pii import find_pii
from tenantrag.models import RequestIds
from tenantrag.observability.tracing import extract_context

WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{8,128}")


class RequestIdMiddleware:
    """Keeps a well-formed incoming X-Request-ID (else makes one) and opens the request span.

    An incoming id that holds personal data (a phone number, an IP address) is replaced too:
    request ids go unredacted into audit records, logs and answers, and feedback names one.
    """

    def __init__(self, app: ASGIApp, *, tracer: trace.Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        kept = WELL_FORMED.fullmatch(incoming) is not None and not find_pii(incoming)
        request_id = incoming if kept else uuid.uuid4().hex
        with self._server_span(scope, headers) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            scope.setdefault("state", {})["request_id"] = request_id
            scope["state"]["trace_id"] = trace_id
            ids = [(b"x-request-id", request_id.encode()), (b"x-trace-id", trace_id.encode())]

            async def send_with_ids(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = list(message.get("headers", [])) + ids
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            try:
                with structlog.contextvars.bound_contextvars(
                    request_id=request_id, trace_id=trace_id
                ):
                    await self.app(scope, receive, send_with_ids)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    span.update_name(f"{scope['method']} {route}")
                    span.set_attribute("http.route", route)

    @contextmanager
    def _server_span(self, scope: Scope, headers: dict[str, str]) -> Iterator[trace.Span]:
        """The request's one server span: the caller's `traceparent` continued, or a new trace.

        When a span is already current, an outer layer (an ASGI instrumentation wrapping the
        server) traces this request: its span is the request's span, and no second server
        span is started. Otherwise an absent or malformed `traceparent` starts a new trace.
        """
        current = trace.get_current_span()
        if current.get_span_context().is_valid:
            yield current
            return
        token = otel_context.attach(extract_context(headers))
        try:
            with self.tracer.start_as_current_span(
                scope["method"],  # renamed to "METHOD /route/template" once routing is done
                kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": scope["method"]},
            ) as span:
                yield span
        finally:
            otel_context.detach(token)


def ids_of(scope: Scope) -> RequestIds:
    """The request and trace ids this middleware gave the request in `scope`."""
    state = scope.get("state", {})
    return RequestIds(state.get("request_id"), state.get("trace_id"))
