"""An identity provider's RS256/ES256 tokens, checked against its JWKS served over real HTTP.

`JWKSServer` stands in for the identity provider (Keycloak, Entra ID, Okta...): it serves the
JSON Web Key Set document at /jwks over HTTP from a thread on 127.0.0.1, exactly the wire
format a provider serves, and its keys can be rotated while the app runs. The tokens are signed
here with the matching private keys, as the provider would sign them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import SecretStr
from tests.api.conftest import SECRET

from tenantrag.services import Services
from tenantrag.settings import OIDCSettings, Settings

ISSUER = "https://idp.example.test/realms/acme"
AUDIENCE = "tenantrag"


class JWKSServer:
    """Serves `keys` as a JWKS at http://127.0.0.1:<port>/jwks and counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  # http.server's name
                outer.fetches += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200 if self.path == "/jwks" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for the serving loop's next poll (0.5 s by
        # default), and every test starts and stops its own provider.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """The JWKS address."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks"

    def __enter__(self) -> JWKSServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class SigningKey:
    """A provider's private key with its kid, and its public JWK."""

    def __init__(self, kid: str, kind: str = "RSA") -> None:
        self.kid, self.alg = kid, "RS256" if kind == "RSA" else "ES256"
        if kind == "RSA":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk.update(kid=kid, use="sig", alg=self.alg)

    def public_pem(self) -> bytes:
        """The public key as PEM (what an RS/HS confusion attack uses as an HMAC secret)."""
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(self, **overrides: Any) -> str:
        """A token for alice of acme, valid now, with `overrides` applied to the claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice@acme",
            "tenant_id": "acme",
            "permissions": ["query", "documents:read", "documents:write"],
            "iat": now,
            "exp": now + 300,
            "jti": f"oidc-{time.time_ns()}",
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid})


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    """The provider's RSA key, `rsa-1`."""
    return SigningKey("rsa-1")


@pytest.fixture
def idp(rsa_key: SigningKey) -> Iterator[JWKSServer]:
    """A provider serving `rsa-1` only."""
    with JWKSServer() as server:
        server.keys = [rsa_key.jwk]
        yield server


@pytest.fixture
def settings(tmp_path: Path, model_dir: Path, idp: JWKSServer) -> Settings:
    """The API's settings with OIDC on (refetching on an unknown kid at once)."""
    return Settings(
        data_dir=tmp_path / "data",
        jwt_secret=SecretStr(SECRET),
        redis_url=None,
        model_dir=model_dir.parent,
        oidc=OIDCSettings(
            issuer=ISSUER,
            jwks_url=idp.url,
            audience=AUDIENCE,
            jwks_refetch_min_s=0,
        ),
    )


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def bearer(token: str, tenant: str = "acme") -> dict[str, str]:
    """Headers sending `token`."""
    return {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant}


async def status(client: httpx.AsyncClient, token: str, tenant: str = "acme") -> int:
    """The status of GET /api/documents with `token`."""
    return (await client.get("/api/documents", headers=bearer(token, tenant))).status_code


async def test_a_providers_rs256_and_es256_tokens_are_accepted(
    client: httpx.AsyncClient, idp: JWKSServer, rsa_key: SigningKey
) -> None:
    """Tokens signed by keys of the JWKS work on every route their permissions allow."""
    ec_key = SigningKey("ec-1", "EC")
    idp.keys = [rsa_key.jwk, ec_key.jwk]
    for key in (rsa_key, ec_key):
        r = await client.post(
            "/api/documents",
            headers=bearer(key.sign()),
            json={"documents": [{"id": key.kid, "text": "The ferry leaves at noon."}]},
        )
        assert r.status_code == 201, r.text
    r = await client.get("/v1/models", headers={"Authorization": f"Bearer {rsa_key.sign()}"})
    assert r.status_code == 200, r.text  # /v1: the tenant comes from the token's claim


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"iss": "https://evil.example.test"}, "issuer"),
        ({"aud": "another-app"}, "audience"),
        ({"exp": int(time.time()) - 120, "iat": int(time.time()) - 600}, "expired"),
        ({"nbf": int(time.time()) + 600}, "not valid yet"),
        ({"iat": None}, "iat"),
        ({"tenant_id": None}, "tenant"),
        ({"tenant_id": "Not A Tenant"}, "tenant"),
        ({"sub": None}, "user"),
        ({"exp": int(time.time()) + 90_000}, "24 hours"),
        ({"clearance": "cosmic"}, "clearance"),
    ],
)
async def test_bad_claims_are_401(
    client: httpx.AsyncClient, rsa_key: SigningKey, claims: dict[str, Any], why: str
) -> None:
    """Wrong issuer or audience, time claims out of range, unusable tenant or user: 401."""
    r = await client.get("/api/documents", headers=bearer(rsa_key.sign(**claims)))
    assert r.status_code == 401, why
    assert r.json()["error"]["code"] == "invalid_token"


