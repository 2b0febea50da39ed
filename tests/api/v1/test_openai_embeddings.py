"""/v1/embeddings through OpenAI's SDK: the model's own vectors, in both encodings, billed."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from tests.api.conftest import TokenFactory
from tests.api.v1.conftest import TokenMaker
from tests.api.v1.support import Live

from tenantrag.services import Services

pytestmark = pytest.mark.integration  # serves the app on a loopback port

TEXTS = ["How do staff request annual leave?", "Lost laptops go to security.", "naïve café ☕"]


def model_vectors(services: Services, texts: list[str]) -> np.ndarray:
    return np.asarray(services.query_embeddings.embed(texts), dtype=np.float32)


async def test_default_request_is_base64_and_decodes_to_the_models_vectors(
    live: Live, token: TokenMaker, services: Services
) -> None:
    """The SDK's default (base64 on the wire, decoded by it) equals the model's vectors."""
    name = services.query_embeddings.model_name
    reply = await live.sdk(token()).embeddings.create(model=name, input=TEXTS)
    assert reply.object == "list" and reply.model == name
    assert [d.index for d in reply.data] == [0, 1, 2]
    assert all(d.object == "embedding" for d in reply.data)
    got = np.asarray([d.embedding for d in reply.data], dtype=np.float32)
    assert got.shape == (3, services.query_embeddings.dimensions)
    np.testing.assert_allclose(got, model_vectors(services, TEXTS), rtol=0, atol=1e-6)
    tokens = sum(services.query_embeddings.count_tokens(t) for t in TEXTS)
    assert reply.usage.prompt_tokens == reply.usage.total_tokens == tokens


async def test_float_encoding_and_a_single_string(
    live: Live, token: TokenMaker, services: Services
) -> None:
    """encoding_format='float' and input as one string: one vector, the model's."""
    reply = await live.sdk(token()).embeddings.create(
        model="tenantrag", input=TEXTS[0], encoding_format="float"
    )
    assert len(reply.data) == 1
    got = np.asarray(reply.data[0].embedding, dtype=np.float32)
    np.testing.assert_allclose(got, model_vectors(services, TEXTS[:1])[0], rtol=0, atol=1e-6)


async def test_base64_on_the_wire_is_little_endian_float32(
    live: Live, token: TokenMaker, services: Services
) -> None:
    """The raw base64 string is the vector's float32 little-endian bytes, exactly."""
    async with live.http() as http:
        r = await http.post(
            "/v1/embeddings",
            headers={"Authorization": f"Bearer {token()}"},
            json={"model": "tenantrag", "input": TEXTS[1:2], "encoding_format": "base64"},
        )
    assert r.status_code == 200, r.text
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert len(raw) == 4 * services.query_embeddings.dimensions
    got = np.frombuffer(raw, dtype="<f4")
    np.testing.assert_allclose(got, model_vectors(services, TEXTS[1:2])[0], rtol=0, atol=1e-6)


@pytest.mark.usefixtures("clear_of_month_end")
async def test_embeddings_are_billed_and_audited_for_the_callers_tenant_only(
    live: Live, auth: TokenFactory, token: TokenMaker, services: Services
) -> None:
    """The tokens show in acme's usage as embedding cost and in its audit log; globex sees none."""
    reply = await live.sdk(token("acme")).embeddings.create(model="tenantrag", input=TEXTS)
    services.costs.flush()
    async with live.http() as http:
        acme = (await http.get("/api/usage", headers=auth("acme"))).json()
        globex = (await http.get("/api/usage", headers=auth("globex"))).json()
        audit = (await http.get("/api/audit", headers=auth("acme"))).json()["records"]
        other = (await http.get("/api/audit", headers=auth("globex"))).json()["records"]
    assert acme["by_type"]["embedding"]["amount_usd"] > 0
    assert "embedding" not in globex["by_type"]
    record = next(r for r in audit if r["action"] == "embeddings")
    assert record["detail"] == {"inputs": 3, "tokens": reply.usage.total_tokens}
    assert record["user_id"] == "alice" and record["tenant_id"] == "acme"
    assert not any(r["action"] == "embeddings" for r in other)
    assert TEXTS[0] not in str(audit)  # counts only, never the texts
