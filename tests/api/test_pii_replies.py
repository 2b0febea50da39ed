"""No raw personal value in any reply: titles, document ids, file names, metadata, citations.

Documents carry PII outside their text (an email as id, a phone number in the title and in the
uploaded file's name, an email, a card and a card-as-number in the metadata). Every reply that
shows them (search, query plain and streamed, /v1 chat plain and streamed, list, GET) must show
placeholders; each replacement is counted in tenantrag_pii_redactions_total. With an external
model, neither the question's PII nor the sources' fields reach it.
"""

from __future__ import annotations

import json

import httpx
from prometheus_client import REGISTRY
from tests.api.conftest import TokenFactory, build_services

from tenantrag.app import create_app
from tenantrag.backends import Embedder
from tenantrag.models import Classification
from tenantrag.services import Services
from tenantrag.settings import Settings
from tenantrag.testing import OpenAIStandIn, Reply

POLICY_ID = "staff-jane.doe@example.com"
RAW = [
    "jane.doe@example.com",
    "7946 0958",
    "bob.smith@example.org",
    "4111 1111 1111 1111",
    "4111111111111111",
    "555-0132",
    "pat.lee@example.net",
]


def redactions() -> float:
    """The redaction counter, every type together."""
    total = 0.0
    for kind in ("email", "phone", "credit_card", "ssn", "ip", "iban"):
        value = REGISTRY.get_sample_value("tenantrag_pii_redactions_total", {"type": kind})
        total += value or 0.0
    return total


