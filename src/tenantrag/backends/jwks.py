"""Fetch an identity provider's JSON Web Key Set over HTTP(S) (auth/oidc.py caches it)."""

from __future__ import annotations

from typing import Any

import httpx

MAX_JWKS_BYTES = 1_000_000  # a key set is a few kilobytes; anything huge is refused


class JWKSUnavailable(Exception):
    """The key set could not be fetched or is not a JSON object with a `keys` list."""


def fetch_jwks(url: str, *, timeout_s: float) -> dict[str, Any]:
    """The JWKS document at `url`; TLS certificates are verified, redirects are not followed."""
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
            response = client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise JWKSUnavailable(f"{type(exc).__name__} fetching the JWKS") from exc
    if response.status_code != 200:
        raise JWKSUnavailable(f"the JWKS answered {response.status_code}")
    if len(response.content) > MAX_JWKS_BYTES:
        raise JWKSUnavailable("the JWKS is too large")
    try:
        body = response.json()
    except ValueError as exc:
        raise JWKSUnavailable("the JWKS is not JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise JWKSUnavailable("the JWKS has no 'keys' list")
    return body
