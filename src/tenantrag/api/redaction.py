"""Redacting the fields a route shows (titles, ids, file names, metadata), counted per reply."""

from __future__ import annotations

from tenantrag.governance.pii import Tally
from tenantrag.models import Tenant
from tenantrag.observability import metrics


def reply_tally(tenant: Tenant) -> Tally | None:
    """A tally for one reply when the tenant has its shown fields redacted, else None."""
    return Tally() if tenant.redact_search_pii else None


def count_redactions(tally: Tally | None) -> None:
    """Report what one reply's tally replaced to the redaction metric."""
    if tally is not None and tally.counts:
        metrics.count_redactions(tally.counts)