async def load(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """One posted document and one uploaded file, with PII only around their text."""
    doc = {
        "id": POLICY_ID,
        "title": "Leave policy, questions to +44 20 7946 0958",
        "text": "Annual leave requests are approved by the line manager. "
        "Leave must be requested two weeks ahead of the first day.",
        "metadata": {
            "owner": "bob.smith@example.org",
            "card": "4111 1111 1111 1111",
            "card_number": 4111111111111111,
        },
    }
    r = await client.post("/api/documents", headers=headers, json={"documents": [doc]})
    assert r.status_code == 201, r.text
    files = {
        "file": (
            "call 415-555-0132.txt",
            b"Expense claims are submitted through the finance portal within thirty days.",
            "text/plain",
        )
    }
    r = await client.post("/api/documents/upload", headers=headers, files=files, data={"id": "exp"})
    assert r.status_code == 201, r.text


async def every_reply(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    """The text of every read reply over both documents."""
    bodies: list[str] = []
    questions = [
        "Who approves annual leave requests? My email is pat.lee@example.net",
        "How are expense claims submitted?",
    ]
    for q in questions:
        for mode in ("hybrid", "bm25", "vector"):
            r = await client.post(
                "/api/search", headers=headers, json={"query": q, "mode": mode, "top_k": 5}
            )
            assert r.status_code == 200, r.text
            assert r.json()["results"], "search found nothing: the test would prove nothing"
            bodies.append(r.text)
        for stream in (False, True):
            r = await client.post(
                "/api/query", headers=headers, json={"query": q, "stream": stream}
            )
            assert r.status_code == 200, r.text
            bodies.append(r.text)
            chat = {"model": "tenantrag", "messages": [{"role": "user", "content": q}]}
            r = await client.post(
                "/v1/chat/completions", headers=headers, json=chat | {"stream": stream}
            )
            assert r.status_code == 200, r.text
            bodies.append(r.text)
    listed = await client.get("/api/documents", headers=headers)
    assert listed.status_code == 200 and len(listed.json()["documents"]) == 2
    bodies.append(listed.text)
    for doc_id in (POLICY_ID, "exp"):
        r = await client.get(f"/api/documents/{doc_id}", headers=headers)
        assert r.status_code == 200, r.text
        bodies.append(r.text)
    return bodies


def assert_clean(bodies: list[str]) -> None:
    """No raw value in any body, and the placeholders are there (so something was redacted)."""
    for body in bodies:
        for raw in RAW:
            assert raw not in body, f"{raw!r} in a reply: {body[:400]}"
    joined = "\n".join(bodies)
    for placeholder in ("[REDACTED_EMAIL]", "[REDACTED_PHONE]", "[REDACTED_CREDIT_CARD]"):
        assert placeholder in joined


async def test_no_reply_shows_pii_from_titles_ids_file_names_or_metadata(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """The extractive answerer (local): every reply shows placeholders only."""
    headers = auth(clearance=Classification.RESTRICTED)
    await load(client, headers)
    before = redactions()
    bodies = await every_reply(client, headers)
    assert_clean(bodies)
    assert redactions() > before
    listed = json.loads(bodies[-3])["documents"]
    by_source = {d["source"]: d for d in listed}
    assert "call [REDACTED_PHONE].txt" in by_source
    policy = next(d for d in listed if d["id"] == "[REDACTED_EMAIL]")
    assert policy["metadata"] == {
        "owner": "[REDACTED_EMAIL]",
        "card": "[REDACTED_CREDIT_CARD]",
        "card_number": "[REDACTED_CREDIT_CARD]",
    }


async def test_a_document_list_counts_each_redaction(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """Listing the two documents counts exactly the values it replaced."""
    headers = auth(clearance=Classification.RESTRICTED)
    await load(client, headers)
    before = redactions()
    assert (await client.get("/api/documents", headers=headers)).status_code == 200
    # In the reply: id (email), title (phone), owner (email), card, card_number; the upload's
    # title and source (the file name's phone number, twice). In the audit record of the read:
    # the id (email) again.
    assert redactions() - before == 7 + 1


async def test_an_external_model_never_sees_the_questions_or_the_sources_pii(
    settings: Settings, services: Services, auth: TokenFactory, embedder: Embedder
) -> None:
    """The stand-in records what it was sent: placeholders only; its PII-laden reply is redacted."""
    leak = "Leave is approved by the line manager [1]. Ask jane.doe@example.com or 415-555-0132."
    with OpenAIStandIn(default=Reply(leak)) as standin:
        llm = settings.llm.model_copy(
            update={"provider": "openai", "base_url": standin.base_url, "model": "gpt-test"}
        )
        own = settings.model_copy(update={"llm": llm, "data_dir": settings.data_dir / "ext"})
        built = await build_services(own, embedder)
        built.store.create_tenant(services.store.get_tenant("acme"))  # type: ignore[arg-type]
        app = create_app(own, built)
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as c:
                headers = auth(clearance=Classification.RESTRICTED)
                await load(c, headers)
                bodies = await every_reply(c, headers)
        finally:
            await built.close()
        sent = json.dumps([r.body for r in standin.recorded])
    assert standin.requests > 0
    assert_clean(bodies)
    for raw in RAW:
        assert raw not in sent, f"{raw!r} was sent to the external model"
    assert "[REDACTED_EMAIL]" in sent  # the question's and the id's placeholders went instead


async def test_a_repeated_search_is_redacted_and_counted_again(
    client: httpx.AsyncClient, services: Services, auth: TokenFactory
) -> None:
    """The second search answers from the kept redactions (shared with /api/query's stage 4):
    the same placeholders, counted again; a query alone fills the same cache."""
    headers = auth(clearance=Classification.RESTRICTED)
    await load(client, headers)
    kept = services.searches.redactions
    r = await client.post("/api/query", headers=headers, json={"query": "Who approves leave?"})
    assert r.status_code == 200 and len(kept) > 0  # stage 4 wrote to the shared cache
    kept.forget_tenant("acme")
    ask = {"query": "Who approves annual leave requests?", "top_k": 5}
    before = redactions()
    first = await client.post("/api/search", headers=headers, json=ask)
    once = redactions() - before
    second = await client.post("/api/search", headers=headers, json=ask)
    assert first.status_code == second.status_code == 200
    assert first.json()["results"] == second.json()["results"]
    assert once > 0 and redactions() - before == 2 * once
    assert_clean([first.text, second.text])
    assert len(kept) > 0 and kept.tenants() == {"acme"}  # search's
