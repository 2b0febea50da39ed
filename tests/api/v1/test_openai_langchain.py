"""LangChain's ChatOpenAI and OpenAIEmbeddings pointed at our /v1, as a LangChain user would."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import SecretStr
from tests.api.conftest import TokenFactory
from tests.api.v1.conftest import TokenMaker
from tests.api.v1.support import Live, load

from tenantrag.services import Services

pytestmark = pytest.mark.integration  # serves the app on a loopback port

DOCS: list[dict[str, object]] = [
    {
        "id": "leave",
        "title": "Leave",
        "text": "Staff request annual leave in the HR portal. "
        "Managers approve leave requests within two days.",
    },
    {
        "id": "travel",
        "title": "Travel",
        "text": "Travel requests are approved by the account manager within a week.",
    },
]


def chat(live: Live, token: str, **options: object) -> ChatOpenAI:
    return ChatOpenAI(
        model="tenantrag",
        base_url=f"{live.url}/v1",
        api_key=SecretStr(token),
        max_retries=0,
        http_async_client=live.pool(),
        **options,  # type: ignore[arg-type]
    )


async def test_chat_openai_answers_and_streams_with_citations(
    live: Live, auth: TokenFactory, token: TokenMaker
) -> None:
    """ainvoke gets the cited answer (citations in response_metadata is not promised, the text
    is); astream yields the same text in pieces."""
    await load(live, auth, DOCS)
    model = chat(live, token(), temperature=0)
    question = [SystemMessage("Answer briefly."), HumanMessage("How do staff request leave?")]
    reply = await model.ainvoke(question)
    assert isinstance(reply, AIMessage)
    assert "HR portal" in str(reply.content) and "[1]" in str(reply.content)
    pieces = [str(piece.content) async for piece in model.astream(question)]
    assert len(pieces) >= 2 and "".join(pieces) == reply.content


async def test_chat_openai_follow_up_uses_the_conversation(
    live: Live, auth: TokenFactory, token: TokenMaker
) -> None:
    """A LangChain message history's follow-up is answered about the earlier topic."""
    await load(live, auth, DOCS)
    model = chat(live, token())
    first = HumanMessage("How do staff request annual leave?")
    answer = await model.ainvoke([first])
    follow = await model.ainvoke([first, answer, HumanMessage("Who approves them?")])
    assert "two days" in str(follow.content)


async def test_openai_embeddings_equal_the_models_vectors(
    live: Live, token: TokenMaker, services: Services
) -> None:
    """LangChain's OpenAIEmbeddings (base64 under the hood) gets our model's vectors."""
    name = services.query_embeddings.model_name
    embeddings = OpenAIEmbeddings(
        model=name,
        base_url=f"{live.url}/v1",
        api_key=SecretStr(token()),
        check_embedding_ctx_length=False,  # no OpenAI tokenizer for our model
        max_retries=0,
        http_async_client=live.pool(),
    )
    texts = ["annual leave", "lost laptops"]
    got = np.asarray(await embeddings.aembed_documents(texts), dtype=np.float32)
    np.testing.assert_allclose(got, services.query_embeddings.embed(texts), rtol=0, atol=1e-6)
