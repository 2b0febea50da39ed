"""Authenticator: how fresh its view of keys and revocations is, and what it does when blind.

Over a real SQLite store. `Outage` wraps it to fail on demand (the way a database that went
away fails: every read raises), since a store cannot be made unreachable on cue otherwise.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tenantrag.auth import issue_token
from tenantrag.auth.credentials import Authenticator
from tenantrag.auth.keys import key_hash, new_key, parse_key, pepper_from
from tenantrag.auth.oidc import permissions_from
from tenantrag.backends.store import ChangeRecords
from tenantrag.backends.store.identity import ApiKey
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.errors import AuthenticationError, DependencyUnavailable
from tenantrag.models import AuditEvent, Classification, Tenant
from tenantrag.settings import OIDCSettings

SECRET = "credentials-unit-secret-0123456789-abcdefg"


class Outage:
    """The store, or an error on every read while `down`."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store, self.down, self.reads = store, False, 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            if self.down:
                raise ConnectionError("the database went away")
            return method(*args, **kwargs)

        return call


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    """A store with the tenant acme."""
    made = SQLiteStore(tmp_path / "s.db")
    made.open()
    made.create_tenant(Tenant(id="acme"))
    return made


def make_key(store: SQLiteStore) -> tuple[str, str]:
    """A live key of acme: (id, the full key)."""
    key_id, secret, full = new_key()
    key = ApiKey(key_id, "acme", "k", ("query",), Classification.INTERNAL, 5, "u", time.time())
    records = ChangeRecords(AuditEvent("api_key_created", "success", "acme", "u"))
    store.create_api_key(key, key_hash(pepper_from(SECRET), secret), records)
    return key_id, full


def revoke(store: SQLiteStore, key_id: str) -> None:
    """Revoke the key in the store (as another node would)."""
    store.revoke_api_key(
        "acme", key_id, ChangeRecords(AuditEvent("api_key_revoked", "success", "acme", "u"))
    )


async def test_a_key_revoked_elsewhere_is_refused_once_the_copy_is_older_than_recheck(
    store: SQLiteStore,
) -> None:
    """Within recheck_s the node's copy answers; after it, the store's revocation shows."""
    now = [1000.0]
    auth = Authenticator(SECRET, store, recheck_s=0.5, clock=lambda: now[0])
    key_id, full = make_key(store)
    principal = await auth(full)
    assert (principal.key_id, principal.rate_limit, principal.user_id) == (
        key_id,
        5,
        f"key:{key_id}",
    )
    revoke(store, key_id)
    now[0] += 0.4
    assert (await auth(full)).key_id == key_id  # the copy is 0.4 s old
    now[0] += 0.2
    with pytest.raises(AuthenticationError, match="revoked"):
        await auth(full)


async def test_a_jti_revoked_elsewhere_is_refused_after_recheck(store: SQLiteStore) -> None:
    """The revoked-token list is reread when older than recheck_s."""
    now = [time.time()]
    auth = Authenticator(SECRET, store, recheck_s=0.5, clock=lambda: now[0])
    token = issue_token(SECRET, tenant_id="acme", user_id="u", permissions=["query"])
    principal = await auth(token)
    assert principal.token_id is not None
    store.revoke_token(
        principal.token_id,
        now[0] + 3600,
        ChangeRecords(AuditEvent("token_revoked", "success", None, "ops")),
    )
    now[0] += 0.6
    with pytest.raises(AuthenticationError, match="revoked"):
        await auth(token)