async def test_forged_and_confused_tokens_are_refused(
    client: httpx.AsyncClient, rsa_key: SigningKey
) -> None:
    """Another key under a known kid, HS256 keyed with the public key, alg none, ES on RSA: 401."""
    impostor = SigningKey("rsa-1")  # same kid, different private key
    assert await status(client, impostor.sign()) == 401
    claims = jwt.decode(rsa_key.sign(), options={"verify_signature": False})
    # The RS/HS confusion attack: HMAC keyed with the provider's public key, kid of that key.
    # PyJWT refuses to make one, so it is made by hand: HMAC-SHA256 over header.payload.
    signing_input = b".".join(
        _b64(json.dumps(part).encode())
        for part in ({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims)
    )
    mac = hmac.new(rsa_key.public_pem(), signing_input, hashlib.sha256).digest()
    confused = (signing_input + b"." + _b64(mac)).decode()
    assert await status(client, confused) == 401
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "rsa-1"})
    assert await status(client, unsigned) == 401
    ec_key = SigningKey("rsa-1", "EC")  # an ES256 token naming the RSA key
    assert await status(client, ec_key.sign()) == 401
    assert await status(client, rsa_key.sign()) == 200


async def test_key_rotation_is_picked_up_and_old_keys_go(
    client: httpx.AsyncClient, idp: JWKSServer, rsa_key: SigningKey
) -> None:
    """A token of a new kid refetches the JWKS; a key dropped from it stops working."""
    assert await status(client, rsa_key.sign()) == 200
    rotated = SigningKey("rsa-2")
    assert await status(client, rotated.sign()) == 401  # not published yet
    idp.keys = [rsa_key.jwk, rotated.jwk]
    assert await status(client, rotated.sign()) == 200
    idp.keys = [rotated.jwk]
    fresh_old = rsa_key.sign()  # a new token under the retired key: unknown after a refetch
    impostor_kid = SigningKey("rsa-3")
    assert await status(client, impostor_kid.sign()) == 401  # unknown kid: refetch drops rsa-1
    assert await status(client, fresh_old) == 401


async def test_unknown_kids_refetch_at_most_once_per_interval(
    rsa_key: SigningKey, idp: JWKSServer
) -> None:
    """A flood of made-up kids costs the provider one fetch per `jwks_refetch_min_s`."""
    from tenantrag.auth.oidc import OIDCVerifier
    from tenantrag.backends.jwks import fetch_jwks
    from tenantrag.errors import AuthenticationError

    oidc = OIDCSettings(issuer=ISSUER, jwks_url=idp.url, audience=AUDIENCE, jwks_refetch_min_s=60)
    verify = OIDCVerifier(oidc, lambda: fetch_jwks(idp.url, timeout_s=3))
    token = rsa_key.sign()
    assert verify(token, jwt.get_unverified_header(token)).user_id == "alice@acme"
    before = idp.fetches
    for i in range(20):
        forged = SigningKey(f"made-up-{i}") if i < 2 else SigningKey("made-up-0")
        bad = forged.sign()
        with pytest.raises(AuthenticationError):
            verify(bad, jwt.get_unverified_header(bad))
    assert idp.fetches == before  # the last fetch was under 60 s ago


async def test_claims_map_to_tenant_user_permissions_and_clearance(
    client: httpx.AsyncClient, services: Services, rsa_key: SigningKey
) -> None:
    """Roles expand, unknown names and platform:admin are ignored, clearance bounds reads."""
    writer = rsa_key.sign(permissions=["editor", "group:staff", "platform:admin"])
    r = await client.post(
        "/api/documents",
        headers=bearer(writer),
        json={
            "documents": [
                {"id": "pub", "text": "Canteen menus are public.", "classification": "public"},
                {
                    "id": "sec",
                    "text": "Canteen budget is confidential.",
                    "classification": "confidential",
                },
            ]
        },
    )
    assert r.status_code == 201, r.text
    r = await client.get("/api/usage", headers=bearer(writer))
    assert r.status_code == 403  # an editor has no usage:read
    r = await client.get("/api/admin/tenants", headers={"Authorization": f"Bearer {writer}"})
    assert r.status_code == 403
    low = rsa_key.sign(permissions="query documents:read", clearance="public")
    listed = (await client.get("/api/documents", headers=bearer(low))).json()["documents"]
    assert [d["id"] for d in listed] == ["pub"]
    r = await client.get("/api/documents", headers=bearer(rsa_key.sign(), tenant="globex"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_mismatch"
    record = next(
        a for a, _ in services.store.iter_audit() if isinstance(a, dict) and a["action"] == "ingest"
    )
    assert record["user_id"] == "alice@acme"


async def test_a_token_issued_before_its_tenant_existed_is_refused(
    client: httpx.AsyncClient, services: Services, rsa_key: SigningKey
) -> None:
    """The provider's iat counts like ours: before the tenant's creation it is refused."""
    from tenantrag.models import Tenant

    early = rsa_key.sign(tenant_id="initech", iat=int(time.time()) - 60)
    services.store.create_tenant(Tenant(id="initech"))
    assert await status(client, early, tenant="initech") == 401
    assert await status(client, rsa_key.sign(tenant_id="initech"), tenant="initech") == 200


async def test_a_revoked_providers_jti_is_refused(
    client: httpx.AsyncClient, services: Services, rsa_key: SigningKey
) -> None:
    """`tenantrag token revoke` works on a provider's jti too, within a second."""
    from tenantrag.backends.store import ChangeRecords
    from tenantrag.models import AuditEvent

    token = rsa_key.sign(jti="provider-jti-1")
    assert await status(client, token) == 200
    records = ChangeRecords(AuditEvent("token_revoked", "success", None, "ops"))
    services.store.revoke_token("provider-jti-1", time.time() + 600, records)
    time.sleep(0.6)
    assert await status(client, token) == 401
