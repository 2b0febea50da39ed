"""Any bearer credential to a principal: our HS256 tokens, an identity provider's, API keys.

The credential's form decides how it is checked, never a claim inside it:

- `trk_...` is an API key: its id is looked up in the store of record and its secret checked
  against the stored keyed hash (keys.py).
- a JWT whose header says HS256 is ours: checked with the server's secret (auth/__init__.py).
- a JWT whose header says RS256 or ES256 goes to the identity provider's keys (oidc.py), and
  only when OIDC is configured. Anything else is refused.

Revocation reaches every node within a second: a node rereads a key's row from the store of
record when its copy is older than `recheck_s` (0.5 s; one read at a time per key, the others
served the copy while it is younger than 1.5 x `recheck_s`), and a thread rereads the list of
revoked token ids every `recheck_s / 2` (`start`), so no request waits for it and a burst of
requests is never held at one gate and released at once. If the store cannot be read, what a
node holds serves for up to `stale_limit_s` more; after that credentials that need it are
refused (503), never accepted unchecked.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import jwt
import structlog

from tenantrag.auth import ALGORITHM, TokenVerifier
from tenantrag.auth.keys import looks_like_key, matches, parse_key, pepper_from
from tenantrag.auth.oidc import ALGORITHMS, OIDCVerifier
from tenantrag.backends.store.identity import ApiKey
from tenantrag.errors import AuthenticationError, DependencyUnavailable
from tenantrag.models import Principal

log = structlog.get_logger("tenantrag.credentials")
BAD_KEY = "The API key is not valid; check it, or make a new one with POST /api/keys."


class CredentialStore(Protocol):
    """What checking credentials reads from the store of record."""

    def find_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key with this lookup id and its secret's hash."""
        ...

    def touch_api_key(self, key_id: str, at: float) -> None:
        """Record a use of the key."""
        ...

    def revoked_token_ids(self, *, now: float) -> frozenset[str]:
        """Revoked jtis whose tokens may still be unexpired."""
        ...


