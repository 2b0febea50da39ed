"""Layers 1 and 2: every forged or mismatched request is refused with the contract's error."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from tests.api.conftest import SECRET, TokenFactory

from tenantrag.models import TenantStatus
from tenantrag.services import Services


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "tenant_id": "acme",
        "user_id": "mallory",
        "permissions": ["query"],
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(payload: dict[str, object], secret: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=alg)


def unsigned(payload: dict[str, object], alg: str) -> str:
    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(payload)}."


NOW = int(time.time())
FORGED = {
    "alg none": unsigned(claims(), "none"),
    "alg None": unsigned(claims(), "None"),
    "alg NONE": unsigned(claims(), "NONE"),
    "alg nOnE": unsigned(claims(), "nOnE"),
    "alg none with signature": unsigned(claims(), "none") + "abc",
    "HS512": signed(claims(), alg="HS512"),
    "HS384": signed(claims(), alg="HS384"),
    "wrong secret": signed(claims(), secret="another-secret-that-is-long-enough-32b"),
    "expired": signed(claims(iat=NOW - 7200, exp=NOW - 3600)),
    "not yet valid": signed(claims(iat=NOW + 3600, exp=NOW + 7200)),
    "nbf in future": signed(claims(nbf=NOW + 3600)),
    "no tenant_id": signed(claims(tenant_id=None)),
    "no user_id": signed(claims(user_id=None)),
    "no permissions": signed(claims(permissions=None)),
    "no exp": signed(claims(exp=None)),
    "no iat": signed(claims(iat=None)),
    "lifetime over 24h": signed(claims(exp=NOW + 24 * 3600 + 120)),
    "permissions not a list": signed(claims(permissions="query")),
    "bad clearance": signed(claims(clearance="top-secret")),
    "bad tenant in token": signed(claims(tenant_id="../x")),
    "garbage": "not.a.jwt",
    "two parts": "abc.def",
    "empty": "",
}


@pytest.mark.parametrize("name", FORGED)
async def test_forged_tokens_are_refused_with_401(client: httpx.AsyncClient, name: str) -> None:
    """Every forged, expired, immature or incomplete token gets 401 with WWW-Authenticate."""
    r = await client.get(
        "/api/me", headers={"Authorization": f"Bearer {FORGED[name]}", "X-Tenant-ID": "acme"}
    )
    assert r.status_code == 401, name
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] == "invalid_token"


@pytest.mark.parametrize(
    "header", [None, "Token abc", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer"]
)
async def test_missing_or_malformed_authorization_is_401(
    client: httpx.AsyncClient, header: str | None
) -> None:
    """No Authorization header, or one that is not 'Bearer <token>', gets 401."""
    headers = {"X-Tenant-ID": "acme"}
    if header is not None:
        headers["Authorization"] = header
    r = await client.get("/api/me", headers=headers)
    assert r.status_code == 401
    assert "www-authenticate" in r.headers


async def test_leeway_accepts_a_token_issued_a_few_seconds_ahead(client: httpx.AsyncClient) -> None:
    """A clock skew within the 30 s leeway is accepted; one beyond it is not.

    The tokens are made here, at the moment of the request: made at import, minutes before the
    test runs, "ten seconds ahead" would already lie in the past and test nothing.
    """
    now = int(time.time())
    for ahead, status in ((10, 200), (90, 401)):
        token = signed(claims(iat=now + ahead, exp=now + 600))
        r = await client.get(
            "/api/me", headers={"Authorization": f"Bearer {token}", "X-Tenant-ID": "acme"}
        )
        assert r.status_code == status, ahead


async def test_valid_token_is_accepted(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    """A well-formed token for an active tenant reaches the route."""
    r = await client.get("/api/me", headers=auth("acme", permissions=["query"]))
    assert r.status_code == 200
    assert r.json() == {
        "tenant_id": "acme",
        "user_id": "alice",
        "permissions": ["query"],
        "clearance": "internal",
        "rate_limit_per_minute": 100,
    }


@pytest.mark.parametrize(
    "tenant", ["../x", "ACME", "a" * 80, "acme\n", "", "-acme", "a", "ac me", "acme_1"]
)
async def test_malformed_tenant_header_is_400(
    client: httpx.AsyncClient, auth: TokenFactory, tenant: str
) -> None:
    """X-Tenant-ID that does not match the pattern gets 400."""
    headers = auth("acme")
    headers["X-Tenant-ID"] = tenant
    r = await client.get("/api/me", headers=headers)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_tenant_header"


async def test_missing_tenant_header_is_400(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    """A request without X-Tenant-ID gets 400."""
    headers = auth("acme")
    del headers["X-Tenant-ID"]
    r = await client.get("/api/me", headers=headers)
    assert r.status_code == 400


async def test_header_naming_another_tenant_is_403(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """A token for acme with X-Tenant-ID globex gets 403 tenant_mismatch."""
    headers = auth("acme")
    headers["X-Tenant-ID"] = "globex"
    r = await client.get("/api/me", headers=headers)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "tenant_mismatch"


async def test_unknown_tenant_is_403(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    """A correctly signed token for a tenant that does not exist gets 403."""
    r = await client.get("/api/me", headers=auth("initech"))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "tenant_unavailable"


async def test_suspended_tenant_is_403(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Suspending a tenant refuses its next request; reactivating serves it again."""
    assert (await client.get("/api/me", headers=auth("acme"))).status_code == 200
    services.store.set_tenant_status("acme", TenantStatus.SUSPENDED)
    r = await client.get("/api/me", headers=auth("acme"))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "tenant_unavailable"
    services.store.set_tenant_status("acme", TenantStatus.ACTIVE)
    assert (await client.get("/api/me", headers=auth("acme"))).status_code == 200


