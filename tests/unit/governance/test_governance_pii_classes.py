"""PII by class of input: phones across regions, card separators, the normalised view and its
offsets, SSN variants, obfuscated emails, IPv4 and IPv6 forms, IBANs, counts, clean text."""

from __future__ import annotations

import json
from pathlib import Path

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from tenantrag.governance.pii import (
    PiiType,
    find_pii,
    normalize_for_matching,
    redact,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "governance"
REGIONS = (
    "US",
    "GB",
    "DE",
    "FR",
    "IN",
    "CN",
    "JP",
    "BR",
    "RU",
    "MX",
    "NG",
    "EG",
    "PK",
    "BD",
    "ID",
    "TR",
    "IT",
    "ES",
    "NL",
    "PL",
    "SE",
    "CH",
    "AU",
    "ZA",
    "KR",
    "AR",
    "SA",
    "AE",
    "IL",
    "VN",
)


def found(text: str, kind: PiiType) -> list[str]:
    """The values of `kind` found in `text`."""
    return [text[s.start : s.end] for s in find_pii(text) if s.type is kind]


def covered(text: str, value: str, kind: PiiType) -> bool:
    """Whether a span of `kind` covers `value`'s position in `text`."""
    start = text.index(value)
    end = start + len(value)
    return any(s.type is kind and s.start <= start and s.end >= end for s in find_pii(text))


def luhn_complete(body: str) -> str:
    """`body` plus the check digit that makes its Luhn sum right."""
    for check in "0123456789":
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


class TestPhonesAcrossRegions:
    @pytest.mark.parametrize("region", REGIONS)
    @pytest.mark.parametrize(
        "fmt", [PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.E164], ids=["intl", "e164"]
    )
    def test_mobile_numbers_in_international_formats_are_phones(
        self, region: str, fmt: int
    ) -> None:
        """libphonenumber's example mobile number of each region, written with its country code."""
        number = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
        written = phonenumbers.format_number(number, fmt)
        text = f"Please call {written} tomorrow."
        assert covered(text, written, PiiType.PHONE)

    @pytest.mark.parametrize("region", REGIONS[:12])
    def test_00_prefix_dashes_and_dots_are_phones(self, region: str) -> None:
        """ "00" for "+", and dashes or dots between the groups, are the same number."""
        number = phonenumbers.example_number_for_type(region, PhoneNumberType.FIXED_LINE)
        intl = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        cc = str(number.country_code)
        rest = intl[len(cc) + 2 :]
        dashes = f"+{cc}-{rest.replace(' ', '-')}"
        dots = f"+{cc}.{rest.replace(' ', '.').replace('-', '.')}"
        for written in ("00" + intl[1:], dashes, dots):
            assert covered(f"Tel: {written}", written, PiiType.PHONE), written

    @pytest.mark.parametrize(
        "written",
        [
            "+1 650-253-0000 ext. 1234",
            "+44 20 7123 4567 x 22",
            "+49 30 1234567 extension 89",
            "(415) 555-0132 #4",
        ],
    )
    def test_extensions_are_part_of_the_number(self, written: str) -> None:
        """The extension is redacted with the number: it is part of how to reach the person."""
        assert covered(f"Reach me at {written}.", written, PiiType.PHONE)

    @pytest.mark.parametrize(
        "written",
        [
            "020 7123 4567",
            "030 1234 5678",
            "01 23 45 67 89",
            "03-1234-5678",
            "+44 (0)20 7123 4567",
            "8 (912) 345-67-89",
            "(555) 013-2456",
            "555.013.2456",
        ],
    )
    def test_national_formats_with_a_trunk_prefix_or_the_us_layout(self, written: str) -> None:
        """A trunk prefix (0, 8) or the North American layout marks a national number."""
        assert covered(f"Numero: {written}", written, PiiType.PHONE)

    def test_a_country_code_without_its_plus(self) -> None:
        """ "91-415-555-0132" is an Indian number written without "+"."""
        assert covered("my other one is 91-415-555-0132", "91-415-555-0132", PiiType.PHONE)

    def test_a_national_number_without_trunk_prefix_needs_the_word_phone(self) -> None:
        """ "21234567" is a Hong Kong number next to "Tel.", an id anywhere else."""
        assert covered("Tel. 21234567", "21234567", PiiType.PHONE)
        assert find_pii("Batch 21234567 shipped.") == []

    def test_a_national_number_in_its_countrys_own_grouping(self) -> None:
        """Grouped exactly as its country prints it ("2123 4567" in Hong Kong), a number is a
        phone even without the word: the grouping is the evidence."""
        assert covered("Office 2123 4567", "2123 4567", PiiType.PHONE)

    @pytest.mark.parametrize(
        "text",
        [
            "between 2011-2015 and 2016-2020",
            "n = 14 466 (29% women)",
            "in 20/103 (19%) of cases",
            "page=1942 200 94.93 ms",
            "ISBN 978-3-16-148410-0",
            "Total: 2 135 415 USD",
            "Coordinates 14.71439, 80.30380",
            "doses of 800-1200 mg/d",
            "v2.3.4 released 2024-01-15",
        ],
    )
    def test_quantities_dates_and_ids_are_not_phones(self, text: str) -> None:
        """Ranges, thousands, fractions, decimals, ISBNs and versions stay."""
        assert redact(text).text == text


class TestCards:
    NUMBER = "4111111111111111"
    GROUPS = ("4111", "1111", "1111", "1111")

    @pytest.mark.parametrize(
        "sep",
        [" ", "-", ".", "\u00a0", "\u202f", "\u2009", "\u200b", " \u200b", "\u2060"],
        ids=["space", "dash", "dot", "nbsp", "narrow-nbsp", "thin", "zwsp", "space+zwsp", "wj"],
    )
    def test_any_separator_between_the_groups(self, sep: str) -> None:
        """Spaces, dots, dashes, no-break and zero-width characters between groups: one card."""
        written = sep.join(self.GROUPS)
        text = f"Card {written} expires 09/27"
        result = redact(text)
        assert result.text == "Card [REDACTED_CREDIT_CARD] expires 09/27"
        assert result.counts == {PiiType.CREDIT_CARD: 1}

    def test_full_width_digits_and_zero_width_between_every_digit(self) -> None:
        """Matched on the normalised view, the original characters are what is replaced."""
        wide = "".join(chr(ord(d) + 0xFEE0) for d in self.NUMBER)
        hidden = "\u200b".join(self.NUMBER)
        for written in (wide, hidden, "４１１１ 1111 1111 1111"):
            text = f"pay with {written}, thanks"
            assert redact(text).text == "pay with [REDACTED_CREDIT_CARD], thanks", written

    @pytest.mark.parametrize("length", range(12, 20))
    def test_every_length_from_12_to_19(self, length: int) -> None:
        """Luhn-valid numbers of 12 to 19 digits (Maestro 12, Visa 13/16/19, Amex 15, ...)."""
        prefix = "5" if length == 12 else "6"
        number = luhn_complete(prefix + "0" * (length - 2))
        number = number[:1] + "123456789012345678"[: length - 2] + number[-1]
        number = luhn_complete(number[:-1])
        assert covered(f"Card: {number}", number, PiiType.CREDIT_CARD)

    @pytest.mark.parametrize(
        "written", ["3782 822463 10005", "3056 930902 5904", "6011-0009-9013-9424", "4222222222222"]
    )
    def test_amex_diners_discover_and_13_digit_visa_layouts(self, written: str) -> None:
        """The brands' own groupings are found."""
        assert covered(f"number {written}", written, PiiType.CREDIT_CARD)

    def test_cards_side_by_side_in_different_layouts(self) -> None:
        """A greedy match over two cards is cut back to the valid one, then the next is found."""
        text = "4012888888881881 4012-8888-8888-1881 4012 8888 8888 1881"
        assert found(text, PiiType.CREDIT_CARD) == [
            "4012888888881881",
            "4012-8888-8888-1881",
            "4012 8888 8888 1881",
        ]

    @pytest.mark.parametrize(
        "text",
        [
            "Card 4111 1111 1111 1112",
            "Table 3: 2444 4103 555 638 507 934",
            "see /articles/4409607962387-Copy-member-names",
            "ISBN 9783161484100",
        ],
    )
    def test_luhn_failures_tables_slugs_and_isbns_stay(self, text: str) -> None:
        """A wrong check digit, a table of numbers, a URL slug, an ISBN are not cards."""
        assert found(text, PiiType.CREDIT_CARD) == []


class TestNormalisedView:
    def test_ascii_text_is_its_own_view(self) -> None:
        """No copy and no offset map for the common case."""
        view = normalize_for_matching("plain text 123")
        assert view.text == "plain text 123"
        assert view.original_span(6, 10) == (6, 10)

    def test_removed_characters_shift_offsets_back(self) -> None:
        """View offsets map to the original ones around and inside removed characters."""
        original = "a\u200bb\u200c\u200dc 4\u200b1"
        view = normalize_for_matching(original)
        assert view.text == "abc 41"
        assert original[slice(*view.original_span(0, 3))] == "a\u200bb\u200c\u200dc"
        assert original[slice(*view.original_span(4, 6))] == "4\u200b1"

    def test_folding_keeps_lengths(self) -> None:
        """Full-width, Unicode digits, dashes and spaces fold one character to one."""
        original = "１２\u00a0٣\u2013x＠y"
        view = normalize_for_matching(original)
        assert view.text == "12 3-x@y"
        assert len(view.text) == len(original)

    def test_the_redaction_replaces_the_original_span_only(self) -> None:
        """Text around the value keeps its own characters, invisible ones included."""
        text = "ｎａｍｅ\u200b: ４１１１-1111-1111-1111 ok"
        assert redact(text).text == "ｎａｍｅ\u200b: [REDACTED_CREDIT_CARD] ok"


class TestSsn:
    @pytest.mark.parametrize(
        "written",
        [
            "536-22-1234",
            "536 22 1234",
            "536.22.1234",
            "536\u201322\u20131234",
            "536\u201122\u20111234",
            "536\u221222\u22121234",
        ],
    )
    def test_separators_including_unicode_dashes(self, written: str) -> None:
        """Any one separator, Unicode dashes folded to "-"."""
        assert found(f"Employee {written} on file", PiiType.SSN) == [written]

    @pytest.mark.parametrize("context", ["SSN", "social security number", "SS#", "Soc. Sec."])
    def test_bare_digits_where_the_words_say_ssn(self, context: str) -> None:
        """Nine bare digits are an SSN where the text calls them one."""
        assert found(f"{context}: 536221234", PiiType.SSN) == ["536221234"]

    def test_bare_digits_after_an_id_marker_or_in_a_url_are_an_id(self) -> None:
        """A nine-digit order number, a URL's id, a ZIP+4 code are not SSNs."""
        for text in (
            "Order 536221234 shipped",
            "see https://x.example/a/536221234-notes",
            "edit#gid=536221234",
            "Washington, DC 20405-0001",
        ):
            assert redact(text).text == text, text

    def test_bare_digits_elsewhere_are_redacted_to_be_safe(self) -> None:
        """Nine digits that pass the SSA rules, with no id marker, are hidden."""
        assert found("Her number is 536221234.", PiiType.SSN) == ["536221234"]

    @pytest.mark.parametrize("area", ["000", "666", "900", "987"])
    def test_areas_never_issued(self, area: str) -> None:
        """Areas 000, 666 and 900-999 are not SSNs."""
        assert found(f"SSN {area}-22-1234", PiiType.SSN) == []


class TestObfuscatedEmails:
    @pytest.mark.parametrize(
        "written",
        [
            "john [at] example [dot] com",
            "john(at)example.com",
            "john @ example.com",
            "john at example dot com",
            "john {at} mail {dot} example {dot} org",
            "john＠example.com",
            "john﹫example.com",
            "j.doe [AT] example [DOT] co [DOT] uk",
            "jane (arroba) ejemplo.es",
        ],
    )
    def test_spelled_out_bracketed_spaced_and_unicode_at(self, written: str) -> None:
        """People hide addresses from scrapers; we still hide them from readers."""
        assert redact(f"Mail {written} today").text == "Mail [REDACTED_EMAIL] today"

    @pytest.mark.parametrize(
        "text",
        [
            "meet at noon dot",
            "at some point in their lives",
            "look at example.com for more",
            "arrive at 5 pm",
            "`@gsa.gov` addresses",
        ],
    )
    def test_prose_with_at_is_not_an_address(self, text: str) -> None:
        """ "at" in a sentence, a site name, a bare domain stay."""
        assert found(text, PiiType.EMAIL) == []


class TestIp:
    @pytest.mark.parametrize("written", ["192.168.001.010", "010.000.000.001", "8.8.8.8"])
    def test_ipv4_with_leading_zeros(self, written: str) -> None:
        """Zero-padded octets are the same address."""
        assert found(f"from {written} at noon", PiiType.IP) == [written]

    @pytest.mark.parametrize(
        "written",
        [
            "2001:db8::1",
            "::1",
            "fe80::1%eth0",
            "::ffff:192.0.2.128",
            "2001:DB8:0:0:8:800:200C:417A",
            "2001:db8::",
            "64:ff9b::192.0.2.33",
            "0:0:0:0:0:ffff:192.0.2.1",
            "1::",
        ],
    )
    def test_ipv6_compressed_zoned_and_mapped(self, written: str) -> None:
        """Every compressed form, zones and IPv4-mapped addresses are one span each."""
        assert found(f"host {written} down", PiiType.IP) == [written]

    @pytest.mark.parametrize("text", ["version 10.0.19041.1", "256.1.1.1", "std::cout << x"])
    def test_versions_and_impossible_addresses_stay(self, text: str) -> None:
        """A version after its word, an octet above 255, C++ scope are not addresses."""
        assert found(text, PiiType.IP) == []


class TestIban:
    @pytest.mark.parametrize(
        "written",
        [
            "DE89 3704 0044 0532 0130 00",
            "GB29NWBK60161331926819",
            "fr14 2004 1010 0505 0001 3m02 606",
            "NL91-ABNA-0417-1643-00",
            "BR18 0036 0305 0000 1000 9795 493C 1",
        ],
    )
    def test_registry_examples_in_any_grouping_or_case(self, written: str) -> None:
        """The IBAN registry's examples, grouped, compact, dashed or lower-case."""
        assert redact(f"IBAN {written}, thanks").text == "IBAN [REDACTED_IBAN], thanks"

    @pytest.mark.parametrize(
        "text", ["DE88 3704 0044 0532 0130 00", "XX89 3704 0044 0532 0130 00", "GB29 NWBK 6016"]
    )
    def test_wrong_check_digits_unknown_countries_and_short_ones_stay(self, text: str) -> None:
        """Mod 97 and the registry length decide."""
        assert found(text, PiiType.IBAN) == []


class TestCounts:
    def test_every_redaction_is_counted_by_kind(self) -> None:
        """The result counts each replaced value once, per kind, and in total."""
        text = (
            "Mail jane [at] example [dot] org or +44 20 7123 4567, card 4111.1111.1111.1111, "
            "IBAN DE89370400440532013000, SSN 536-22-1234, host ::1 and 10.0.0.1."
        )
        result = redact(text)
        assert result.counts == {
            PiiType.EMAIL: 1,
            PiiType.PHONE: 1,
            PiiType.CREDIT_CARD: 1,
            PiiType.IBAN: 1,
            PiiType.SSN: 1,
            PiiType.IP: 2,
        }
        assert result.total == 7
        assert "[REDACTED_IBAN]" in result.text


class TestCleanText:
    def test_handbook_pages_lose_nothing_but_contact_details(self) -> None:
        """Real markdown with links, dates, amounts and ids: only emails and phones go."""
        pages = _texts("handbook_pages.jsonl")
        kinds = {s.type for page in pages for s in find_pii(page)}
        assert kinds <= {PiiType.EMAIL, PiiType.PHONE}

    def test_scientific_claims_are_untouched(self) -> None:
        """Numbers, ranges and gene names in 120 SciFact claims are not personal data."""
        claims = _texts("scifact_claims.jsonl")
        assert [c for c in claims if redact(c).text != c] == []


def _texts(name: str) -> list[str]:
    """The `text` of each line of a committed sample (tests/data/governance)."""
    return [json.loads(line)["text"] for line in (DATA / name).read_text().splitlines()]
