"""Numbers in scientific text that are not personal data, and real phone numbers beside them.

Found on the COVID-QA articles: citation runs, ranges, decimals and section or version numbers
were taken for phone numbers or IP addresses, so auto-classification raised papers without any
personal data to `confidential` (bench/pii_scientific.py counts them).
"""

from __future__ import annotations

import pytest

from tenantrag.governance.pii import PiiType, find_pii
from tenantrag.ingest.classify import auto_classify
from tenantrag.models import AutoClassify, Classification


def _found(text: str) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.type.value) for s in find_pii(text)]


@pytest.mark.parametrize(
    "text",
    [
        # citation numbers in brackets, one after another
        "consistent with earlier cohorts (21) (22) (23) (24) , the titres",
        "as described before (7)(8)(9)(10)(11) in ferrets",
        "was confirmed in two settings (102) (103) (104) (105).",
        # ranges up to a number written in thousands
        "linear over (40-400 000 genome copies per reaction)",
        "plaque counts (25-250 000 per well) were",
        "loads of 300-1 200 000 copies/mL were seen",
        # decimals with a long integer part (catalogue, model and lot numbers, masses)
        "a shaker (Eppendorf, model 5382019.004) at 37 °C",
        "purchased as lot 6690213.011) from the supplier",
        "a monoisotopic mass of 2345678.123 was",
        # dotted section, table and version numbers
        "the method of section 4.2.1.3 was applied",
        "see Table 2.1.4.2 for the primers",
        "reads were aligned with hisat2/2.1.0.4 and counted",
        "as listed in Appendix 3.1.2.1, the panel",
    ],
)
def test_numbers_of_scientific_text_are_not_personal_data(text: str) -> None:
    assert _found(text) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Contact: +44 20 7946 0958 (office)", "+44 20 7946 0958"),
        ("Tel. +49 30 901820 for the lab", "+49 30 901820"),
        ("Phone +81 3-1234-5678 in Tokyo", "+81 3-1234-5678"),
        ("reach us at +33 1 42 68 53 00.", "+33 1 42 68 53 00"),
        ("+7 (495) 123-45-67 is the desk", "+7 (495) 123-45-67"),
        ("mobile +86 138 1234 5678", "+86 138 1234 5678"),
        ("or 0049 30 901820 from abroad", "0049 30 901820"),
        ("the office (+61 2 9374 4000) answers", "+61 2 9374 4000"),
        ("call (555) 013-2456 today", "(555) 013-2456"),
        ("call 772.301.8002 today", "772.301.8002"),
        ("UK office 020 7946 0958 weekdays", "020 7946 0958"),
        ("Tel. 44 (0) 20 7946 0958 (switchboard)", "44 (0) 20 7946 0958"),
        ("Telefon 49 (0)30 901820", "49 (0)30 901820"),
    ],
)
def test_real_phone_numbers_still_match(text: str, value: str) -> None:
    start = text.index(value)
    assert any(
        s.type is PiiType.PHONE and s.start <= start and s.end >= start + len(value)
        for s in find_pii(text)
    ), _found(text)


def test_a_phone_said_to_be_one_is_found_even_with_a_single_dot() -> None:
    # "2123.4567" alone is a decimal; after "tel." it is a Hong Kong number written with a dot.
    assert _found("tel. 2123.4567") == [("2123.4567", "phone")]


def test_an_ip_address_is_still_found_outside_a_version_or_section() -> None:
    assert _found("the proxy at 203.0.113.45 refused") == [("203.0.113.45", "ip")]
    assert _found("open http://192.0.2.10/admin") == [("192.0.2.10", "ip")]


def test_a_paper_without_personal_data_keeps_its_label_under_the_raise_policy() -> None:
    paper = (
        "Viral RNA was quantified against standard curves (50-500 000 copies per reaction) "
        "as reported previously (16) (17) (18) (19) , with reads aligned by bowtie2/2.3.3.1 "
        "and incubation in a water bath (model 7723018.002) (Fig. 5c)."
    )
    labelled = auto_classify(
        AutoClassify.RAISE, None, text=paper, title="A paper", source="", metadata={}
    )
    assert labelled.classification is Classification.INTERNAL
    with_contact = paper + " Correspondence: +44 20 7946 0958."
    raised = auto_classify(
        AutoClassify.RAISE, None, text=with_contact, title="A paper", source="", metadata={}
    )
    assert raised.classification is Classification.CONFIDENTIAL
