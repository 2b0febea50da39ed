"""The admin API for tenants, with a platform operator's credential, and erasure by canaries.

A tenant's credential on /api/admin is 403 whatever it claims; the platform credential is 403
everywhere else. Erasure is proven by canaries: a unique string in the tenant's texts, titles
and metadata is found nowhere afterwards, in any table of the store or any index file.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from tests.api.conftest import ALL, SECRET, TokenFactory, audit_trail

from tenantrag.auth import issue_platform_token, issue_token
from tenantrag.backends.llm.extractive import ExtractiveLLM
from tenantrag.observability import audit
from tenantrag.services import Services

PLATFORM = {"Authorization": "Bearer " + issue_platform_token(SECRET, user_id="ops")}


def tenant_headers(tenant: str, **kwargs: Any) -> dict[str, str]:
    """A token of `tenant` with every permission."""
    token = issue_token(SECRET, tenant_id=tenant, user_id="alice", permissions=ALL, **kwargs)
    return {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant}


async def test_a_platform_operator_creates_lists_gets_updates_suspends_and_activates(
    client: httpx.AsyncClient, services: Services
) -> None:
    """The whole life of a tenant through the admin API, every change audited."""
    r = await client.post(
        "/api/admin/tenants",
        headers=PLATFORM,
        json={"id": "initech", "rate_limit_per_minute": 7, "document_quota": 5},
    )
    assert r.status_code == 201, r.text
    assert r.json()["rate_limit_per_minute"] == 7 and r.json()["status"] == "active"
    listed = (await client.get("/api/admin/tenants", headers=PLATFORM)).json()["tenants"]
    assert [t["id"] for t in listed] == ["acme", "globex", "initech"]
    r = await client.get("/api/admin/tenants/initech", headers=PLATFORM)
    assert r.status_code == 200 and r.json()["document_quota"] == 5
    r = await client.patch(
        "/api/admin/tenants/initech",
        headers=PLATFORM,
        json={"monthly_token_budget": 1000, "storage_quota_bytes": 4096},
    )
    assert r.status_code == 200
    assert (r.json()["monthly_token_budget"], r.json()["storage_quota_bytes"]) == (1000, 4096)
    # A fresh token of the new tenant works, and the tenant's own limit applies.
    headers = tenant_headers("initech")
    r = await client.get("/api/documents", headers=headers)
    assert r.status_code == 200 and r.headers["ratelimit-policy"].startswith("7;")
    r = await client.patch(
        "/api/admin/tenants/initech", headers=PLATFORM, json={"status": "suspended"}
    )
    assert r.json()["status"] == "suspended"
    assert (await client.get("/api/documents", headers=headers)).status_code == 403
    r = await client.patch(
        "/api/admin/tenants/initech", headers=PLATFORM, json={"status": "active"}
    )
    assert r.json()["status"] == "active"
    actions = [
        (a["action"], a["user_id"])
        for a in audit_trail(services)
        if a["tenant_id"] == "initech" and a["action"].startswith("tenant_")
    ]
    assert actions == [
        ("tenant_created", "ops"),
        ("tenant_updated", "ops"),
        ("tenant_suspended", "ops"),
        ("tenant_activated", "ops"),
    ]


async def test_a_token_minted_before_its_tenant_existed_never_becomes_valid(
    client: httpx.AsyncClient,
) -> None:
    """A token for an id that did not exist yet stays refused once the tenant is created."""
    early = tenant_headers("umbrella", now=time.time() - 30)
    assert (await client.get("/api/documents", headers=early)).status_code == 403
    r = await client.post("/api/admin/tenants", headers=PLATFORM, json={"id": "umbrella"})
    assert r.status_code == 201
    r = await client.get("/api/documents", headers=early)
    assert r.status_code == 401 and "before the tenant" in r.json()["error"]["message"]
    assert (
        await client.get("/api/documents", headers=tenant_headers("umbrella"))
    ).status_code == 200


async def test_a_tenants_credential_is_403_on_admin_whatever_it_claims(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """Every permission a tenant can hold is still 403 on /api/admin, with or without header."""
    for headers in (auth(), {"Authorization": auth()["Authorization"]}):
        for method, path in [
            ("GET", "/api/admin/tenants"),
            ("GET", "/api/admin/tenants/acme"),
            ("PATCH", "/api/admin/tenants/acme"),
            ("DELETE", "/api/admin/tenants/globex"),
        ]:
            r = await client.request(method, path, headers=headers, json={})
            assert r.status_code == 403, (method, path)
            assert r.json()["error"]["code"] == "permission_denied"
    # A tenant's token that claims platform:admin (signed with the real secret) is not even valid.
    now = int(time.time())
    claims = {"tenant_id": "acme", "user_id": "x", "permissions": ["platform:admin"]}
    forged = jwt.encode({**claims, "iat": now, "exp": now + 60}, SECRET, algorithm="HS256")
    r = await client.get("/api/admin/tenants", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    r = await client.get("/api/admin/tenants", headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 401


async def test_the_platform_credential_serves_no_tenant(client: httpx.AsyncClient) -> None:
    """A platform credential is 403 on tenant routes, whatever X-Tenant-ID says."""
    for headers in (PLATFORM, {**PLATFORM, "X-Tenant-ID": "acme"}):
        for method, path in [
            ("GET", "/api/documents"),
            ("GET", "/api/keys"),
            ("GET", "/v1/models"),
        ]:
            r = await client.request(method, path, headers=headers)
            assert r.status_code == 403, (path, r.text)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/admin/tenants", {"id": "Bad_Id"}, 422),
        ("POST", "/api/admin/tenants", {"id": "_platform"}, 422),
        ("POST", "/api/admin/tenants", {"id": "ok-id", "rate_limit_per_minute": 0}, 422),
        ("POST", "/api/admin/tenants", {"id": "ok-id", "surprise": 1}, 422),
        ("POST", "/api/admin/tenants", {"id": "acme"}, 409),
        ("GET", "/api/admin/tenants/nobody", None, 404),
        ("GET", "/api/admin/tenants/NOT..valid", None, 422),
        ("PATCH", "/api/admin/tenants/acme", {"status": "deleted"}, 422),
        ("PATCH", "/api/admin/tenants/nobody", {"status": "active"}, 404),
        ("DELETE", "/api/admin/tenants/nobody", None, 404),
    ],
)
async def test_bad_admin_requests_are_json_errors(
    client: httpx.AsyncClient, method: str, path: str, body: Any, status: int
) -> None:
    """Invalid ids, bodies and unknown tenants get the contract's error body, never a 500."""
    r = await client.request(method, path, headers=PLATFORM, json=body)
    assert r.status_code == status, r.text
    assert set(r.json()["error"]) >= {"code", "message"}


