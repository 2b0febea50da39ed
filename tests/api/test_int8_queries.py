"""Questions embedded by the int8 model (the default) against fp32 documents, end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from tests.api.conftest import TokenFactory, build_services

from tenantrag.app import create_app
from tenantrag.backends import Embedder
from tenantrag.models import Tenant
from tenantrag.settings import EmbeddingSettings, Settings

DOCS = {
    "documents": [
        {"id": "leave", "title": "Leave", "text": "Staff request annual leave in the HR portal."},
        {"id": "travel", "title": "Travel", "text": "Economy class is required for short flights."},
    ]
}


async def int8_client(settings: Settings, embedder: Embedder) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose questions go through the int8 model (documents stay fp32)."""
    int8 = settings.model_copy(update={"embedding": EmbeddingSettings(query_precision="int8")})
    services = await build_services(int8, embedder)
    services.store.create_tenant(Tenant(id="acme"))
    services.store.create_tenant(Tenant(id="globex"))
    assert services.query_embeddings.model_name == "all-MiniLM-L6-v2-int8"
    transport = httpx.ASGITransport(app=create_app(int8, services))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await services.close()


async def test_int8_questions_find_fp32_documents_and_stay_in_their_tenant(
    settings: Settings, embedder: Embedder, auth: TokenFactory
) -> None:
    """Search and query answer from the right document; another tenant sees none of it."""
    async for client in int8_client(settings, embedder):
        assert (await client.post("/api/documents", headers=auth(), json=DOCS)).status_code == 201
        found = await client.post(
            "/api/search", headers=auth(), json={"query": "How do I ask for holidays?"}
        )
        assert found.status_code == 200
        assert found.json()["results"][0]["document_id"] == "leave"
        answer = await client.post(
            "/api/query", headers=auth(), json={"query": "How do staff request annual leave?"}
        )
        assert answer.status_code == 200
        assert answer.json()["citations"][0]["document_id"] == "leave"
        other = await client.post(
            "/api/search", headers=auth("globex"), json={"query": "How do I ask for holidays?"}
        )
        assert other.status_code == 200 and other.json()["results"] == []
