"""Credentials: our HS256 tokens (issue, verify), the signing secret, and the modules beside it.

keys.py         API keys `trk_<id>_<secret>`: making them and their keyed hash
oidc.py         an identity provider's RS256/ES256 tokens, checked against its JWKS
credentials.py  `Authenticator`: any bearer credential to a principal, revocations included

docs/identity.md describes the whole; the auth middleware calls `Authenticator`.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import jwt

from tenantrag.errors import AuthenticationError
from tenantrag.models import (
    MAX_USER_ID_CHARS,
    PLATFORM_ADMIN,
    PLATFORM_TENANT,
    Classification,
    Permission,
    Principal,
    is_valid_tenant_id,
    is_valid_user_id,
)
from tenantrag.settings import MIN_SECRET_BYTES, Settings

ALGORITHM = "HS256"
MAX_LIFETIME_S = 24 * 3600
LEEWAY_S = 30
REQUIRED_CLAIMS = ["tenant_id", "user_id", "permissions", "exp", "iat"]


def resolve_secret(settings: Settings, *, create: bool = False) -> str:
    """The signing secret: TENANTRAG_JWT_SECRET, else the file under the data folder.

    With `create`, a missing file is made (random 48 bytes, mode 0600). Without it, a missing
    secret is an error that says how to set one.
    """
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    path = settings.secret_file
    if path.exists():
        value = path.read_text().strip()
        if len(value.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the secret in {path} is shorter than {MIN_SECRET_BYTES} bytes")
        return value
    if not create:
        raise ValueError(
            "No signing secret: set TENANTRAG_JWT_SECRET (at least 32 bytes) or run"
            " `tenantrag serve` once to create one under the data folder."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def issue_token(
    secret: str,
    *,
    tenant_id: str,
    user_id: str,
    permissions: Iterable[str],
    clearance: Classification = Classification.INTERNAL,
    ttl_s: int = 3600,
    now: float | None = None,
) -> str:
    """A signed token for `user_id` in `tenant_id`; the lifetime is capped at 24 h."""
    if not is_valid_tenant_id(tenant_id):
        raise ValueError(f"{tenant_id!r} is not a valid tenant id")
    if not is_valid_user_id(user_id):
        raise ValueError(
            f"a user id is 1 to {MAX_USER_ID_CHARS} characters, with no control characters"
        )
    unknown = set(permissions) - {p.value for p in Permission}
    if unknown:
        raise ValueError(f"unknown permissions: {', '.join(sorted(unknown))}")
    if not 0 < ttl_s <= MAX_LIFETIME_S:
        raise ValueError(f"ttl must be between 1 and {MAX_LIFETIME_S} seconds")
    return _signed(secret, tenant_id, user_id, sorted(set(permissions)), clearance, ttl_s, now)


def issue_platform_token(
    secret: str, *, user_id: str, ttl_s: int = 3600, now: float | None = None
) -> str:
    """A platform operator's token: tenant `_platform`, permission `platform:admin` only.

    It manages tenants on /api/admin/* and is refused everywhere else.
    """
    if not is_valid_user_id(user_id):
        raise ValueError(
            f"a user id is 1 to {MAX_USER_ID_CHARS} characters, with no control characters"
        )
    if not 0 < ttl_s <= MAX_LIFETIME_S:
        raise ValueError(f"ttl must be between 1 and {MAX_LIFETIME_S} seconds")
    return _signed(
        secret, PLATFORM_TENANT, user_id, [PLATFORM_ADMIN], Classification.PUBLIC, ttl_s, now
    )


def _signed(
    secret: str,
    tenant_id: str,
    user_id: str,
    permissions: list[str],
    clearance: Classification,
    ttl_s: int,
    now: float | None,
) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "permissions": permissions,
        "clearance": clearance.label,
        "iat": issued,
        "exp": issued + ttl_s,
        # the id `tenantrag token revoke` names; tokens without one (minted before) still work
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str) -> Principal:
    """The principal a token names; AuthenticationError for anything short of perfect."""
    return _principal(_verified_claims(token, secret))


class VerifiedTokens:
    """Tokens verified before, remembered until they expire (ours and the provider's alike).

    A client sends the same token with every request, and checking it (base64, a signature,
    claims) costs more than the rest of the gateway together. A remembered token is still
    checked against the clock on every use, with the same leeway as a full check; anything but
    a valid, unexpired token takes the full path (so refusals and their messages are
    unchanged), and nothing refused is remembered. The memo lives in this process only and
    holds at most `max_tokens` entries (past that it starts again empty).
    """

    def __init__(self, *, leeway_s: float, max_tokens: int = 10_000) -> None:
        self.leeway_s = leeway_s
        self._max_tokens = max_tokens
        self._verified: dict[str, tuple[Principal, float, float]] = {}

    def get(self, token: str) -> Principal | None:
        """The principal of a token verified before and still within its time, else None."""
        known = self._verified.get(token)
        if known is None:
            return None
        now, leeway = time.time(), self.leeway_s
        principal, not_before, expires = known
        return principal if not_before <= now + leeway and now - leeway < expires else None

    def keep(self, token: str, principal: Principal, claims: Mapping[str, Any]) -> None:
        """Remember a token just verified in full, valid from its `iat`/`nbf` to its `exp`."""
        if len(self._verified) >= self._max_tokens:
            self._verified = {}
        not_before = max(float(claims["iat"]), float(claims.get("nbf", claims["iat"])))
        self._verified[token] = (principal, not_before, float(claims["exp"]))

    def __len__(self) -> int:
        return len(self._verified)


class TokenVerifier:
    """`verify_token` with one secret, remembering verified tokens (see VerifiedTokens)."""

    def __init__(self, secret: str, *, max_tokens: int = 10_000) -> None:
        self._secret = secret
        self._memo = VerifiedTokens(leeway_s=LEEWAY_S, max_tokens=max_tokens)

    def remembered(self, token: str) -> Principal | None:
        """The principal of a token verified before and still within its time, else None."""
        return self._memo.get(token)

    def __call__(self, token: str) -> Principal:
        """The principal `token` names, or AuthenticationError."""
        known = self._memo.get(token)
        if known is not None:
            return known
        claims = _verified_claims(token, self._secret)
        principal = _principal(claims)
        self._memo.keep(token, principal, claims)
        return principal


def _verified_claims(token: str, secret: str) -> dict[str, Any]:
    """The claims of a token whose header, signature and time claims check out."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthenticationError("The bearer token is malformed; send a signed JWT.") from None
    if header.get("alg") != ALGORITHM:
        raise AuthenticationError("Only HS256-signed tokens are accepted.")
    return decode_claims(
        token,
        secret,
        algorithm=ALGORITHM,
        leeway_s=LEEWAY_S,
        require=list(REQUIRED_CLAIMS),
    )


def decode_claims(
    token: str,
    key: Any,
    *,
    algorithm: str,
    leeway_s: float,
    require: list[str],
    audience: str | None = None,
    issuer: str | None = None,
) -> dict[str, Any]:
    """A JWT's claims, verified with `key` by `algorithm` only; AuthenticationError saying why not.

    One mapping of PyJWT's refusals to our messages, for our tokens and the provider's alike.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            leeway=leeway_s,
            options={"require": require, "verify_iat": True},
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationError("The token has expired; ask for a new one.") from None
    except jwt.ImmatureSignatureError:
        raise AuthenticationError("The token is not valid yet; check the issuer's clock.") from None
    except jwt.InvalidAudienceError:
        raise AuthenticationError("The token was issued for another audience.") from None
    except jwt.InvalidIssuerError:
        raise AuthenticationError("The token was issued by another issuer.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthenticationError(f"The token lacks the {exc.claim!r} claim.") from None
    except jwt.InvalidTokenError:
        raise AuthenticationError("The token's signature or claims are invalid.") from None
    return claims


def _principal(claims: dict[str, Any]) -> Principal:
    iat, exp = claims["iat"], claims["exp"]
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise AuthenticationError("The token's iat and exp must be numbers.")
    if exp - iat > MAX_LIFETIME_S:
        raise AuthenticationError("The token lives longer than 24 hours; issue a shorter one.")
    tenant, user, perms = claims["tenant_id"], claims["user_id"], claims["permissions"]
    jti = claims.get("jti")
    if jti is not None and (not isinstance(jti, str) or not 0 < len(jti) <= 128):
        raise AuthenticationError("The token's jti must be a string of 1 to 128 characters.")
    if tenant == PLATFORM_TENANT:
        if perms != [PLATFORM_ADMIN] or not is_valid_user_id(user):
            raise AuthenticationError("A platform token carries platform:admin and nothing else.")
        return Principal(tenant, user, frozenset(perms), Classification.PUBLIC, float(iat), jti)
    if not isinstance(tenant, str) or not is_valid_tenant_id(tenant):
        raise AuthenticationError("The token's tenant_id is not a valid tenant id.")
    if not is_valid_user_id(user):
        raise AuthenticationError(
            f"The token's user_id must be 1 to {MAX_USER_ID_CHARS} characters, with no control"
            " characters; ask your issuer for a valid token."
        )
    if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
        raise AuthenticationError("The token's permissions must be a list of strings.")
    if PLATFORM_ADMIN in perms:  # only the platform's own tokens carry it
        raise AuthenticationError("A tenant's token cannot carry platform:admin.")
    try:
        clearance = Classification.parse(str(claims.get("clearance", "internal")))
    except ValueError:
        raise AuthenticationError("The token's clearance is not a known classification.") from None
    return Principal(tenant, user, frozenset(perms), clearance, float(iat), jti)