async def test_a_blind_node_serves_what_it_read_for_a_while_then_refuses(
    store: SQLiteStore,
) -> None:
    """Store down: a recent copy still serves up to stale_limit_s; then 503, never unchecked."""
    now = [time.time()]
    outage = Outage(store)
    auth = Authenticator(SECRET, outage, recheck_s=0.5, stale_limit_s=30, clock=lambda: now[0])  # type: ignore[arg-type]
    key_id, full = make_key(store)
    token = issue_token(SECRET, tenant_id="acme", user_id="u", permissions=["query"])
    await auth(full)
    await auth(token)
    outage.down = True
    now[0] += 10
    assert (await auth(full)).key_id == key_id
    assert (await auth(token)).user_id == "u"
    now[0] += 25
    with pytest.raises(DependencyUnavailable):
        await auth(full)
    with pytest.raises(DependencyUnavailable):
        await auth(token)
    _, unseen = make_key(store)
    with pytest.raises(DependencyUnavailable):
        await auth(unseen)  # never read: nothing to serve


async def test_reads_are_bounded_by_recheck(store: SQLiteStore) -> None:
    """A busy node reads each key and the revocation list at most once per recheck_s."""
    now = [time.time()]
    outage = Outage(store)
    auth = Authenticator(SECRET, outage, recheck_s=0.5, clock=lambda: now[0])  # type: ignore[arg-type]
    _, full = make_key(store)
    token = issue_token(SECRET, tenant_id="acme", user_id="u", permissions=["query"])
    for _ in range(50):
        await auth(full)
        await auth(token)
    assert outage.reads <= 3  # the key's row, its first touch, the revocation list


@pytest.mark.parametrize(
    "credential", ["trk_x", "trk_0123456789ab_" + "A" * 42, "trk_0123456789AB_" + "A" * 43]
)
def test_malformed_keys_do_not_parse(credential: str) -> None:
    """Only trk_<12 hex>_<43 base64url> is a key."""
    assert parse_key(credential) is None


def test_a_new_key_parses_back() -> None:
    """new_key's full key holds its id and secret."""
    key_id, secret, full = new_key()
    assert parse_key(full) == (key_id, secret)


def test_a_providers_permissions_claim_maps_roles_and_ignores_the_rest() -> None:
    """Roles expand; groups, other scopes and platform:admin grant nothing; a string splits."""
    assert permissions_from(["viewer", "group:x", "platform:admin"]) == {"query", "documents:read"}
    assert permissions_from("query audit:read openid") == {"query", "audit:read"}
    assert permissions_from({"query": True}) == frozenset()
    assert permissions_from(None) == frozenset()


def test_oidc_settings_are_all_or_nothing_and_need_an_audience() -> None:
    """Issuer without JWKS (or the reverse) is refused, and so is OIDC without an audience."""
    assert not OIDCSettings().enabled
    with pytest.raises(ValueError, match="both"):
        OIDCSettings(issuer="https://idp")
    with pytest.raises(ValueError, match="AUDIENCE"):
        OIDCSettings(issuer="https://idp", jwks_url="https://idp/jwks")
    assert OIDCSettings(issuer="https://idp", jwks_url="https://idp/jwks", audience="a").enabled


async def test_the_revocation_thread_keeps_the_list_current_without_request_reads(
    store: SQLiteStore,
) -> None:
    """Started, the thread rereads the list; a request never reads it, and a stale one is 503."""
    outage = Outage(store)
    auth = Authenticator(SECRET, outage, recheck_s=0.2, stale_limit_s=1.0)  # type: ignore[arg-type]
    auth.start()
    try:
        token = issue_token(SECRET, tenant_id="acme", user_id="u", permissions=["query"])
        principal = await auth(token)
        assert principal.token_id is not None
        store.revoke_token(
            principal.token_id,
            time.time() + 3600,
            ChangeRecords(AuditEvent("token_revoked", "success", None, "ops")),
        )
        await asyncio.sleep(0.35)
        with pytest.raises(AuthenticationError, match="revoked"):
            await auth(token)
        other = issue_token(SECRET, tenant_id="acme", user_id="v", permissions=["query"])
        await auth(other)
        outage.down = True
        await asyncio.sleep(1.3)
        with pytest.raises(DependencyUnavailable):
            await auth(other)
    finally:
        auth.close()
