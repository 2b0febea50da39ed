"""Clearance end to end through /api/search and /api/query, each layer also on its own.

The crowd: twenty restricted documents that match the question better than anything else (same
words, nearly the same meaning) and one public document that matches it less well. A public-
cleared caller asking for the top 3 must get the public document, and a reply equal to the one a
tenant holding only the public document gives (globex is that control).

Three layers keep restricted chunks out: the indexes' ceiling (before ranking), the retriever's
re-check after the store read (`retrieval.retriever.admitted`), and, for /api/query, the Govern
stage. With all three on, a regression in one is hidden by the next, so each test below turns
the others off (or replaces the indexes with ones that ignore the ceiling) and checks that the
remaining layer alone keeps every restricted chunk out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.api.conftest import TokenFactory
from tests.clearance_fakes import CeilingIgnoringKeyword, CeilingIgnoringVector

from tenantrag.models import Classification
from tenantrag.pipeline.context import QueryContext
from tenantrag.pipeline.govern import Govern
from tenantrag.services import Services

PUBLIC, RESTRICTED = Classification.PUBLIC, Classification.RESTRICTED
QUESTION = "What is the engineering budget forecast for next quarter?"
CANARY = "falcon-canary"
CROWD = [
    {
        "id": f"r{i:02d}",
        "title": "Engineering budget forecast",
        "text": f"The engineering budget forecast for next quarter is {CANARY} figure {i} million.",
        "classification": "restricted",
    }
    for i in range(20)
]
PUBLIC_DOC = {
    "id": "p",
    "title": "Cafeteria",
    "text": "The cafeteria budget is set each quarter; engineering forecasts are published later.",
    "classification": "public",
}
MODES = ["bm25", "vector", "hybrid"]


@pytest.fixture
async def crowd(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    """acme: the restricted crowd and the public document; globex: the public document only."""
    for tenant, docs in (("acme", [*CROWD, PUBLIC_DOC]), ("globex", [PUBLIC_DOC])):
        r = await client.post(
            "/api/documents",
            headers=auth(tenant, clearance=RESTRICTED),
            json={"documents": docs},
        )
        assert r.status_code == 201, r.text


def reader(auth: TokenFactory, tenant: str = "acme") -> dict[str, str]:
    return auth(tenant, clearance=PUBLIC, permissions=["query"], user="reader")


async def search(
    client: httpx.AsyncClient, headers: dict[str, str], mode: str
) -> list[dict[str, Any]]:
    body = {"query": QUESTION, "top_k": 3, "mode": mode}
    r = await client.post("/api/search", headers=headers, json=body)
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


async def query(client: httpx.AsyncClient, headers: dict[str, str], mode: str) -> dict[str, Any]:
    body = {"query": QUESTION, "top_k": 3, "mode": mode}
    r = await client.post("/api/query", headers=headers, json=body)
    assert r.status_code == 200, r.text
    reply: dict[str, Any] = r.json()
    return reply


def without_bm25_scores(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results minus what BM25 statistics decide (compared on their own below, so a failure says
    which of the two differs)."""
    return [{**r, "score": None, "scores": {**r["scores"], "bm25": None}} for r in results]


def answer_view(reply: dict[str, Any]) -> dict[str, Any]:
    """What a reply shows of the sources: everything but scores, timings, trace and bill."""
    return {
        "answer": reply["answer"],
        "citations": [{**c, "score": None} for c in reply["citations"]],
        "classification": reply["classification"],
        "flags": reply["flags"],
        "usage": reply["usage"],
        "cost_types": sorted(i["cost_type"] for i in reply["cost"]["items"]),
    }


def assert_clean(payload: object) -> None:
    """No restricted document, text or label anywhere in a reply."""
    text = json.dumps(payload)
    assert CANARY not in text
    assert '"restricted"' not in text
    assert not any(f'"r{i:02d}' in text for i in range(20))


# -- all layers on: the crowd cannot push the public document out ------------------------------


@pytest.mark.usefixtures("crowd")
@pytest.mark.parametrize("mode", MODES)
async def test_search_keeps_the_public_document_in_a_restricted_crowd(
    client: httpx.AsyncClient, auth: TokenFactory, mode: str
) -> None:
    """/api/search top 3 at public clearance: the public chunk, as the control tenant sees it."""
    results = await search(client, reader(auth), mode)
    assert [r["document_id"] for r in results] == ["p"]
    assert_clean(results)
    control = await search(client, reader(auth, "globex"), mode)
    assert without_bm25_scores(results) == without_bm25_scores(control)
    if mode == "vector":
        assert results == control  # cosine scores depend on the two vectors alone
    boss = await search(client, auth(clearance=RESTRICTED), mode)
    assert len(boss) == 3 and all(r["classification"] == "restricted" for r in boss)


