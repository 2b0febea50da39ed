"""The HTTP protocol `tenantrag serve` runs: uvicorn's httptools one, its costs bounded.

uvicorn bounds an idle keep-alive connection (`timeout_keep_alive`) and nothing else: a client
that opens a connection and sends nothing, or trickles a request's headers a byte at a time
(slowloris), holds its connection, and a slot of the connection cap, for ever; and httptools
puts no limit on how large the headers may grow. This protocol adds, per connection:

- a header deadline (TENANTRAG_SERVER__HEADER_TIMEOUT_S): from the connection's opening, or from
  the first byte of each further request on it, to the end of that request's headers; past it
  the connection is closed;
- a header size limit (TENANTRAG_SERVER__MAX_HEADER_BYTES): past it, 431 and the connection is
  closed;
- the connection cap (TENANTRAG_SERVER__MAX_CONNECTIONS, the seed's 50 per pod) in place of
  uvicorn's `limit_concurrency`: the same rule (open connections and running requests), but
  the 503 carries Retry-After and the contract's JSON error body, and a pod serves exactly that
  many connections (uvicorn's own check counted the asking connection against itself).

docs/security.md, "Floods".
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from tenantrag.settings import ServerSettings, get_settings

log = structlog.get_logger("tenantrag.connections")
BUSY_RETRY_AFTER_S = 1


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


BUSY_BODY = _error_body("server_busy", "This server is at its connection limit; retry in a moment.")
TOO_LARGE = _error_body("headers_too_large", "The request line and headers are too large.")


async def _busy(scope: Any, receive: Any, send: Any) -> None:
    """The answer to a request over the connection cap: 503, Retry-After, the connection closed."""
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BUSY_BODY)).encode()),
                (b"retry-after", str(BUSY_RETRY_AFTER_S).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BUSY_BODY, "more_body": False})


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, a header size limit and the cap."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits: ServerSettings = get_settings().server
        self.max_connections = limits.max_connections
        self.header_timeout_s = limits.header_timeout_s
        self.max_header_bytes = limits.max_header_bytes
        self.limit_concurrency = None  # uvicorn's own check is replaced by on_headers_complete's
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Open the connection; its first request's headers must arrive within the deadline."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse `data`; bytes of headers still coming count against both limits."""
        before = self.cycle
        between_requests = before is None or before.response_complete
        super().data_received(data)
        if self.cycle is not before:  # a request's headers are complete
            self._disarm()
            self._header_bytes = 0
            return
        if not between_requests or self.transport.is_closing():
            return  # a body on its way: the headers' limits do not apply
        self._header_bytes += len(data)
        if self._header_bytes > self.max_header_bytes:
            self._disarm()
            self._refuse(431, "Request Header Fields Too Large", TOO_LARGE)
        elif self._header_deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        """Start the request, or answer 503 when the process is at its connection cap."""
        # `connections` holds this one too: the cap's own connection is served, the next is not.
        busy = (
            len(self.connections) > self.max_connections or len(self.tasks) >= self.max_connections
        )
        if not busy:
            super().on_headers_complete()
            return
        log.warning("connection_cap_reached", max_connections=self.max_connections)
        app, self.app = self.app, _busy
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        """The deadline passed with the headers incomplete: close (the slowloris case)."""
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served: its headers came in time
        log.info("header_timeout", header_timeout_s=self.header_timeout_s)
        self.transport.close()

    def _refuse(self, status: int, reason: str, body: bytes) -> None:
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.transport.close()
