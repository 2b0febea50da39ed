"""Holds `QueryPriority` while a search or query is answered, so ingestion workers step aside."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from tenantrag.backends.priority import QueryPriority

# The paths whose answers a user waits for: a worker in this process yields to them.
QUERY_PATHS = frozenset({"/api/search", "/api/query", "/v1/chat/completions", "/v1/embeddings"})


class QueryPriorityMiddleware:
    """Marks the request as a query for its whole life (a streamed answer included)."""

    def __init__(self, app: ASGIApp, *, priority: QueryPriority) -> None:
        self.app = app
        self.priority = priority

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in QUERY_PATHS:
            await self.app(scope, receive, send)
            return
        with self.priority.query():
            await self.app(scope, receive, send)