@pytest.mark.usefixtures("crowd")
@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
async def test_search_scores_equal_the_control_tenants(
    client: httpx.AsyncClient, auth: TokenFactory, mode: str
) -> None:
    """Every score, BM25 included, is the one a tenant without the crowd gets."""
    results = await search(client, reader(auth), mode)
    assert results == await search(client, reader(auth, "globex"), mode)


@pytest.mark.usefixtures("crowd")
@pytest.mark.parametrize("mode", MODES)
async def test_query_answers_from_the_public_document_only(
    client: httpx.AsyncClient, auth: TokenFactory, mode: str
) -> None:
    """/api/query top 3 at public clearance: answer, citations, label, flags and usage are the
    control tenant's, cached or not."""
    reply = await query(client, reader(auth), mode)
    assert [c["document_id"] for c in reply["citations"]] == ["p"]
    assert reply["classification"] == "public"
    assert_clean(reply)
    control = await query(client, reader(auth, "globex"), mode)
    assert answer_view(reply) == answer_view(control)
    again = await query(client, reader(auth), mode)
    assert again["cached"] is True and again["answer"] == reply["answer"]
    assert_clean(again)


# -- one layer at a time -----------------------------------------------------------------------

Patch = Callable[[], None]


@pytest.fixture
def without_recheck(monkeypatch: pytest.MonkeyPatch) -> Patch:
    """Turn off the retriever's re-check: every fetched chunk is admitted."""

    def apply() -> None:
        monkeypatch.setattr(
            "tenantrag.retrieval.retriever.admitted", lambda chunk, principal, hook: True
        )

    return apply


@pytest.fixture
def without_govern(monkeypatch: pytest.MonkeyPatch) -> Patch:
    """Turn off the Govern stage: hits pass through untouched."""

    def apply() -> None:
        async def passthrough(self: Govern, ctx: QueryContext) -> QueryContext:
            return ctx

        monkeypatch.setattr(Govern, "__call__", passthrough)

    return apply


@pytest.fixture
def without_index_ceiling(services: Services) -> Patch:
    """Replace both indexes with ones that ignore the ceiling (a stand-in for an index bug)."""

    def apply() -> None:
        retriever = services.retriever
        retriever.keyword = CeilingIgnoringKeyword(retriever.keyword)  # type: ignore[assignment]
        retriever.vector = CeilingIgnoringVector(retriever.vector)  # type: ignore[assignment]

    return apply


async def both(
    client: httpx.AsyncClient, headers: dict[str, str], mode: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return await search(client, headers, mode), await query(client, headers, mode)


@pytest.mark.usefixtures("crowd")
@pytest.mark.parametrize("mode", MODES)
async def test_the_index_ceiling_alone_keeps_the_crowd_out(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    without_recheck: Patch,
    without_govern: Patch,
    mode: str,
) -> None:
    """Re-check and Govern off: the indexes alone return the public document and nothing else."""
    without_recheck()
    without_govern()
    results, reply = await both(client, reader(auth), mode)
    assert [r["document_id"] for r in results] == ["p"]
    assert [c["document_id"] for c in reply["citations"]] == ["p"]
    assert_clean([results, reply])


@pytest.mark.usefixtures("crowd")
@pytest.mark.parametrize("mode", MODES)
async def test_the_retriever_recheck_alone_keeps_the_crowd_out(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    without_index_ceiling: Patch,
    without_govern: Patch,
    mode: str,
) -> None:
    """Indexes ignoring the ceiling and Govern off: the re-check alone lets nothing restricted out
    of /api/search or /api/query."""
    without_index_ceiling()
    without_govern()
    results, reply = await both(client, reader(auth), mode)
    assert_clean([results, reply])
    assert reply["classification"] == "public"


@pytest.mark.usefixtures("crowd")
@pytest.mark.parametrize("mode", MODES)
async def test_the_govern_stage_alone_keeps_the_crowd_out_of_answers(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    without_index_ceiling: Patch,
    without_recheck: Patch,
    mode: str,
) -> None:
    """Indexes ignoring the ceiling and the re-check off: Govern alone keeps /api/query clean
    (/api/search has no Govern stage; its two layers are the ones above)."""
    without_index_ceiling()
    without_recheck()
    reply = await query(client, reader(auth), mode)
    assert_clean(reply)
    assert reply["classification"] == "public"


@pytest.mark.usefixtures("crowd")
async def test_the_bypasses_do_bypass(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    without_index_ceiling: Patch,
    without_recheck: Patch,
    without_govern: Patch,
) -> None:
    """With all three layers off the crowd does come out: the tests above test something."""
    without_index_ceiling()
    without_recheck()
    without_govern()
    results, reply = await both(client, reader(auth), "hybrid")
    assert any(r["classification"] == "restricted" for r in results)
    assert CANARY in json.dumps(reply)
