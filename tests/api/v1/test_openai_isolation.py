"""The cross-tenant suite on /v1: another tenant's documents, and documents above the caller's
clearance, never appear in answers, citations, streams, follow-ups or cached answers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.api.conftest import TokenFactory
from tests.api.v1.conftest import TokenMaker
from tests.api.v1.support import Live, load

from tenantrag.models import Classification

pytestmark = pytest.mark.integration  # serves the app on a loopback port

CANARY = "tangerine-walrus-42"
ACME = [{"id": "canary", "title": "Vault", "text": f"The acme vault password is {CANARY}."}]
GLOBEX = [
    {"id": "magnets", "title": "Products", "text": "Globex sells industrial magnets worldwide."}
]
MERGER = "Project Falcon will acquire Initech in March."
CLASSIFIED = [
    {"id": "merger", "title": "Falcon", "text": MERGER, "classification": "restricted"},
    {"id": "lunch", "title": "Lunch", "text": "Project lunches are on Fridays in March."},
]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


async def answer_and_stream(live: Live, token: str, messages: list[dict[str, Any]]) -> str:
    """Everything the caller receives for `messages`, whole and streamed, as one text."""
    client = live.sdk(token)
    whole = await client.chat.completions.create(model="tenantrag", messages=messages)
    stream = await client.chat.completions.create(
        model="tenantrag", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk.model_dump_json() async for chunk in stream]
    return whole.model_dump_json() + "\n".join(chunks)


async def test_another_tenants_canary_never_reaches_v1(
    live: Live, auth: TokenFactory, token: TokenMaker
) -> None:
    """globex asking for acme's canary, plainly, streamed, as a follow-up and again (cached),
    gets nothing of acme's; acme itself gets it."""
    await load(live, auth, ACME, tenant="acme")
    await load(live, auth, GLOBEX, tenant="globex")
    asked = [user("What is the vault password?")]
    assert CANARY in await answer_and_stream(live, token("acme"), asked)
    conversations = [
        asked,
        [user("Tell me about the acme vault."), user("And its password?")],
        [user("What does Globex sell?"), user("What about the acme vault password?")],
    ]
    for messages in conversations * 2:  # the second round may be served from the cache
        received = await answer_and_stream(live, token("globex"), messages)
        assert "tangerine" not in received and '"canary"' not in received


async def test_same_question_in_two_tenants_is_not_shared_through_the_cache(
    live: Live, auth: TokenFactory, token: TokenMaker
) -> None:
    """acme's cached /v1 answer is not globex's, for the very same conversation."""
    await load(live, auth, ACME, tenant="acme")
    messages = [user("What is the vault password?")]
    first = await live.sdk(token("acme")).chat.completions.create(
        model="tenantrag", messages=messages
    )
    assert CANARY in (first.choices[0].message.content or "")
    other = await live.sdk(token("globex")).chat.completions.create(
        model="tenantrag", messages=messages
    )
    assert CANARY not in other.model_dump_json()
    assert (other.model_extra or {})["citations"] == []


async def test_clearance_is_respected_on_v1(
    live: Live, auth: TokenFactory, token: TokenMaker
) -> None:
    """A restricted chunk reaches a restricted-cleared user; an internal one never gets it, even
    right after the cleared user's answer was cached, nor through a follow-up."""
    await load(live, auth, CLASSIFIED)
    boss = token(clearance=Classification.RESTRICTED, user="boss")
    staff = token(user="staff")
    question = [user("What will Project Falcon acquire in March?")]
    assert "Initech" in await answer_and_stream(live, boss, question)
    follow_up = [user("Tell me about Project Falcon."), user("What will it acquire?")]
    for messages in (question, follow_up):
        received = await answer_and_stream(live, staff, messages)
        assert "Initech" not in received and '"merger"' not in received


async def test_v1_answers_are_audited_in_the_callers_tenant_only(
    live: Live, auth: TokenFactory, token: TokenMaker
) -> None:
    """A /v1 answer writes an acme `query` audit record (chunk ids, no text); globex has none."""
    await load(live, auth, ACME, tenant="acme")
    await live.sdk(token("acme")).chat.completions.create(
        model="tenantrag", messages=[user("What is the vault password?")]
    )
    async with live.http() as http:
        acme = (await http.get("/api/audit", headers=auth("acme"))).json()["records"]
        globex = (await http.get("/api/audit", headers=auth("globex"))).json()["records"]
    query = next(r for r in acme if r["action"] == "query")
    assert query["resource_ids"] == ["canary#0"] and query["user_id"] == "alice"
    assert CANARY not in json.dumps(acme)
    assert not any(r["action"] == "query" for r in globex)
