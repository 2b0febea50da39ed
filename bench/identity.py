"""What checking a credential costs: the key's HMAC against a slow hash, and each kind end to end.

Measured in-process on the real code (`Authenticator`, `OIDCVerifier`) over a real SQLite store:

- `hmac_us`: one HMAC-SHA256 of a key's secret (what every keyed request computes);
- `scrypt_ms`: one scrypt at the interactive cost (n=2**14, r=8, p=1: 16 MiB), standing in for
  the slow password hashes (argon2 is not installed here; scrypt is in the standard library and
  of the same family: memory-hard, tuned to tens of milliseconds);
- `key_us`, `token_us`, `oidc_us`: `Authenticator` on an API key (row cached), an HS256 token
  (verified before, so remembered) and a provider's RS256 token (first use: signature checked);
- `oidc_cached_us`: the same RS256 token again.

Run: .venv/bin/python -m bench.identity [--out bench/results/identity.json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tenantrag.auth import issue_token
from tenantrag.auth.credentials import Authenticator
from tenantrag.auth.keys import key_hash, new_key, pepper_from
from tenantrag.auth.oidc import OIDCVerifier
from tenantrag.backends.store import ChangeRecords
from tenantrag.backends.store.identity import ApiKey
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import AuditEvent, Classification, Tenant
from tenantrag.settings import OIDCSettings

SECRET = "bench-identity-secret-0123456789-abcdefgh"  # noqa: S105  # a benchmark's own


def per_call_us(fn: Any, n: int) -> float:
    """Median microseconds per call over 5 rounds of n calls."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


async def measure() -> dict[str, float]:
    """Every figure of the module docstring."""
    pepper = pepper_from(SECRET)
    _, secret, _ = new_key()
    results = {"hmac_us": per_call_us(lambda: key_hash(pepper, secret), 20_000)}
    start = time.perf_counter()
    for _ in range(10):
        hashlib.scrypt(secret.encode(), salt=b"0" * 16, n=2**14, r=8, p=1, maxmem=64 * 2**20)
    results["scrypt_ms"] = (time.perf_counter() - start) / 10 * 1000

    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "bench.db")
        store.open()
        store.create_tenant(Tenant(id="acme"))
        key_id, secret, full = new_key()
        key = ApiKey(
            key_id, "acme", "b", ("query",), Classification.INTERNAL, None, "b", time.time()
        )
        records = ChangeRecords(AuditEvent("api_key_created", "success", "acme", "b"))
        store.create_api_key(key, key_hash(pepper, secret), records)
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True) | {"kid": "k1"}
        oidc = OIDCVerifier(
            OIDCSettings(issuer="https://idp", jwks_url="http://unused", audience="t"),
            lambda: {"keys": [jwk]},
        )
        auth = Authenticator(SECRET, store, oidc=oidc, recheck_s=3600)
        token = issue_token(SECRET, tenant_id="acme", user_id="u", permissions=["query"])

        def provider_token() -> str:
            now = int(time.time())
            claims = {
                "iss": "https://idp",
                "aud": "t",
                "sub": "u",
                "tenant_id": "acme",
                "iat": now,
                "exp": now + 600,
                "nonce": os.urandom(8).hex(),
            }
            return jwt.encode(claims, private, algorithm="RS256", headers={"kid": "k1"})

        async def avg_us(credentials: list[str]) -> float:
            await auth(credentials[0])  # warm: rows, memo, revocation list
            start = time.perf_counter()
            for c in credentials:
                await auth(c)
            return (time.perf_counter() - start) / len(credentials) * 1e6

        results["key_us"] = await avg_us([full] * 5000)
        results["token_us"] = await avg_us([token] * 5000)
        fresh = [provider_token() for _ in range(300)]
        results["oidc_us"] = await avg_us(fresh)
        results["oidc_cached_us"] = await avg_us([fresh[0]] * 5000)
        store.close()
    return results


def main() -> None:
    """Print the figures (and write them as JSON with --out)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = asyncio.run(measure())
    for name, value in results.items():
        print(f"{name:16} {value:10.2f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
