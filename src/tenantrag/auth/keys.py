"""API keys: `trk_<id>_<secret>`, shown once, stored as a keyed hash of the secret.

The construction is HMAC-SHA256(pepper, secret), hex. The pepper is derived from the server's
signing secret (HMAC-SHA256(secret, "tenantrag api-key pepper v1")), so a copy of the database
alone does not let anyone test guesses: they also need the secret, which is never stored beside
the rows.

Why not bcrypt or argon2: those slow hashes exist to protect low-entropy passwords from
guessing. A key's secret is 32 random bytes (256 bits) from `secrets`; no guess of it succeeds,
slow or fast, so a deliberately slow hash buys nothing. Meanwhile every request with a key must
check it: a slow hash at its recommended cost takes tens to hundreds of milliseconds and tens
of megabytes per check (scrypt's interactive cost: 141 ms here), which on a 2-core machine
would cap the service at a few keyed requests a second and hand anyone sending bad keys an easy
way to exhaust it. The keyed HMAC costs a few microseconds (6.7 µs, docs/benchmarks/identity.md);
the comparison is constant-time (`hmac.compare_digest`).

`id` is the lookup prefix: 12 lowercase hex characters, the key's public name (GET and DELETE
/api/keys use it), found by primary key before the secret is checked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_PREFIX = "trk_"
_ID_BYTES = 6
_SECRET_BYTES = 32
KEY_ID = re.compile(r"[0-9a-f]{12}")  # new_key's ids: _ID_BYTES hex-encoded
KEY_PATTERN = re.compile(r"trk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
PEPPER_LABEL = b"tenantrag api-key pepper v1"


def looks_like_key(credential: str) -> bool:
    """True when the bearer credential is meant as an API key (whether or not well formed)."""
    return credential.startswith(KEY_PREFIX)


def new_key() -> tuple[str, str, str]:
    """A fresh key: (id, secret, the full key to show once)."""
    key_id = secrets.token_hex(_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)  # 43 characters of base64url
    return key_id, secret, f"{KEY_PREFIX}{key_id}_{secret}"


def parse_key(credential: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, or None."""
    found = KEY_PATTERN.fullmatch(credential)
    return None if found is None else (found.group(1), found.group(2))


def pepper_from(signing_secret: str) -> bytes:
    """The key-hashing pepper derived from the server's signing secret."""
    return hmac.new(signing_secret.encode(), PEPPER_LABEL, hashlib.sha256).digest()


def key_hash(pepper: bytes, secret: str) -> str:
    """HMAC-SHA256 of the key's secret under the pepper, hex: all the store keeps of it."""
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def matches(pepper: bytes, secret: str, stored_hash: str) -> bool:
    """Whether `secret` is the one whose hash was stored (constant-time)."""
    return hmac.compare_digest(key_hash(pepper, secret), stored_hash)
