"""API keys over HTTP: made once, usable as a bearer anywhere a token is, scoped, limited, revoked.

Also the cross-tenant suite of /api/keys: another tenant's keys are invisible (404 to revoke,
absent from lists), and a key of one tenant never serves another.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from tests.api.conftest import SECRET, TokenFactory, audit_trail

from tenantrag.auth import issue_token
from tenantrag.auth.keys import key_hash, new_key
from tenantrag.backends.store import ChangeRecords
from tenantrag.backends.store.identity import ApiKey
from tenantrag.models import AuditEvent, Classification, TenantStatus
from tenantrag.services import Services


async def make_key(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    """POST /api/keys with `body` (name and permissions default), asserting 201."""
    body.setdefault("name", "ci")
    body.setdefault("permissions", ["query", "documents:read", "documents:write"])
    r = await client.post("/api/keys", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def bearer(key: str, tenant: str | None = "acme") -> dict[str, str]:
    """Headers sending `key` as the bearer credential."""
    headers = {"Authorization": f"Bearer {key}"}
    if tenant is not None:
        headers["X-Tenant-ID"] = tenant
    return headers


async def test_a_key_is_shown_once_works_as_a_bearer_and_is_refused_once_revoked(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """The key made by POST works on /api and /v1; after DELETE it is 401 at once."""
    made = await make_key(client, auth(), rate_limit_per_minute=50, expires_in_days=30)
    assert made["key"].startswith(f"trk_{made['id']}_")
    assert made["expires_at"] > time.time() + 29 * 86400
    key = made["key"]
    r = await client.post(
        "/api/documents",
        headers=bearer(key),
        json={"documents": [{"id": "k1", "text": "Keys open the harbour gate."}]},
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/search", headers=bearer(key), json={"query": "harbour gate"})
    assert r.status_code == 200 and r.json()["results"][0]["document_id"] == "k1"
    r = await client.get("/v1/models", headers=bearer(key, tenant=None))
    assert r.status_code == 200
    listed = (await client.get("/api/keys", headers=auth())).json()["keys"]
    assert [k["id"] for k in listed] == [made["id"]]
    assert "key" not in listed[0] and made["key"] not in str(listed)
    # Only a keyed hash is stored: the secret appears in no column.
    stored = services.store.find_api_key(made["id"])
    assert stored is not None and key.split("_")[-1] not in repr(stored)
    r = await client.delete(f"/api/keys/{made['id']}", headers=auth())
    assert r.status_code == 204
    r = await client.post("/api/search", headers=bearer(key), json={"query": "harbour gate"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    assert r.headers["www-authenticate"].startswith("Bearer")
    listed = (await client.get("/api/keys", headers=auth())).json()["keys"]
    assert listed[0]["revoked_at"] is not None
    actions = [r["action"] for r in audit_trail(services)]
    assert "api_key_created" in actions and "api_key_revoked" in actions
    created = next(r for r in audit_trail(services) if r["action"] == "api_key_created")
    assert created["resource_ids"] == [made["id"]] and created["user_id"] == "alice"


async def test_a_key_records_its_last_use(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Using a key sets its last_used_at."""
    made = await make_key(client, auth())
    assert (await client.get("/api/documents", headers=bearer(made["key"]))).status_code == 200
    listed = (await client.get("/api/keys", headers=auth())).json()["keys"]
    assert listed[0]["last_used_at"] is not None