async def test_auth_failures_go_to_the_security_log_not_a_tenant_chain(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Refusals before a verified credential are counted by client address, in no tenant's chain.

    The X-Tenant-ID they claim is unverified: writing into that tenant's chain would let anyone
    fill it. The security log holds the count by code and the claimed tenants, never the token.
    """
    before = services.store.audit_head()
    bad = FORGED["wrong secret"]
    mismatched = auth("acme") | {"X-Tenant-ID": "globex"}
    for headers in (
        {"Authorization": f"Bearer {bad}", "X-Tenant-ID": "acme"},
        {"Authorization": f"Bearer {bad}", "X-Tenant-ID": "acme"},
        {"X-Tenant-ID": "globex"},
        mismatched,
    ):
        assert (await client.get("/api/me", headers=headers)).status_code in (401, 403)
    assert services.store.audit_head() == before
    services.security_log.flush()
    (row,) = services.store.security_log(limit=10)
    assert (row.client, row.event, row.count) == ("127.0.0.1", "auth_failure", 4)
    assert row.detail["codes"] == {"invalid_token": 3, "tenant_mismatch": 1}
    assert row.detail["claimed_tenants"] == ["acme", "globex"]
    assert bad not in json.dumps(row.detail) and row.window_end > row.window_start


async def test_audit_route_returns_only_the_callers_tenant(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """GET /api/audit needs audit:read and never shows another tenant's or tenantless records."""
    await client.get("/api/me", headers=auth("globex"))
    bad = FORGED["wrong secret"]
    await client.get("/api/me", headers={"Authorization": f"Bearer {bad}", "X-Tenant-ID": "acme"})
    await client.get("/api/documents", headers=auth("acme", permissions=["query"]))  # denied
    assert (
        await client.get("/api/audit", headers=auth("acme", permissions=["query"]))
    ).status_code == 403
    r = await client.get("/api/audit", headers=auth("acme", permissions=["audit:read"]))
    assert r.status_code == 200
    records = r.json()["records"]
    assert records and all(rec["tenant_id"] == "acme" for rec in records)
    actions = {rec["action"] for rec in records}
    assert "permission_denied" in actions and "auth_failure" not in actions
    other = (
        await client.get("/api/audit", headers=auth("globex", permissions=["audit:read"]))
    ).json()
    assert all(rec["tenant_id"] == "globex" for rec in other["records"])
