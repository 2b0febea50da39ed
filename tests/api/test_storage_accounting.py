"""The storage quota counts what is stored: text, metadata copied into every chunk, embeddings."""

from __future__ import annotations

import json

import httpx
from tests.api.conftest import TokenFactory

from tenantrag.services import Services

META = {f"field{i}": "v" * 900 for i in range(40)}  # ~37 KB of JSON, copied into every chunk
TEXT = " ".join(f"Sentence {i} of the long report about quarterly numbers." for i in range(400))


async def test_usage_counts_metadata_per_chunk_and_embeddings(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """A document's counted bytes cover its metadata once per chunk, a vector per chunk and
    its sentences' vectors; the other tenant's usage stays zero."""
    body = {"documents": [{"id": "report", "text": TEXT, "metadata": META}]}
    r = await client.post("/api/documents", headers=auth(), json=body)
    assert r.status_code == 201, r.text
    chunks = r.json()["documents"][0]["chunks"]
    assert chunks > 5
    meta_bytes = len(json.dumps(META))
    sentences = (
        services.store._conn()
        .execute(  # type: ignore[attr-defined]
            "SELECT SUM(LENGTH(sentences)) FROM chunks WHERE tenant_id = 'acme'"
        )
        .fetchone()[0]
    )
    assert sentences >= chunks * (4 + 384)  # at least one sentence a chunk
    floor = len(TEXT) + (chunks + 1) * meta_bytes + chunks * 384 * 4 + sentences
    doc = (await client.get("/api/documents/report", headers=auth())).json()
    assert floor <= doc["bytes"] < floor * 1.2
    usage = (await client.get("/api/usage", headers=auth())).json()
    assert usage["quotas"]["storage_bytes"]["used"] == doc["bytes"]
    other = (await client.get("/api/usage", headers=auth("globex"))).json()
    assert other["quotas"]["storage_bytes"]["used"] == 0
    assert services.store.usage("acme").bytes == doc["bytes"]


async def test_metadata_alone_can_exhaust_the_storage_quota(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """A short text with large metadata over many chunks is refused by the storage quota."""
    services.store.update_tenant("acme", storage_quota_bytes=200_000)
    body = {"documents": [{"id": "report", "text": TEXT, "metadata": META}]}
    r = await client.post("/api/documents", headers=auth(), json=body)
    assert len(TEXT) < 200_000
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "quota_exceeded"
    assert services.store.usage("acme").documents == 0
