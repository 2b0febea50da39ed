"""/v1/chat/completions and /v1/models through OpenAI's official SDK, over a real socket."""

from __future__ import annotations

import json

import openai
import pytest
from tests.api.conftest import TokenFactory
from tests.api.v1.conftest import TokenMaker
from tests.api.v1.support import Live, load

from tenantrag.services import Services

pytestmark = pytest.mark.integration  # serves the app on a loopback port

HANDBOOK: list[dict[str, object]] = [
    {
        "id": "leave",
        "title": "Leave",
        "text": "Staff request annual leave in the HR portal. "
        "Managers approve leave requests within two days.",
    },
    {
        "id": "travel",
        "title": "Travel",
        "text": "Book travel through the agency. Economy class is required for flights under "
        "six hours. Travel requests are approved by the account manager within a week.",
    },
    {
        "id": "laptops",
        "title": "Equipment",
        "text": "Every new employee receives a laptop on the first day. "
        "Lost laptops must be reported to security immediately.",
    },
]


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


async def test_answer_is_a_chat_completion_with_citations(
    live: Live, auth: TokenFactory, token: TokenMaker
) -> None:
    """The SDK gets a chat.completion whose content cites [n] the top-level citations."""
    await load(live, auth, HANDBOOK)
    client = live.sdk(token())
    reply = await client.chat.completions.create(
        model="tenantrag", messages=ask("How do staff request annual leave?")
    )
    assert reply.object == "chat.completion" and reply.model == "tenantrag"
    assert reply.id.startswith("chatcmpl-") and reply.created > 0
    choice = reply.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    content = choice.message.content or ""
    assert "HR portal" in content
    citations = (reply.model_extra or {})["citations"]
    assert citations and citations[0]["document_id"] == "leave"
    assert set(citations[0]) == {"index", "document_id", "chunk_id", "title", "snippet", "score"}
    for c in citations:
        assert f"[{c['index']}]" in content
    usage = reply.usage
    assert usage is not None and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_same_question_is_answered_by_the_answer_cache_of_api_query(
    live: Live, auth: TokenFactory, token: TokenMaker
) -> None:
    """/v1 shares /api/query's answer cache: the same question is served without the model."""
    await load(live, auth, HANDBOOK)
    async with live.http() as http:
        r = await http.post(
            "/api/query", headers=auth(), json={"query": "Who approves leave requests?"}
        )
    assert r.status_code == 200 and r.json()["cached"] is False
    reply = await live.sdk(token()).chat.completions.create(
        model="tenantrag", messages=ask("Who approves leave requests?")
    )
    assert reply.choices[0].message.content == r.json()["answer"]
    assert reply.usage is not None and reply.usage.total_tokens == 0  # no model call


async def test_stream_sends_chunks_then_citations_usage_and_done(
    live: Live, auth: TokenFactory, token: TokenMaker
) -> None:
    """stream=True: role, content deltas, a finish with citations, a usage chunk, [DONE]."""
    await load(live, auth, HANDBOOK)
    stream = await live.sdk(token()).chat.completions.create(
        model="tenantrag",
        messages=ask("What happens to lost laptops?"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "security" in text
    finish = chunks[-2]
    assert finish.choices[0].finish_reason == "stop"
    citations = (finish.model_extra or {})["citations"]
    assert [c["document_id"] for c in citations][:1] == ["laptops"]
    assert all(f"[{c['index']}]" in text for c in citations)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_without_usage_option_has_no_usage_chunk(
    live: Live, auth: TokenFactory, token: TokenMaker
) -> None:
    """Without stream_options.include_usage the finish chunk is the last before [DONE]."""
    await load(live, auth, HANDBOOK)
    async with live.http() as http:
        body = {"model": "tenantrag", "messages": ask("Who approves travel?"), "stream": True}
        headers = {"Authorization": f"Bearer {token()}"}
        r = await http.post("/v1/chat/completions", headers=headers, json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e.strip()]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    finish = json.loads(events[-2].removeprefix("data: "))
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["usage"] is None


async def test_models_lists_tenantrag_and_the_embedding_model(
    live: Live, token: TokenMaker, services: Services
) -> None:
    """GET /v1/models lists `tenantrag`; each listed model can be retrieved, others are 404."""
    client = live.sdk(token())
    models = [m async for m in client.models.list()]
    ids = [m.id for m in models]
    assert ids == ["tenantrag", services.query_embeddings.model_name]
    assert all(m.object == "model" and m.owned_by == "tenantrag" for m in models)
    card = await client.models.retrieve("tenantrag")
    assert card.id == "tenantrag"
    with pytest.raises(openai.NotFoundError) as caught:
        await client.models.retrieve("gpt-4o")
    assert caught.value.code == "model_not_found"


async def test_x_tenant_id_is_optional_and_must_match_when_sent(
    live: Live, auth: TokenFactory, token: TokenMaker
) -> None:
    """The credential names the tenant; a matching header is fine, another tenant's is 403."""
    await load(live, auth, HANDBOOK)
    matching = live.sdk(token(), default_headers={"X-Tenant-ID": "acme"})
    reply = await matching.chat.completions.create(
        model="tenantrag", messages=ask("How do staff request annual leave?")
    )
    assert "HR portal" in (reply.choices[0].message.content or "")
    other = live.sdk(token(), default_headers={"X-Tenant-ID": "globex"})
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await other.chat.completions.create(model="tenantrag", messages=ask("leave?"))
    assert caught.value.code == "tenant_mismatch"
    assert caught.value.type == "permission_error"


async def test_unused_openai_parameters_are_accepted(
    live: Live, auth: TokenFactory, token: TokenMaker
) -> None:
    """temperature, max_tokens, user, seed, n=1 ... are accepted; the answer is the same."""
    await load(live, auth, HANDBOOK)
    client = live.sdk(token())
    plain = await client.chat.completions.create(
        model="tenantrag", messages=ask("How do staff request annual leave?")
    )
    tuned = await client.chat.completions.create(
        model="tenantrag",
        messages=ask("How do staff request annual leave?"),
        temperature=0.2,
        top_p=0.9,
        max_tokens=300,
        n=1,
        seed=7,
        user="someone",
        presence_penalty=0.1,
        stop=["\n\n\n"],
        response_format={"type": "text"},
    )
    assert tuned.choices[0].message.content == plain.choices[0].message.content
