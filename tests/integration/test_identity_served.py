"""The issue's bar, checked from outside against a real `tenantrag serve` process.

An identity provider's RS256 token from a JWKS served over HTTP (tests/api/test_oidc.py's
stand-in for the provider) is accepted and a forged one refused; a key made by POST /api/keys
works and is refused within 1 s of its DELETE; a tenant erased through the admin API leaves its
canary in no byte of the data folder. Settings come from the environment, as an operator sets
them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.test_oidc import AUDIENCE, ISSUER, JWKSServer, SigningKey
from tests.integration.conftest import SECRET, Server

from tenantrag.auth import issue_platform_token, issue_token

pytestmark = [pytest.mark.integration]


@pytest.fixture
def idp() -> Iterator[tuple[JWKSServer, SigningKey]]:
    """A provider publishing one RSA key."""
    key = SigningKey("served-1")
    with JWKSServer() as server:
        server.keys = [key.jwk]
        yield server, key


def test_oidc_keys_and_erasure_on_a_served_node(
    cluster: Callable[..., Server],
    tenant: Callable[..., tuple[str, dict[str, str]]],
    idp: tuple[JWKSServer, SigningKey],
    tmp_path: Path,
) -> None:
    """The three checks of the issue's bar, over HTTP to a real server."""
    jwks, signing = idp
    server = cluster(
        redis=False,
        env={
            "TENANTRAG_OIDC__ISSUER": ISSUER,
            "TENANTRAG_OIDC__JWKS_URL": jwks.url,
            "TENANTRAG_OIDC__AUDIENCE": AUDIENCE,
        },
    )
    tid, _ = tenant()
    http = httpx.Client(base_url=server.base_url, timeout=30)

    def me(credential: str) -> int:
        headers = {"Authorization": f"Bearer {credential}", "X-Tenant-ID": tid}
        return http.get("/api/me", headers=headers).status_code

    # 1. The provider's token is accepted; one signed by another key under its kid is not.
    assert me(signing.sign(tenant_id=tid)) == 200
    assert me(SigningKey("served-1").sign(tenant_id=tid)) == 401
    # 2. A key made by POST /api/keys works, and is refused within 1 s of its DELETE.
    admin = issue_token(SECRET, tenant_id=tid, user_id="ops", permissions=["keys:admin", "query"])
    manager = {"Authorization": f"Bearer {admin}", "X-Tenant-ID": tid}
    made = http.post("/api/keys", headers=manager, json={"name": "ci", "permissions": ["query"]})
    assert made.status_code == 201, made.text
    assert me(made.json()["key"]) == 200
    assert http.delete(f"/api/keys/{made.json()['id']}", headers=manager).status_code == 204
    started = time.monotonic()
    while me(made.json()["key"]) != 401:
        assert time.monotonic() - started < 1.0, "the revoked key still works after 1 s"
        time.sleep(0.05)
    # 3. Erased through the admin API: the canary is in no byte of the data folder.
    canary = f"served-canary-{uuid.uuid4().hex[:10]}"
    writer = issue_token(SECRET, tenant_id=tid, user_id="ops", permissions=["documents:write"])
    r = http.post(
        "/api/documents",
        headers={"Authorization": f"Bearer {writer}", "X-Tenant-ID": tid},
        json={"documents": [{"id": "c", "title": canary, "text": f"The code is {canary}."}]},
    )
    assert r.status_code == 201, r.text
    data = tmp_path / "data"
    assert any(canary.encode() in p.read_bytes() for p in data.rglob("*") if p.is_file())
    platform = {"Authorization": "Bearer " + issue_platform_token(SECRET, user_id="checker")}
    assert http.delete(f"/api/admin/tenants/{tid}", headers=platform).status_code == 202
    left = [str(p) for p in data.rglob("*") if p.is_file() and canary.encode() in p.read_bytes()]
    assert left == []
    http.close()
