"""Auto-classification: what a tenant's policy does to a document holding personal data.

The policy is the tenant's (`Tenant.auto_classify`, models.AutoClassify). Personal data is looked
for in everything ingestion stores as text: the body, the title, the source name and the string
metadata values. The uploader's label is never lowered, only raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenantrag.governance.pii import find_pii, redact
from tenantrag.models import AutoClassify, Classification, Metadata
from tenantrag.observability import metrics


@dataclass(frozen=True, slots=True)
class Labelled:
    """A document's stored text fields and its classification, after the policy."""

    text: str
    title: str
    source: str
    metadata: Metadata
    classification: Classification


def auto_classify(
    policy: AutoClassify,
    given: Classification | None,
    *,
    text: str,
    title: str,
    source: str,
    metadata: Metadata,
) -> Labelled:
    """The fields to store and their label under `policy` (the label defaults to `internal`)."""
    label = given if given is not None else Classification.INTERNAL
    unchanged = Labelled(text, title, source, metadata, label)
    if policy is AutoClassify.OFF:
        return unchanged
    if policy is AutoClassify.RAISE:
        if label >= Classification.CONFIDENTIAL:  # nothing to raise: skip the search
            return unchanged
        strings = [text, title, source, *(v for v in metadata.values() if isinstance(v, str))]
        if any(find_pii(s) for s in strings):
            return Labelled(text, title, source, metadata, Classification.CONFIDENTIAL)
        return unchanged
    return _raised_and_redacted(label, text, title, source, metadata)


def _raised_and_redacted(
    label: Classification, text: str, title: str, source: str, metadata: Metadata
) -> Labelled:
    """Every value replaced by its placeholder, and the label raised if there was one."""
    counts: dict[str, int] = {}

    def clean(value: str) -> str:
        result = redact(value)
        for kind, n in result.counts.items():
            counts[str(kind)] = counts.get(str(kind), 0) + n
        return result.text

    stored = Labelled(
        clean(text),
        clean(title),
        clean(source),
        {k: clean(v) if isinstance(v, str) else v for k, v in metadata.items()},
        label,
    )
    if not counts:
        return stored
    metrics.count_redactions(counts)
    return Labelled(
        stored.text,
        stored.title,
        stored.source,
        stored.metadata,
        max(label, Classification.CONFIDENTIAL),
    )
