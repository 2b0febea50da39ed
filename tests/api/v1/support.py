"""Helpers for the /v1 tests: a served app's address and clients, loading documents."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import openai
from tests.api.conftest import TokenFactory

from tenantrag.models import Permission

ALL = [p.value for p in Permission]


@dataclass(frozen=True)
class Live:
    """A served app: its root URL, and helpers to make SDK and plain HTTP clients for it."""

    url: str
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)  # closed at the end
    pools: list[openai.DefaultAsyncHttpxClient] = field(default_factory=list)  # closed too

    def sdk(self, token: str, **options: object) -> openai.AsyncOpenAI:
        """OpenAI's async client on our /v1, with `token` as its API key and no retries."""
        client = openai.AsyncOpenAI(
            base_url=f"{self.url}/v1",
            api_key=token,
            max_retries=0,
            timeout=60,
            **options,  # type: ignore[arg-type]  # default_headers and the like
        )
        self.clients.append(client)
        return client

    def pool(self) -> openai.DefaultAsyncHttpxClient:
        """An HTTP client for a library that builds its own SDK client (LangChain)."""
        pool = openai.DefaultAsyncHttpxClient()
        self.pools.append(pool)
        return pool

    async def close(self) -> None:
        """Close every client made here (their pooled sockets)."""
        for client in self.clients:
            await client.close()
        for pool in self.pools:
            await pool.aclose()

    def http(self) -> httpx.AsyncClient:
        """A plain client for the same server (loading documents, raw checks)."""
        return httpx.AsyncClient(base_url=self.url, timeout=60)


async def load(
    live: Live, auth: TokenFactory, docs: list[dict[str, object]], tenant: str = "acme"
) -> None:
    """Store `docs` in the tenant through /api/documents."""
    async with live.http() as http:
        r = await http.post("/api/documents", headers=auth(tenant), json={"documents": docs})
    assert r.status_code == 201, r.text
