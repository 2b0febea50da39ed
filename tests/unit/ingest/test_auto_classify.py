"""The auto-classification policies on one document: off, raise, raise-and-redact."""

from __future__ import annotations

import pytest

from tenantrag.ingest.classify import Labelled, auto_classify
from tenantrag.models import AutoClassify, Classification

PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED = list(Classification)
EMAIL = "jane.roe@initech.example"


def label(policy: AutoClassify, given: Classification | None = None, **fields: object) -> Labelled:
    values: dict[str, object] = {
        "text": "Plain words.",
        "title": "",
        "source": "api",
        "metadata": {},
    }
    return auto_classify(policy, given, **(values | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ["text", "title", "source", "metadata"])
def test_raise_finds_personal_data_in_every_stored_field(where: str) -> None:
    """An email in the body, the title, the file name or a metadata value raises the label."""
    field: dict[str, object] = {where: {"owner": EMAIL} if where == "metadata" else EMAIL}
    raised = label(AutoClassify.RAISE, **field)
    assert raised.classification is CONFIDENTIAL
    assert label(AutoClassify.OFF, **field).classification is INTERNAL


@pytest.mark.parametrize("given", [None, PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED])
def test_labels_are_raised_never_lowered(given: Classification | None) -> None:
    default = given if given is not None else INTERNAL
    expected = max(default, CONFIDENTIAL)
    for policy in (AutoClassify.RAISE, AutoClassify.RAISE_AND_REDACT):
        assert label(policy, given, text=f"Mail {EMAIL}").classification is expected
    off = label(AutoClassify.OFF, given, text=f"Mail {EMAIL}")
    assert off.classification is default


def test_raise_and_redact_stores_no_value_anywhere() -> None:
    out = label(
        AutoClassify.RAISE_AND_REDACT,
        text=f"Write to {EMAIL} or call 617-555-0142.",
        title=f"Notes for {EMAIL}",
        source=f"{EMAIL}.txt",
        metadata={"owner": EMAIL, "year": 2024, "draft": True},
    )
    stored = repr(out)
    assert EMAIL not in stored and "617-555-0142" not in stored
    assert out.text == "Write to [REDACTED_EMAIL] or call [REDACTED_PHONE]."
    assert out.metadata == {"owner": "[REDACTED_EMAIL]", "year": 2024, "draft": True}
    assert out.classification is CONFIDENTIAL


def test_clean_documents_keep_their_label_and_text_under_every_policy() -> None:
    for policy in AutoClassify:
        out = label(policy, PUBLIC, text="Lunch is on Fridays.")
        assert (out.text, out.classification) == ("Lunch is on Fridays.", PUBLIC)
