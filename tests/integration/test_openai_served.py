"""The bar of issue 17, checked from outside: OpenAI's synchronous SDK against `tenantrag serve`."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import openai
import pytest
from tests.integration.conftest import Server

pytestmark = pytest.mark.integration  # starts `tenantrag serve`

DOCS = [
    {"id": "leave", "text": "Staff request annual leave in the HR portal. Managers approve it."},
    {"id": "laptops", "text": "Lost laptops must be reported to security immediately."},
]


def test_sdk_gets_a_cited_answer_a_stream_models_and_embeddings(
    cluster: Callable[..., Server], tenant: Callable[..., tuple[str, dict[str, str]]]
) -> None:
    """base_url=<server>/v1 and api_key=<token>: cited answer, stream, models, embeddings; the
    other tenant's documents never appear."""
    server = cluster(redis=False)
    _, acme_headers = tenant()
    _, other_headers = tenant()
    r = httpx.post(
        f"{server.base_url}/api/documents", headers=acme_headers, json={"documents": DOCS}
    )
    assert r.status_code == 201, r.text
    token = acme_headers["Authorization"].removeprefix("Bearer ")
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=token, max_retries=0) as client:
        question = [{"role": "user", "content": "How do staff request annual leave?"}]
        reply = client.chat.completions.create(model="tenantrag", messages=question)
        assert "HR portal [1]" in (reply.choices[0].message.content or "")
        assert (reply.model_extra or {})["citations"][0]["document_id"] == "leave"
        stream = client.chat.completions.create(model="tenantrag", messages=question, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert "HR portal" in text
        assert [m.id for m in client.models.list()][0] == "tenantrag"
        vectors = client.embeddings.create(model="tenantrag", input=["annual leave", "laptops"])
        got = np.asarray([d.embedding for d in vectors.data])
        assert got.shape == (2, 384)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    other = other_headers["Authorization"].removeprefix("Bearer ")
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=other, max_retries=0) as client:
        reply = client.chat.completions.create(model="tenantrag", messages=question)
        assert "HR portal" not in reply.model_dump_json()
        assert (reply.model_extra or {})["citations"] == []
