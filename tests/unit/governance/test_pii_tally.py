"""`pii.Tally`: the fields around a chunk's text redacted like it, every replacement counted."""

from __future__ import annotations

from tenantrag.governance.pii import Tally
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
