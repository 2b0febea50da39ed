"""Governance building blocks: PII redaction and prompt-injection detection.

`pii` finds and redacts personal data in text and log events; `injection` screens questions
(patterns plus a classifier over the query embedding) and retrieved chunks, and quotes chunks
so that no document can change the rules of the prompt.
"""

from tenantrag.governance.pii import (
    PiiScrubber,
    PiiSpan,
    PiiType,
    RedactionResult,
    find_pii,
    redact,
)

__all__ = ["PiiScrubber", "PiiSpan", "PiiType", "RedactionResult", "find_pii", "redact"]
