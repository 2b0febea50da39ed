"""Auto-classification is the tenant's policy: off, raise (the default), raise-and-redact."""

from __future__ import annotations

import httpx
import pytest
from tests.api.conftest import TokenFactory

from tenantrag.models import Classification
from tenantrag.services import Services

EMAIL = "jane.roe@acme.example"
PAGE = {
    "id": "handbook/payroll",
    "title": "Payroll",
    "text": f"Payroll questions go to {EMAIL}. Salaries are paid on the last working day.",
}


async def post(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    r = await client.post("/api/documents", headers=headers, json={"documents": [PAGE]})
    assert r.status_code == 201, r.text
    return r


async def test_raise_is_the_default_and_hides_the_page_from_default_users(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    r = await post(client, auth())
    assert r.json()["documents"][0]["classification"] == "confidential"
    staff = auth(permissions=["query", "documents:read"])
    assert (await client.get(f"/api/documents/{PAGE['id']}", headers=staff)).status_code == 404
    found = await client.post(
        "/api/search", headers=staff, json={"query": "when are salaries paid"}
    )
    assert found.json()["results"] == []


async def test_off_keeps_the_label_and_still_redacts_what_readers_get(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Under `off` default users read the page, with the address redacted in search and answers."""
    services.store.update_tenant("acme", auto_classify="off")
    r = await post(client, auth())
    assert r.json()["documents"][0]["classification"] == "internal"
    staff = auth(permissions=["query", "documents:read"])
    assert (await client.get(f"/api/documents/{PAGE['id']}", headers=staff)).status_code == 200
    found = await client.post("/api/search", headers=staff, json={"query": "payroll questions"})
    assert found.json()["results"][0]["document_id"] == PAGE["id"]
    assert EMAIL not in found.text and "[REDACTED_EMAIL]" in found.text
    answer = await client.post("/api/query", headers=staff, json={"query": "Who handles payroll?"})
    assert answer.status_code == 200 and EMAIL not in answer.text


async def test_raise_and_redact_stores_no_value_and_hides_the_page(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """The stored chunks hold the placeholder, not the address, even for a restricted reader."""
    services.store.update_tenant("acme", auto_classify="raise-and-redact")
    r = await post(client, auth())
    assert r.json()["documents"][0]["classification"] == "confidential"
    chunks = [c for batch, _ in services.store.iter_chunks("acme") for c in batch]
    assert chunks and all(EMAIL not in c.text for c in chunks)
    assert any("[REDACTED_EMAIL]" in c.text for c in chunks)
    boss = auth(clearance=Classification.RESTRICTED)
    services.store.update_tenant("acme", redact_search_pii=False)  # nothing left to redact anyway
    found = await client.post("/api/search", headers=boss, json={"query": "payroll questions"})
    assert EMAIL not in found.text and "[REDACTED_EMAIL]" in found.text


@pytest.mark.parametrize("policy", ["off", "raise-and-redact"])
async def test_one_tenants_policy_is_its_own(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services, policy: str
) -> None:
    """acme's policy changes nothing for globex, which keeps the default; neither sees the
    other's page."""
    services.store.update_tenant("acme", auto_classify=policy)
    await post(client, auth("acme"))
    g = await post(client, auth("globex"))
    assert g.json()["documents"][0]["classification"] == "confidential"
    globex_chunks = [c for batch, _ in services.store.iter_chunks("globex") for c in batch]
    assert any(EMAIL in c.text for c in globex_chunks)  # raise keeps the text as written
    acme_chunks = [c for batch, _ in services.store.iter_chunks("acme") for c in batch]
    assert {c.tenant_id for c in acme_chunks} == {"acme"}
    assert {c.tenant_id for c in globex_chunks} == {"globex"}
    for tenant in ("acme", "globex"):
        h = auth(tenant, clearance=Classification.RESTRICTED)
        listed = (await client.get("/api/documents", headers=h)).json()["documents"]
        assert [d["id"] for d in listed] == [PAGE["id"]]
        found = await client.post("/api/search", headers=h, json={"query": "payroll questions"})
        assert len(found.json()["results"]) == 1
