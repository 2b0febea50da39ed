"""The language model failing (500, 429, hanging): degraded answers, a breaker, recovery."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from tests.api.conftest import TokenFactory
from tests.faults.conftest import BREAKER_RESET_S, BREAKER_THRESHOLD, LLM_ATTEMPTS

from tenantrag.testing import CHAT_PATH, Behaviour, Fail, Hang, OpenAIStandIn, Reply

HANDBOOK = [
    {
        "id": "leave",
        "title": "Leave",
        "text": "Staff request annual leave in the HR portal. "
        "Managers approve leave requests within two days.",
    },
    {
        "id": "travel",
        "title": "Travel",
        "text": "Book travel through the agency. Economy class "
        "is required for flights under six hours.",
    },
]
QUESTIONS = [
    "How do staff request annual leave?",
    "Who approves leave requests?",
    "How is travel booked?",
    "Which class is required for short flights?",
    "How quickly are leave requests approved?",
    "Where is annual leave requested?",
    "What class must staff fly under six hours?",
    "Through whom is travel booked?",
]
FAULTS: dict[str, Behaviour] = {"500": Fail(500), "429": Fail(429), "hang": Hang(3.0)}
RECOVERED = "Leave is requested in the HR portal [1]."


def chat_calls(api: OpenAIStandIn) -> int:
    """Chat completion requests the stand-in has received."""
    return sum(1 for r in list(api.recorded) if r.path == CHAT_PATH)


async def ask(http: httpx.AsyncClient, headers: dict[str, str], question: str) -> dict[str, object]:
    """POST /api/query; the body, after checking the status is 200."""
    r = await http.post("/api/query", headers=headers, json={"query": question})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_failing_model_degrades_then_breaker_opens_then_closes(
    fault: Behaviour, llm_client: httpx.AsyncClient, auth: TokenFactory, standin: OpenAIStandIn
) -> None:
    """Five failed requests give degraded 200s and open the breaker; after the reset it closes."""
    headers = auth("acme")
    r = await llm_client.post("/api/documents", headers=headers, json={"documents": HANDBOOK})
    assert r.status_code == 201, r.text
    standin.default = fault
    for question in QUESTIONS[:BREAKER_THRESHOLD]:
        body = await ask(llm_client, headers, question)
        assert body["degraded"] is True and body["cached"] is False
        assert any(s in str(body["answer"]) for s in ("HR portal", "agency", "Economy", "two days"))
        assert body["citations"]
    assert chat_calls(standin) == BREAKER_THRESHOLD * LLM_ATTEMPTS  # each request retried once

    for question in QUESTIONS[BREAKER_THRESHOLD:]:  # open: answered without calling upstream
        body = await ask(llm_client, headers, question)
        assert body["degraded"] is True
    assert chat_calls(standin) == BREAKER_THRESHOLD * LLM_ATTEMPTS

    standin.default = Reply(RECOVERED)
    await asyncio.sleep(BREAKER_RESET_S * 1.2)  # past the reset, the next request is the trial
    body = await ask(llm_client, headers, "Where do staff ask for leave?")
    assert body["degraded"] is False
    assert "HR portal" in str(body["answer"]) and "[1]" in str(body["answer"])
    assert chat_calls(standin) == BREAKER_THRESHOLD * LLM_ATTEMPTS + 1
    body = await ask(llm_client, headers, "Who approves the leave requests?")
    assert body["degraded"] is False  # closed again: every request goes upstream
    assert chat_calls(standin) == BREAKER_THRESHOLD * LLM_ATTEMPTS + 2


async def test_streamed_answer_during_outage_is_degraded_not_an_error(
    llm_client: httpx.AsyncClient, auth: TokenFactory, standin: OpenAIStandIn
) -> None:
    """With the model answering 503, a streamed query still ends in a `done` event, degraded."""
    headers = auth("acme")
    r = await llm_client.post("/api/documents", headers=headers, json={"documents": HANDBOOK})
    assert r.status_code == 201, r.text
    standin.default = Fail(503)
    body = {"query": "How do staff request annual leave?", "stream": True}
    async with llm_client.stream("POST", "/api/query", headers=headers, json=body) as response:
        assert response.status_code == 200
        text = (await response.aread()).decode()
    events = [block for block in text.split("\n\n") if block.startswith("event: ")]
    assert events[-1].startswith("event: done")
    done = json.loads(events[-1].split("data: ", 1)[1])
    assert done["degraded"] is True and "HR portal" in done["answer"]
    deltas = "".join(
        json.loads(e.split("data: ", 1)[1])["text"] for e in events if e.startswith("event: delta")
    )
    assert deltas.strip() and deltas.strip() in done["answer"]


async def test_model_failing_for_one_tenant_leaves_anothers_circuit_closed(
    llm_client: httpx.AsyncClient, auth: TokenFactory, standin: OpenAIStandIn
) -> None:
    """acme's failures open acme's circuit only: globex's next request still goes upstream."""
    from tenantrag.models import Tenant

    services = llm_client._transport.app.state.services  # type: ignore[attr-defined]  # ASGI app
    services.store.create_tenant(Tenant(id="globex", rate_limit=10_000))
    for tenant in ("acme", "globex"):
        r = await llm_client.post(
            "/api/documents", headers=auth(tenant), json={"documents": HANDBOOK}
        )
        assert r.status_code == 201, r.text
    standin.default = Fail(500)
    for question in QUESTIONS[:BREAKER_THRESHOLD]:
        assert (await ask(llm_client, auth("acme"), question))["degraded"] is True
    before = chat_calls(standin)
    standin.default = Reply(RECOVERED)
    assert (await ask(llm_client, auth("acme"), QUESTIONS[6]))["degraded"] is True
    assert (await ask(llm_client, auth("globex"), QUESTIONS[6]))["degraded"] is False
    assert chat_calls(standin) == before + 1  # globex's request only