class Authenticator:
    """Turns a bearer credential into a principal, or raises AuthenticationError (401)."""

    def __init__(
        self,
        secret: str,
        store: CredentialStore,
        *,
        oidc: OIDCVerifier | None = None,
        recheck_s: float = 0.5,
        stale_limit_s: float = 30.0,
        touch_every_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        max_keys: int = 10_000,
    ) -> None:
        self.tokens = TokenVerifier(secret)
        self.pepper = pepper_from(secret)
        self.store = store
        self.oidc = oidc
        self.recheck_s, self.stale_limit_s, self.touch_every_s = (
            recheck_s,
            stale_limit_s,
            touch_every_s,
        )
        self.clock = clock
        self._max_keys = max_keys
        self._keys: dict[str, tuple[tuple[ApiKey, str] | None, float]] = {}
        self._touched: dict[str, float] = {}
        self._key_reads: dict[str, asyncio.Future[tuple[ApiKey, str] | None]] = {}
        self._revoked: frozenset[str] = frozenset()
        self._revoked_at = float("-inf")
        self._revoked_lock = asyncio.Lock()
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None

    def start(self) -> None:
        """Read the revoked-token list now, then reread it in a thread every recheck_s / 2."""
        self._reread_revoked()
        self._follower = threading.Thread(
            target=self._follow_revocations, name="revocations", daemon=True
        )
        self._follower.start()

    def close(self) -> None:
        """Stop the thread (within one interval)."""
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=self.recheck_s + 5)

    def _follow_revocations(self) -> None:
        while not self._stop.wait(self.recheck_s / 2):
            self._reread_revoked()

    def _reread_revoked(self) -> None:
        now = self.clock()
        try:
            revoked = self.store.revoked_token_ids(now=now)
        except Exception as exc:  # requests see the list age, and refuse past the limit
            log.warning("revocations_unreadable", error=type(exc).__name__)
            return
        self._revoked, self._revoked_at = revoked, now

    async def __call__(self, credential: str) -> Principal:
        """The principal the credential names."""
        if looks_like_key(credential):
            return await self._key(credential)
        # A client sends the same token with every request: one verified before is answered
        # from memory (still checked against the clock), with no thread hand-off.
        principal = self.tokens.remembered(credential)
        if principal is None and self.oidc is not None:
            principal = self.oidc.remembered(credential)
        if principal is None:
            principal = await self._verified(credential)
        if principal.token_id is not None and principal.token_id in await self.revoked_ids():
            raise AuthenticationError("The token has been revoked; ask for a new one.")
        return principal

    def known(self, credential: str) -> bool:
        """Whether a token was verified here before and is still within its time (no HMAC).

        The flood guard lets such a token past an address whose refusals ran out, so a tenant
        behind a shared address is not locked out by someone else's bad tokens. Revocation is
        still checked when the request is authenticated.
        """
        if self.tokens.remembered(credential) is not None:
            return True
        return self.oidc is not None and self.oidc.remembered(credential) is not None

    async def _verified(self, credential: str) -> Principal:
        """A JWT verified in full: ours by HS256, the provider's by RS256 or ES256."""
        try:
            header: dict[str, Any] = jwt.get_unverified_header(credential)
        except jwt.InvalidTokenError:
            raise AuthenticationError("The bearer token is malformed; send a signed JWT.") from None
        alg = header.get("alg")
        if alg == ALGORITHM:
            principal = self.tokens(credential)
        elif alg in ALGORITHMS and self.oidc is not None:
            principal = await asyncio.to_thread(self.oidc, credential, header)
        else:
            accepted = "HS256" + (" or the identity provider's RS256/ES256" if self.oidc else "")
            raise AuthenticationError(f"Only {accepted} tokens are accepted.")
        return principal

    # -- revoked token ids ---------------------------------------------------------------------

    async def revoked_ids(self) -> frozenset[str]:
        """The revoked jtis, at most `recheck_s` old while the store answers."""
        age = self.clock() - self._revoked_at
        if age < self.recheck_s:
            return self._revoked
        if self._follower is not None and self._follower.is_alive():
            # The thread keeps the list current: an older one means the store is not answering.
            if age > self.stale_limit_s:
                self._unreadable("revoked_tokens", ConnectionError("no fresh list"), age)
            return self._revoked
        async with self._revoked_lock:  # no thread (a CLI or a test): reread it here
            now = self.clock()
            if now - self._revoked_at < self.recheck_s:  # another request just reread it
                return self._revoked
            try:
                self._revoked = await asyncio.to_thread(self.store.revoked_token_ids, now=now)
                self._revoked_at = now
            except Exception as exc:
                self._unreadable("revoked_tokens", exc, now - self._revoked_at)
        return self._revoked

    # -- API keys ------------------------------------------------------------------------------

    async def _key(self, credential: str) -> Principal:
        parsed = parse_key(credential)
        if parsed is None:
            raise AuthenticationError(BAD_KEY)
        key_id, secret = parsed
        found = await self._lookup(key_id)
        if found is None or not matches(self.pepper, secret, found[1]):
            raise AuthenticationError(BAD_KEY)
        key = found[0]
        now = self.clock()
        if key.revoked_at is not None:
            raise AuthenticationError("The API key has been revoked.")
        if key.expires_at is not None and key.expires_at <= now:
            raise AuthenticationError("The API key has expired; make a new one.")
        await self._touch(key, now)
        return Principal(
            key.tenant_id,
            f"key:{key.id}",
            frozenset(key.permissions),
            key.clearance,
            issued_at=key.created_at,
            key_id=key.id,
            rate_limit=key.rate_limit,
        )

    def forget_key(self, key_id: str) -> None:
        """Drop this node's copy of a key (after revoking it here): the next use rereads it."""
        self._keys.pop(key_id, None)

    async def _lookup(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key's row, reread from the store when this node's copy is older than recheck_s."""
        now = self.clock()
        cached = self._keys.get(key_id)
        if cached is not None and now - cached[1] < self.recheck_s:
            return cached[0]
        reading = self._key_reads.get(key_id)
        if reading is not None and cached is not None and now - cached[1] < 1.5 * self.recheck_s:
            return cached[0]  # another request is rereading it; this copy is still recent
        if reading is None:
            reading = asyncio.ensure_future(asyncio.to_thread(self.store.find_api_key, key_id))
            self._key_reads[key_id] = reading
            reading.add_done_callback(lambda _: self._key_reads.pop(key_id, None))
        try:
            found = await asyncio.shield(reading)
        except Exception as exc:
            self._unreadable("api_keys", exc, now - cached[1] if cached else float("inf"))
            assert cached is not None  # _unreadable raised otherwise
            return cached[0]
        if len(self._keys) >= self._max_keys:
            self._keys = {}
        self._keys[key_id] = (found, now)
        return found

    async def _touch(self, key: ApiKey, now: float) -> None:
        """Record the key's use in the store about once a minute (last use, to that precision)."""
        last = max(key.last_used_at or 0.0, self._touched.get(key.id, 0.0))
        if now - last < self.touch_every_s:
            return
        self._touched[key.id] = now
        try:
            await asyncio.to_thread(self.store.touch_api_key, key.id, now)
        except Exception as exc:  # last use is informative; the request goes on
            log.warning("api_key_touch_failed", key_id=key.id, error=type(exc).__name__)

    def _unreadable(self, what: str, exc: Exception, age_s: float) -> None:
        """The store could not be read: serve what we hold if recent enough, else refuse."""
        log.warning("credential_store_unreadable", what=what, error=type(exc).__name__)
        if age_s > self.stale_limit_s:
            raise DependencyUnavailable(
                "Credentials cannot be checked right now; retry shortly.", retry_after=5
            ) from exc
