"""The outside review's classes of attack, replayed through the API with our own variants.

Questions (tests/api/replay_cases.py, 42 of them over 14 classes) must be refused with 400
`prompt_injection` by `/api/query` and by `/v1/chat/completions` (the tenant's default policy is
`block`). Injected documents (12, over the review's classes and a few more) must be flagged when
a question retrieves them (`indirect_prompt_injection`), and no answer may carry a link out.
"""

from __future__ import annotations

import re

import httpx
from tests.api.conftest import TokenFactory
from tests.api.replay_cases import DOCUMENTS, QUESTIONS

LINK_OUT = re.compile(r"evil\.example/\S*[?&#]")


def test_the_variants_cover_every_class_of_the_review() -> None:
    """At least 35 questions, three or more per class the review named; ten-plus documents."""
    named = {"base64", "rot13", "spanish", "italian", "dutch", "chinese", "japanese", "russian"}
    named |= {"markdown_header", "chat_template", "unicode_tags"}
    assert named <= set(QUESTIONS)
    assert all(len(QUESTIONS[c]) >= 3 for c in named)
    assert sum(len(v) for v in QUESTIONS.values()) >= 35
    assert {"spanish", "midline_system", "base64", "markdown_image"} <= set(DOCUMENTS)
    assert len(DOCUMENTS) >= 10


async def test_every_attack_question_is_refused_by_both_apis(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """Each question: 400 prompt_injection on /api/query and on /v1/chat/completions."""
    through: list[str] = []
    for cls, texts in QUESTIONS.items():
        for text in texts:
            r = await client.post("/api/query", headers=auth(), json={"query": text})
            if r.status_code != 400 or r.json()["error"]["code"] != "prompt_injection":
                through.append(f"/api/query {cls}: {text[:60]!r} -> {r.status_code}")
            chat = {"model": "tenantrag", "messages": [{"role": "user", "content": text}]}
            v1 = await client.post("/v1/chat/completions", headers=auth(), json=chat)
            if v1.status_code != 400:
                through.append(f"/v1 {cls}: {text[:60]!r} -> {v1.status_code}")
    assert through == []


async def test_every_injected_document_is_flagged_when_retrieved(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """One document at a time: the answer is flagged, and carries no link with a query out."""
    unflagged: list[str] = []
    for cls, (question, text) in DOCUMENTS.items():
        doc = {"id": f"replay-{cls}", "text": text}
        r = await client.post("/api/documents", headers=auth(), json={"documents": [doc]})
        assert r.status_code == 201, r.text
        r = await client.post("/api/query", headers=auth(), json={"query": question})
        assert r.status_code == 200, (cls, r.text)
        body = r.json()
        if "indirect_prompt_injection" not in body["flags"]:
            unflagged.append(cls)
        assert not LINK_OUT.search(body["answer"]), (cls, body["answer"])
        gone = await client.delete(f"/api/documents/replay-{cls}", headers=auth())
        assert gone.status_code == 204
    assert unflagged == []