async def test_a_key_can_do_no_more_than_its_maker(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """Permissions beyond the creator's, or a clearance above theirs, are 403."""
    maker = auth(permissions=["keys:admin", "query"])
    r = await client.post(
        "/api/keys", headers=maker, json={"name": "x", "permissions": ["documents:write"]}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    r = await client.post(
        "/api/keys",
        headers=maker,
        json={"name": "x", "permissions": ["query"], "clearance": "restricted"},
    )
    assert r.status_code == 403
    made = await make_key(client, maker, permissions=["query"])
    r = await client.post(
        "/api/documents",
        headers=bearer(made["key"]),
        json={"documents": [{"text": "Not allowed."}]},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"


async def test_a_keys_clearance_bounds_what_it_reads(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """A public-cleared key never sees an internal document."""
    secret_doc = {"id": "memo", "text": "The lighthouse budget is ninety thousand."}
    await client.post("/api/documents", headers=auth(), json={"documents": [secret_doc]})
    made = await make_key(client, auth(), permissions=["query"], clearance="public")
    r = await client.post(
        "/api/search", headers=bearer(made["key"]), json={"query": "lighthouse budget"}
    )
    assert r.status_code == 200 and r.json()["results"] == []


async def test_cross_tenant_keys_are_invisible_and_never_serve_another_tenant(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """globex cannot list or revoke acme's key; acme's key is refused with globex's header."""
    made = await make_key(client, auth("acme"))
    assert (await client.get("/api/keys", headers=auth("globex"))).json() == {"keys": []}
    r = await client.delete(f"/api/keys/{made['id']}", headers=auth("globex"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    unknown = await client.delete("/api/keys/0123456789ab", headers=auth("globex"))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    r = await client.get("/api/documents", headers=bearer(made["key"], tenant="globex"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_mismatch"
    r = await client.get("/api/documents", headers=bearer(made["key"]))
    assert r.status_code == 200


@pytest.mark.parametrize(
    "credential",
    [
        "trk_",
        "trk_0123456789ab_short",
        "trk_0123456789ab_" + "A" * 43,  # well formed, unknown id
        "trk_zzzzzzzzzzzz_" + "A" * 43,
    ],
)
async def test_malformed_or_unknown_keys_are_401(
    client: httpx.AsyncClient, credential: str
) -> None:
    """Anything that is not a live key is 401 with the contract's body."""
    r = await client.get("/api/documents", headers=bearer(credential))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


async def test_a_right_id_with_a_wrong_secret_is_401(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """The secret is checked: a real id with another secret is refused."""
    made = await make_key(client, auth())
    forged = f"trk_{made['id']}_" + "B" * 43
    r = await client.get("/api/documents", headers=bearer(forged))
    assert r.status_code == 401


async def test_an_expired_key_is_401(client: httpx.AsyncClient, services: Services) -> None:
    """A key past its expiry is refused."""
    key_id, secret, full = new_key()
    key = ApiKey(
        key_id,
        "acme",
        "old",
        ("query",),
        Classification.INTERNAL,
        None,
        "alice",
        time.time() - 100,
        expires_at=time.time() - 1,
    )
    records = ChangeRecords(AuditEvent("api_key_created", "success", "acme", "alice"))
    services.store.create_api_key(key, key_hash(services.authenticator.pepper, secret), records)
    r = await client.get("/api/documents", headers=bearer(full))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"permissions": ["query"]},
        {"name": "x", "permissions": []},
        {"name": "x", "permissions": ["root"]},
        {"name": "x", "permissions": ["platform:admin"]},
        {"name": "x", "permissions": ["query"], "clearance": "top"},
        {"name": "x", "permissions": ["query"], "expires_in_days": 0},
        {"name": "x", "permissions": ["query"], "rate_limit_per_minute": -1},
        {"name": "\x00", "permissions": ["query"]},
        {"name": "x", "permissions": ["query"], "extra": 1},
    ],
)
async def test_bad_key_requests_are_422_and_make_nothing(
    client: httpx.AsyncClient, auth: TokenFactory, body: dict[str, Any]
) -> None:
    """Invalid bodies are refused with the JSON error body; no key is made."""
    r = await client.post("/api/keys", headers=auth(), json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    assert (await client.get("/api/keys", headers=auth())).json() == {"keys": []}


async def test_a_keys_rate_limit_narrows_the_tenants(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """A key limited to 2 a minute is 429 on its third request; the tenant's tokens go on."""
    made = await make_key(client, auth(), rate_limit_per_minute=2)
    statuses = []
    for _ in range(3):
        r = await client.get("/api/documents", headers=bearer(made["key"]))
        statuses.append(r.status_code)
    assert statuses == [200, 200, 429]
    assert r.json()["error"]["code"] == "rate_limited" and "retry-after" in r.headers
    assert (await client.get("/api/documents", headers=auth())).status_code == 200


async def test_reactivation_revives_no_key_or_token_of_before(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """After suspend and activate, keys and tokens issued before the suspension are 401."""
    old_token = {
        "Authorization": "Bearer "
        + issue_token(SECRET, tenant_id="acme", user_id="old", permissions=["documents:read"]),
        "X-Tenant-ID": "acme",
    }
    assert (await client.get("/api/documents", headers=old_token)).status_code == 200
    made = await make_key(client, auth())
    revoked = await make_key(client, auth(), name="revoked")
    await client.delete(f"/api/keys/{revoked['id']}", headers=auth())
    await asyncio.sleep(1.1)  # a token's iat is in whole seconds
    services.store.set_tenant_status("acme", TenantStatus.SUSPENDED)
    assert (await client.get("/api/documents", headers=bearer(made["key"]))).status_code == 403
    await asyncio.sleep(1.1)
    services.store.set_tenant_status("acme", TenantStatus.ACTIVE)
    for headers in (old_token, bearer(made["key"]), bearer(revoked["key"])):
        r = await client.get("/api/documents", headers=headers)
        assert r.status_code == 401, r.text
    assert (await client.get("/api/documents", headers=auth())).status_code == 200


async def test_a_tenant_holds_at_most_100_live_keys(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the cap POST /api/keys is 409 until a key is revoked."""
    from tenantrag.api.routes import keys

    monkeypatch.setattr(keys, "MAX_LIVE_KEYS", 2)
    first = await make_key(client, auth())
    await make_key(client, auth())
    r = await client.post("/api/keys", headers=auth(), json={"name": "x", "permissions": ["query"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    await client.delete(f"/api/keys/{first['id']}", headers=auth())
    await make_key(client, auth())
