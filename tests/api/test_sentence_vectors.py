"""Sentence vectors stored at ingestion, read back by the answerer for the caller's tenant only.

Ingestion embeds each chunk's sentences once (migration 0007); /api/query's answerer then
weighs every sentence of its passages by meaning without embedding any while the question
waits (docs/benchmarks.md, "Wall-time ratios").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx
import numpy as np
import pytest
from tests.api.conftest import TokenFactory, build_services
from tests.api.test_query import HANDBOOK, ask, load

from tenantrag.app import create_app
from tenantrag.backends import Embedder
from tenantrag.backends.llm import extractive
from tenantrag.backends.llm.extractive import sentence_texts
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import Tenant
from tenantrag.services import Services
from tenantrag.settings import EmbeddingSettings, Settings
from tenantrag.testing import Fail, OpenAIStandIn

Read = tuple[str, list[int], dict[int, np.ndarray]]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Read]:
    """Every sentence-vector read the store answers: (tenant, rowids asked, rows returned)."""
    seen: list[Read] = []
    original = SQLiteStore.sentence_vectors

    def spy(self: SQLiteStore, tenant_id: str, rowids: Sequence[int]) -> dict[int, np.ndarray]:
        got = original(self, tenant_id, rowids)
        seen.append((tenant_id, list(rowids), got))
        return got

    monkeypatch.setattr(SQLiteStore, "sentence_vectors", spy)
    return seen


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """The sentences the answerer embedded while a question waited (its live cache's keys)."""
    put: list[tuple[str, str, str]] = []
    original = extractive._VectorCache.put

    def spy(self: extractive._VectorCache, key: tuple[str, str, str], vector: np.ndarray) -> None:
        put.append(key)
        original(self, key, vector)

    monkeypatch.setattr(extractive._VectorCache, "put", spy)
    return put


async def served(settings: Settings, embedder: Embedder) -> AsyncIterator[httpx.AsyncClient]:
    services = await build_services(settings, embedder)
    for tenant in ("acme", "globex"):
        services.store.create_tenant(Tenant(id=tenant))
    app = create_app(settings, services)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            http.services = services  # type: ignore[attr-defined]
            yield http
    finally:
        await services.close()


@pytest.fixture
async def client(
    settings: Settings, embedder: Embedder, reads: list[Read]
) -> AsyncIterator[httpx.AsyncClient]:
    async for http in served(settings, embedder):
        yield http


def stored_rows(services: Services, tenant: str) -> dict[int, tuple[str, int]]:
    """{rowid: (chunk text, number of stored sentence rows)} for the tenant's chunks."""
    db = services.store._conn()  # type: ignore[attr-defined]
    rows = db.execute(
        "SELECT rowid, text, sentences FROM chunks WHERE tenant_id = ?", (tenant,)
    ).fetchall()
    out = {}
    for rowid, text, blob in rows:
        count = int(np.frombuffer(bytes(blob[:2]), dtype="<u2")[0]) if blob else 0
        out[int(rowid)] = (str(text), count)
    return out


async def test_ingestion_stores_one_row_per_sentence(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    await load(client, auth(), HANDBOOK)
    chunks = stored_rows(client.services, "acme")  # type: ignore[attr-defined]
    assert len(chunks) == len(HANDBOOK)
    for text, count in chunks.values():
        assert count == len(sentence_texts(text)) > 0


async def test_a_query_embeds_no_sentence_and_reads_its_own_tenant_only(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    reads: list[Read],
    live: list[tuple[str, str, str]],
) -> None:
    """acme's answer weighs its sentences by their stored vectors (none embedded now); globex,
    holding a same-named document, reads its own rows and gets its own answer."""
    await load(client, auth(), HANDBOOK)
    await load(client, auth("globex"), [{"id": "leave", "text": "Globex leave is unlimited."}])
    services: Services = client.services  # type: ignore[attr-defined]
    acme, globex = stored_rows(services, "acme"), stored_rows(services, "globex")
    r = await ask(client, auth(), "How do staff request annual leave?")
    assert r.status_code == 200 and "HR portal" in r.json()["answer"]
    assert live == []
    (tenant, asked, got), *_ = reads
    assert tenant == "acme" and set(asked) <= set(acme) and got and set(got) <= set(acme)
    reads.clear()
    r = await ask(client, auth("globex"), "How do staff request annual leave?")
    assert r.status_code == 200 and "HR portal" not in r.text
    assert all(t == "globex" and set(g) <= set(globex) for t, _, g in reads)


async def test_with_the_option_off_the_answerer_embeds_its_shortlist_as_before(
    settings: Settings,
    embedder: Embedder,
    auth: TokenFactory,
    live: list[tuple[str, str, str]],
) -> None:
    """TENANTRAG_EMBEDDING__SENTENCE_VECTORS=false: nothing stored, the best few embedded live."""
    off = settings.model_copy(update={"embedding": EmbeddingSettings(sentence_vectors=False)})
    async for http in served(off, embedder):
        await load(http, auth(), HANDBOOK)
        assert {n for _, n in stored_rows(http.services, "acme").values()} == {0}  # type: ignore[attr-defined]
        r = await ask(http, auth(), "How do staff request annual leave?")
        assert r.status_code == 200 and "HR portal" in r.json()["answer"]
        assert live and {key[0] for key in live} == {"acme"}


async def test_an_external_models_offline_fallback_answers_from_the_stored_rows(
    settings: Settings,
    embedder: Embedder,
    auth: TokenFactory,
    reads: list[Read],
    live: list[tuple[str, str, str]],
) -> None:
    """The model fails (the OpenAI stand-in answers 500, for a model we cannot run here): the
    extractive fallback answers from the passages' stored rows, embedding no sentence."""
    with OpenAIStandIn(default=Fail(500)) as standin:
        llm = settings.llm.model_copy(
            update={
                "provider": "openai",
                "base_url": standin.base_url,
                "model": "gpt-test",
                "max_attempts": 1,
            }
        )
        async for http in served(settings.model_copy(update={"llm": llm}), embedder):
            await load(http, auth(), HANDBOOK)
            r = await ask(http, auth(), "How do staff request annual leave?")
            assert r.status_code == 200 and r.json()["degraded"] is True
            assert "HR portal" in r.json()["answer"]
    assert standin.requests >= 1
    assert live == []
    assert reads and all(tenant == "acme" and got for tenant, _, got in reads)
