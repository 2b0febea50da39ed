"""Metadata filters over HTTP: a malformed key is a 422 naming it, never a 500; filters stay
inside the caller's tenant and clearance."""

from __future__ import annotations

import httpx
import pytest
from tests.api.conftest import TokenFactory

from tenantrag.models import Classification

BAD_KEYS = ['team"', 'te"am', "team'", '"', "a.b", "$", "a[0]", "", "a b", "k" * 65, "a\x00b"]


@pytest.fixture
async def tagged(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    docs = [
        {"id": "red", "text": "Policy for the red team.", "metadata": {"team": "red"}},
        {"id": "blue", "text": "Policy for the blue team.", "metadata": {"team": "blue"}},
        {
            "id": "secret",
            "text": "Policy for the red team's merger.",
            "metadata": {"team": "red"},
            "classification": "restricted",
        },
    ]
    h = auth(clearance=Classification.RESTRICTED)
    r = await client.post("/api/documents", headers=h, json={"documents": docs})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("route", ["/api/search", "/api/query"])
@pytest.mark.parametrize("key", BAD_KEYS)
async def test_a_malformed_filter_key_is_422_naming_it(
    client: httpx.AsyncClient, auth: TokenFactory, route: str, key: str
) -> None:
    """Checked with the body, before any backend sees the key (the store is safe anyway)."""
    body = {"query": "team policy", "filters": {"team": "red", key: "red"}}
    r = await client.post(route, headers=auth(), json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error" and "filter key" in error["message"]


@pytest.mark.usefixtures("tagged")
@pytest.mark.parametrize("mode", ["bm25", "vector", "hybrid"])
async def test_filters_stay_within_tenant_and_clearance(
    client: httpx.AsyncClient, auth: TokenFactory, mode: str
) -> None:
    """team=red finds acme's red document; the restricted one and globex see nothing more."""
    body = {"query": "team policy", "mode": mode, "filters": {"team": "red"}}
    r = await client.post("/api/search", headers=auth(), json=body)
    assert [x["document_id"] for x in r.json()["results"]] == ["red"]
    r = await client.post("/api/search", headers=auth("globex"), json=body)
    assert r.status_code == 200 and r.json()["results"] == []
