"""Governance building blocks: PII redaction and prompt-injection detection.

`pii` finds and redacts personal data in text and log events; `injection` screens questions
(patterns plus a classifier over the query embedding) and retrieved chunks, and quotes chunks
so that no document can change the rules of the prompt; `exfiltration` defuses links and images
in an answer that could carry data to another host.
"""

from tenantrag.governance.exfiltration import Neutralized, neutralize_exfiltration
from tenantrag.governance.pii import (
    PiiScrubber,
    PiiSpan,
    PiiType,
    RedactionResult,
    find_pii,
    redact,
)

__all__ = [
    "Neutralized",
    "PiiScrubber",
    "PiiSpan",
    "PiiType",
    "RedactionResult",
    "find_pii",
    "neutralize_exfiltration",
    "redact",
]