CANARY = "zebracanary-5d1e"


def canary_hits(data_dir: Path, store_path: Path) -> list[str]:
    """Where CANARY still is: every table and column of the store, every file of the folder."""
    hits = []
    db = sqlite3.connect(store_path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):  # noqa: S608  # our own table names
                if CANARY in repr(row):
                    hits.append(f"table {table}")
    finally:
        db.close()
    # Then the raw bytes of every file of the data folder: the store's file and WAL (deleted
    # rows must not linger in free pages), the index folders, anything else.
    for path in data_dir.rglob("*"):
        if path.is_file() and CANARY.encode() in path.read_bytes():
            hits.append(str(path))
    return hits


async def test_erasure_leaves_no_canary_and_keeps_costs_audit_and_other_tenants(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """DELETE /api/admin/tenants/acme: no trace of acme's canary anywhere; globex intact."""
    docs = [
        {
            "id": f"d{i}",
            "title": f"Title {CANARY}",
            "text": f"The harbour code word is {CANARY} number {i}.",
            "metadata": {"tag": CANARY},
        }
        for i in range(3)
    ]
    r = await client.post("/api/documents", headers=auth(), json={"documents": docs})
    assert r.status_code == 201
    await client.post(
        "/api/documents",
        headers=auth("globex"),
        json={"documents": [{"id": "g", "text": "Globex keeps its own harbour notes."}]},
    )
    queued = {"documents": [{"id": "q", "text": f"Queued {CANARY}.", "metadata": {"t": CANARY}}]}
    r = await client.post("/api/documents", params={"async": "true"}, headers=auth(), json=queued)
    assert r.status_code == 202  # a background job: its item holds the whole document
    answer = await client.post("/api/query", headers=auth(), json={"query": "harbour code word?"})
    assert CANARY in answer.text  # the answer cache now holds it too
    key = (
        await client.post("/api/keys", headers=auth(), json={"name": "k", "permissions": ["query"]})
    ).json()
    services.indexes.vector.snapshot("acme", force=True)  # type: ignore[attr-defined]
    data_dir = services.settings.data_dir
    assert canary_hits(data_dir, services.settings.db_path)  # the check sees what it looks for
    kept = services.searches.redactions  # raw texts as keys: stage 4 filled it for the query
    assert "acme" in kept.tenants()
    assert "acme" in audit._SCRUBBED.tenants()
    answerer = services.llm
    assert isinstance(answerer, ExtractiveLLM) and "acme" in answerer.tenants()
    r = await client.delete("/api/admin/tenants/acme", headers=PLATFORM)
    assert r.status_code == 202, r.text
    removed = r.json()["removed"]
    assert r.json()["status"] == "erased"
    assert removed["documents"] >= 3 and removed["chunks"] >= 3 and removed["api_keys"] == 1
    assert removed["cache_entries"] >= 1 and removed["index_files"] >= 1
    assert removed["job_items"] == 1 and removed["jobs"] == 1
    assert canary_hits(data_dir, services.settings.db_path) == []
    assert "acme" not in kept.tenants() | audit._SCRUBBED.tenants() | answerer.tenants()
    assert await services.answer_cache.get("acme", "x") is None
    # Nothing of acme answers any more: its tokens and key are refused, the tenant is deleted.
    assert (
        await client.post("/api/search", headers=auth(), json={"query": "harbour"})
    ).status_code == 403
    r = await client.get(
        "/api/documents", headers={"Authorization": f"Bearer {key['key']}", "X-Tenant-ID": "acme"}
    )
    assert r.status_code in (401, 403)
    tenant = (await client.get("/api/admin/tenants/acme", headers=PLATFORM)).json()
    assert tenant["status"] == "deleted"
    r = await client.post("/api/admin/tenants", headers=PLATFORM, json={"id": "acme"})
    assert r.status_code == 409  # the id is never reused
    r = await client.patch("/api/admin/tenants/acme", headers=PLATFORM, json={"status": "active"})
    assert r.status_code == 409
    # Cost and audit records stay, and globex is untouched.
    assert services.store.totals("acme", start=_today(), end=_today()).total.amount_usd > 0
    actions = [a["action"] for a in audit_trail(services) if a["tenant_id"] == "acme"]
    assert actions[-1] == "tenant_erased" and "ingest" in actions
    r = await client.post("/api/search", headers=auth("globex"), json={"query": "harbour notes"})
    assert r.status_code == 200 and r.json()["results"][0]["document_id"] == "g"


def _today() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC).date()
