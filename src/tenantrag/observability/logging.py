"""structlog JSON logging: a list of small processors, PII scrubbed last before rendering."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]


def _scrubber(on_redaction: Callable[[str, int], None] | None) -> Processor:
    from tenantrag.governance.pii import PiiScrubber

    return PiiScrubber(on_redaction=on_redaction)


def _trace_context() -> Processor:
    from tenantrag.observability.tracing import add_trace_context

    return add_trace_context


def configure_logging(
    level: str = "INFO",
    *,
    on_redaction: Callable[[str, int], None] | None = None,
    stream: Any = None,
) -> None:
    """Send JSON lines to stderr: timestamp, level, logger, event, request and tenant context.

    Every string field passes the PII scrubber, so no email, phone, SSN, IP or card number
    reaches a log line, whatever a caller logs.
    """
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _trace_context(),
    ]
    # Lines from the standard library (uvicorn, libraries) pass the same chain as ours.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _scrubber(on_redaction),
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
