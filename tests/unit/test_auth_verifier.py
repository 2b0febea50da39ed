"""TokenVerifier: a remembered token is still checked against the clock on every use.

The `clock` fixture moves both clocks a check reads: `time.time` for the memo, and PyJWT's
`datetime.now` for the full check.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, tzinfo

import jwt.api_jwt
import pytest

from tenantrag import auth
from tenantrag.auth import LEEWAY_S, TokenVerifier, issue_token
from tenantrag.errors import AuthenticationError

SECRET = "verifier-secret-0123456789-abcdefghijklmnop"
NOW = time.time()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The time auth.py reads; tests move it by setting clock[0]."""
    now = [NOW]

    class Clock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Clock:
            return cls.fromtimestamp(now[0], tz or UTC)

    monkeypatch.setattr(auth.time, "time", lambda: now[0])
    monkeypatch.setattr(jwt.api_jwt, "datetime", Clock)
    return now


def token(*, ttl_s: int = 600, issued: float = NOW, user: str = "alice") -> str:
    """A token for acme, issued at `issued`."""
    return issue_token(
        SECRET, tenant_id="acme", user_id=user, permissions=["query"], ttl_s=ttl_s, now=issued
    )


def test_a_token_is_verified_once_and_remembered(clock: list[float]) -> None:
    """The second use returns the same principal without checking the signature again."""
    verify = TokenVerifier(SECRET)
    sent = token()  # each token has its own jti: the client sends this one every time
    first = verify(sent)
    assert verify(sent) is first
    assert first.tenant_id == "acme" and first.user_id == "alice"


def test_a_remembered_token_still_expires(clock: list[float]) -> None:
    """Past exp plus the leeway a remembered token is refused, with the full check's message."""
    verify = TokenVerifier(SECRET)
    kept = token(ttl_s=60)
    verify(kept)
    clock[0] = NOW + 60 + LEEWAY_S - 1
    assert verify(kept).user_id == "alice"
    clock[0] = NOW + 60 + LEEWAY_S + 1
    with pytest.raises(AuthenticationError, match="expired"):
        verify(kept)


def test_refusals_are_not_remembered(clock: list[float]) -> None:
    """A refused token is refused again by the full check, never answered from the memo."""
    verify = TokenVerifier(SECRET)
    early = token(issued=NOW + 120)
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="not valid yet"):
            verify(early)
    assert len(verify._memo) == 0
    clock[0] = NOW + 120
    assert verify(early).user_id == "alice"


def test_a_token_signed_with_another_secret_is_refused_after_a_good_one(
    clock: list[float],
) -> None:
    """Remembering one token admits nothing else: a forged token with equal claims fails."""
    verify = TokenVerifier(SECRET)
    verify(token())
    forged = issue_token(
        "another-secret-that-is-long-enough-0123",
        tenant_id="acme",
        user_id="alice",
        permissions=["query"],
        now=NOW,
    )
    with pytest.raises(AuthenticationError, match="signature"):
        verify(forged)
    with pytest.raises(AuthenticationError):
        TokenVerifier("another-secret-that-is-long-enough-9876")(token())


def test_the_memo_is_bounded(clock: list[float]) -> None:
    """Past max_tokens the memo starts again, and every token still verifies."""
    verify = TokenVerifier(SECRET, max_tokens=3)
    tokens = [token(user=f"user{i}") for i in range(10)]
    for t in tokens + tokens:
        assert verify(t).user_id.startswith("user")
    assert len(verify._memo) <= 3
