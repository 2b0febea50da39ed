"""`pii.Tally`: the fields around a chunk's text redacted like it, every replacement counted."""

from __future__ import annotations

import pytest

from tenantrag.governance import pii
from tenantrag.governance.pii import RedactionCache, RedactionResult, Tally, redact
from tenantrag.models import Chunk


def test_a_chunk_is_redacted_in_every_field_and_counted() -> None:
    """Id, title, source, metadata keys and values and text; counts by kind."""
    chunk = Chunk(
        tenant_id="acme",
        document_id="hr-jane.doe@example.com",
        position=3,
        text="Call 415-555-0132.",
        title="Owner bob@example.org",
        source="scan 4111 1111 1111 1111.pdf",
        metadata={"mail": "a.b@example.net", "card": 4111111111111111, "pages": 12, "ok": True},
    )
    tally = Tally()
    shown = tally.chunk(chunk)
    assert shown.document_id == "[REDACTED_EMAIL]"
    assert shown.chunk_id == "[REDACTED_EMAIL]#3"
    assert shown.title == "Owner [REDACTED_EMAIL]"
    assert shown.source == "scan [REDACTED_CREDIT_CARD].pdf"
    assert shown.text == "Call [REDACTED_PHONE]."
    assert shown.metadata == {
        "mail": "[REDACTED_EMAIL]",
        "card": "[REDACTED_CREDIT_CARD]",
        "pages": 12,
        "ok": True,
    }
    assert tally.counts == {"email": 3, "credit_card": 2, "phone": 1}


def test_a_clean_chunk_is_returned_as_it_is() -> None:
    """Nothing to redact: the same object, nothing counted (the hot path allocates nothing)."""
    chunk = Chunk("acme", "leave-policy", 0, "Leave is approved.", title="Leave", metadata={"y": 1})
    tally = Tally()
    assert tally.chunk(chunk) is chunk
    assert tally.counts == {}


def test_text_can_be_left_alone() -> None:
    """`text=False`: only the fields around it (a caller that redacts the text itself)."""
    chunk = Chunk("acme", "d", 0, "Mail x@example.com", title="x@example.com")
    shown = Tally().chunk(chunk, text=False)
    assert shown.text == "Mail x@example.com" and shown.title == "[REDACTED_EMAIL]"


class TestRedactionCache:
    """Redactions kept by (tenant, text): the same results, counted every time, never shared."""

    def test_a_kept_result_is_what_redact_computes_and_is_counted_every_time(self) -> None:
        cache = RedactionCache()
        chunk = Chunk("acme", "d", 0, "Call 415-555-0132 or mail bob@example.org.", title="T")
        first, second = Tally(cache, "acme"), Tally(cache, "acme")
        assert first.chunk(chunk) == second.chunk(chunk) == Tally().chunk(chunk)
        assert first.counts == second.counts == {"phone": 1, "email": 1}
        assert cache.redact("acme", chunk.text) == redact(chunk.text)

    def test_each_tenant_computes_its_own(self, calls: list[str]) -> None:
        """The same text for two tenants: two computations, two entries; a repeat: none."""
        cache = RedactionCache()
        text = "Mail jane.doe@example.com about leave."
        cache.redact("acme", text)
        cache.redact("acme", text)
        assert calls == [text]
        cache.redact("globex", text)
        assert calls == [text, text] and len(cache) == 2

    def test_the_least_recently_used_text_goes_first(self, calls: list[str]) -> None:
        cache = RedactionCache(size=2)
        cache.redact("acme", "one 415-555-0132")
        cache.redact("acme", "two 415-555-0133")
        cache.redact("acme", "one 415-555-0132")  # used again: now the most recent
        cache.redact("acme", "three 415-555-0134")
        assert len(cache) == 2
        del calls[:]
        cache.redact("acme", "one 415-555-0132")
        cache.redact("acme", "three 415-555-0134")
        assert calls == []  # both kept; "two" went
        cache.redact("acme", "two 415-555-0133")
        assert calls == ["two 415-555-0133"]

    def test_kept_characters_are_bounded_too(self) -> None:
        """Long texts are evicted by their characters, not only by their number."""
        cache = RedactionCache(size=100, max_chars=1000)
        for n in range(5):
            cache.redact("acme", f"{n} " + "x" * 200)  # 202 characters, kept twice (key, result)
        assert len(cache) == 2 and cache.weight == 808

    def test_an_erased_tenant_is_forgotten_and_no_other(self) -> None:
        cache = RedactionCache()
        for tenant in ("acme", "globex"):
            cache.redact(tenant, "Mail jane.doe@example.com about leave.")
            cache.redact(tenant, "Leave is approved by the line manager.")
        assert cache.forget_tenant("acme") == 2
        assert len(cache) == 2 and cache.tenants() == {"globex"}
        assert cache.forget_tenant("acme") == 0

    def test_a_cache_needs_the_tenant_it_keeps_for(self) -> None:
        with pytest.raises(ValueError, match="tenant"):
            Tally(RedactionCache())


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts `pii.redact` computes from now on, in order."""
    computed: list[str] = []

    def counting(text: str) -> RedactionResult:
        computed.append(text)
        return redact(text)

    monkeypatch.setattr(pii, "redact", counting)
    return computed
