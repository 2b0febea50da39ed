"""An identity provider's tokens (RS256 or ES256), checked against its JWKS.

- Keys come from the provider's JWKS, cached for `jwks_ttl_s`; a token naming an unknown `kid`
  (the provider rotated its keys) refetches it, at most once every `jwks_refetch_min_s`.
- The algorithm is pinned by the key, never taken from the token: an RSA key verifies RS256
  only, an EC P-256 key ES256 only, and a JWK's own `alg` must agree. HS256 tokens never come
  here (credentials.py sends them to our own secret), so no public key can be used as an HMAC
  secret: the RS/HS confusion attack has nothing to work with.
- `iss`, `aud`, `exp`, `iat` are required; `exp`, `nbf` and `iat` allow `leeway_s` of clock
  skew; a token living longer than 24 hours is refused, like ours.
- Claims map to a principal: the tenant from `tenant_claim`, the user from `user_claim`
  (`sub`), permissions from `permissions_claim` (a list, or a space-separated string) where a
  role name (viewer, editor, admin) stands for its permissions and anything else is ignored,
  and clearance from `clearance_claim` (default internal). `platform:admin` is never granted
  by a provider's token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import structlog
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tenantrag.auth import MAX_LIFETIME_S, VerifiedTokens, decode_claims
from tenantrag.errors import AuthenticationError
from tenantrag.models import (
    ROLES,
    Classification,
    Permission,
    Principal,
    is_valid_tenant_id,
    is_valid_user_id,
)
from tenantrag.settings import OIDCSettings

log = structlog.get_logger("tenantrag.oidc")
ALGORITHMS = ("RS256", "ES256")
Fetch = Callable[[], Mapping[str, Any]]


def _algorithm_of(jwk: Mapping[str, Any]) -> str | None:
    """The one algorithm a JWK may verify, by its key type; None for any other key."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    pinned = "RS256" if kty == "RSA" else "ES256" if kty == "EC" and crv == "P-256" else None
    declared = jwk.get("alg")
    if pinned is None or (declared is not None and declared != pinned):
        return None
    if jwk.get("use") not in (None, "sig"):
        return None
    return pinned


class KeySet:
    """The provider's signing keys by `kid`, refetched when stale or when a `kid` is unknown."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl_s: float,
        refetch_min_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl_s, self._refetch_min_s, self._clock = ttl_s, refetch_min_s, clock
        self._keys: dict[str, tuple[str, Any]] = {}  # kid -> (algorithm, public key)
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def key(self, kid: str) -> tuple[str, Any]:
        """(algorithm, public key) for `kid`; AuthenticationError when there is none."""
        now = self._clock()
        with self._lock:
            stale = self._fetched_at is None or now - self._fetched_at >= self._ttl_s
            unknown = kid not in self._keys
            may_refetch = (
                self._attempted_at is None or now - self._attempted_at >= self._refetch_min_s
            )
            if stale or (unknown and may_refetch):
                self._refresh(now)
            found = self._keys.get(kid)
        if found is None:
            raise AuthenticationError("The token's signing key is not one of the issuer's keys.")
        return found

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        self.fetches += 1
        try:
            document = self._fetch()
        except Exception as exc:  # the provider is away: keep the keys we had, say so
            log.warning("jwks_fetch_failed", error=str(exc) or type(exc).__name__)
            return
        keys: dict[str, tuple[str, Any]] = {}
        for jwk in document.get("keys", []):
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            algorithm = _algorithm_of(jwk)
            if algorithm is None:
                continue
            try:
                parser = RSAAlgorithm if algorithm == "RS256" else ECAlgorithm
                keys[jwk["kid"]] = (algorithm, parser.from_jwk(jwk))
            except (jwt.InvalidKeyError, ValueError, KeyError, TypeError):
                log.warning("jwks_key_unusable", kid=jwk["kid"])
        self._keys, self._fetched_at = keys, now


class OIDCVerifier:
    """Verifies a provider's tokens and maps their claims; remembers verified ones until exp."""

    def __init__(self, settings: OIDCSettings, fetch: Fetch, *, max_tokens: int = 10_000) -> None:
        if not settings.enabled:
            raise ValueError("OIDC is not configured")
        self.settings = settings
        self.keys = KeySet(
            fetch, ttl_s=settings.jwks_ttl_s, refetch_min_s=settings.jwks_refetch_min_s
        )
        self._memo = VerifiedTokens(leeway_s=settings.leeway_s, max_tokens=max_tokens)

    def remembered(self, token: str) -> Principal | None:
        """The principal of a token verified before and still within its time, else None."""
        return self._memo.get(token)

    def __call__(self, token: str, header: Mapping[str, Any]) -> Principal:
        """The principal of a provider's token (its unverified header already parsed)."""
        known = self._memo.get(token)
        if known is not None:
            return known
        claims = self._claims(token, header)
        principal = self._principal(claims)
        self._memo.keep(token, principal, claims)
        return principal

    def _claims(self, token: str, header: Mapping[str, Any]) -> dict[str, Any]:
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise AuthenticationError("Identity-provider tokens must be signed RS256 or ES256.")
        if not isinstance(kid, str):
            raise AuthenticationError("The token's header names no signing key (kid).")
        algorithm, key = self.keys.key(kid)
        if alg != algorithm:
            raise AuthenticationError("The token's algorithm does not match its signing key.")
        s = self.settings
        return decode_claims(
            token,
            key,
            algorithm=algorithm,
            leeway_s=s.leeway_s,
            require=["exp", "iat", "iss", "aud"],
            audience=s.audience,
            issuer=s.issuer,
        )

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        s = self.settings
        iat, exp = claims["iat"], claims["exp"]
        if not isinstance(iat, int | float) or not isinstance(exp, int | float):
            raise AuthenticationError("The token's iat and exp must be numbers.")
        if exp - iat > MAX_LIFETIME_S:
            raise AuthenticationError("The token lives longer than 24 hours; issue a shorter one.")
        tenant = claims.get(s.tenant_claim)
        if not isinstance(tenant, str) or not is_valid_tenant_id(tenant):
            raise AuthenticationError(
                f"The token's {s.tenant_claim!r} claim is not a valid tenant id."
            )
        user = claims.get(s.user_claim)
        if not is_valid_user_id(user):
            raise AuthenticationError(f"The token's {s.user_claim!r} claim is not a valid user id.")
        try:
            clearance = Classification.parse(str(claims.get(s.clearance_claim, "internal")))
        except ValueError:
            raise AuthenticationError(
                "The token's clearance is not a known classification."
            ) from None
        jti = claims.get("jti")
        return Principal(
            tenant,
            str(user),
            permissions_from(claims.get(s.permissions_claim)),
            clearance,
            float(iat),
            jti if isinstance(jti, str) and 0 < len(jti) <= 128 else None,
        )


def permissions_from(value: object) -> frozenset[str]:
    """Permissions named by a claim: a list or a space-separated string of permissions and roles.

    Anything that is neither (a provider's groups, scopes of other applications) is ignored:
    deny by default.
    """
    if isinstance(value, str):
        names = value.split()
    elif isinstance(value, list):
        names = [v for v in value if isinstance(v, str)]
    else:
        names = []
    known = {p.value for p in Permission}
    granted: set[str] = set()
    for name in names:
        if name in known:
            granted.add(name)
        elif name in ROLES:
            granted |= {p.value for p in ROLES[name]}
    return frozenset(granted)
