"""Any text at all: the governance functions never raise, and their spans stay in bounds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tenantrag.governance.exfiltration import neutralize_exfiltration
from tenantrag.governance.injection import detect, scan_chunk
from tenantrag.governance.injection_decode import decoded_views
from tenantrag.governance.pii import find_pii, normalize_for_matching, redact

# Text mixing the characters the detectors care about with any Unicode, invisible ones included.
ALPHABET = st.one_of(
    st.sampled_from(list("0123456789 -.()+@:/[]%=#x\u200b\u00a0\uff14\u2013\U000e0041")),
    st.characters(),
)
TEXT = st.text(ALPHABET, max_size=300)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_pii_spans_are_ordered_disjoint_and_in_bounds(text: str) -> None:
    """Spans index the original text, never overlap, and redaction removes exactly them."""
    spans = find_pii(text)
    cursor = 0
    for span in spans:
        assert cursor <= span.start < span.end <= len(text)
        cursor = span.end
    result = redact(text)
    assert result.total == len(spans)
    assert sum(result.counts.values()) == len(spans)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_the_normalised_view_maps_every_index_back(text: str) -> None:
    """Each view character comes from an original index, in increasing order."""
    view = normalize_for_matching(text)
    indices = [view.original_index(i) for i in range(len(view.text))]
    assert indices == sorted(set(indices))
    assert all(0 <= i < len(text) for i in indices)


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_screens_and_neutralisation_never_raise(text: str) -> None:
    """Hostile or broken text gets a verdict, not an exception."""
    decoded_views(text)
    assert isinstance(detect(text).is_injection, bool)
    assert isinstance(scan_chunk(text).is_injection, bool)
    assert neutralize_exfiltration(text).removed >= 0
