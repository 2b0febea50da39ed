"""PII detection and redaction: each kind, its look-alikes, overlaps and the log processor."""

from __future__ import annotations

from typing import Any

import pytest

from tenantrag.governance.pii import PiiScrubber, PiiSpan, PiiType, find_pii, redact


def kinds(text: str) -> list[tuple[str, PiiType]]:
    """The values found in `text`, as (value, kind) pairs."""
    return [(text[s.start : s.end], s.type) for s in find_pii(text)]


class TestEmail:
    @pytest.mark.parametrize(
        "email",
        [
            "jane.doe@example.com",
            "a.b+tag@sub.example.co.uk",
            "user@xn--80ak6aa92e.com",
            "müller@beispiel.de",
        ],
    )
    def test_addresses_are_found(self, email: str) -> None:
        """An address in a sentence is found with exactly its own span."""
        assert kinds(f"write to {email}, thanks") == [(email, PiiType.EMAIL)]

    @pytest.mark.parametrize(
        "text", ["info@presidio.", "hello-world here", "a@b", "x@y.z", "@home"]
    )
    def test_addresses_without_a_domain_are_not(self, text: str) -> None:
        """No top-level domain, no email."""
        assert find_pii(text) == []


class TestSsn:
    @pytest.mark.parametrize("ssn", ["536-22-1234", "536 22 1234", "536.22.1234", "536221234"])
    def test_valid_numbers_are_found(self, ssn: str) -> None:
        """Nine digits grouped 3-2-4 with one separator, or bare, are an SSN."""
        assert kinds(f"SSN {ssn}.") == [(ssn, PiiType.SSN)]

    @pytest.mark.parametrize(
        "ssn",
        [
            "000-12-3456",  # area 000
            "666-12-3456",  # area 666
            "900-12-3456",  # areas 900-999
            "999-12-3456",
            "536-00-1234",  # group 00
            "536-22-0000",  # serial 0000
            "111-11-1111",  # one digit repeated
            "536-22.1234",  # mixed separators
            "5362212345",  # ten digits
        ],
    )
    def test_invalid_numbers_are_not_redacted(self, ssn: str) -> None:
        """Numbers the SSA never issues are left alone, as any kind."""
        assert redact(ssn).text == ssn


class TestPhone:
    @pytest.mark.parametrize(
        "phone",
        [
            "(415) 555-0132",
            "415-555-0132",
            "+1 415 555 0132",
            "+44 (20) 7123 4567",
            "+49 30 1234567",
            "0044 20 7123 4567",
            "030 1234 5678",  # German national format, trunk prefix 0
            "09-7625400",  # Israeli national format
            "13812345678",  # Chinese mobile
        ],
    )
    def test_numbers_are_found(self, phone: str) -> None:
        """US, international and trunk-prefixed national numbers are phones."""
        assert kinds(f"call {phone} today") == [(phone, PiiType.PHONE)]

    @pytest.mark.parametrize(
        "text",
        [
            "2025-11-26 03:22:00 INFO started",
            "on 26.11.2025 and 11/26/2025",
            "ts=1764112345 took_ms=1764112345123 bytes=10485760 rows=1234567",
            "95% CI 0.750-0.757",
            "compound CK-0944636 binds",
            "ISBN 978-3-16-148400-0",
            "price $1,234,567.89",
        ],
    )
    def test_dates_timestamps_and_measurements_are_not(self, text: str) -> None:
        """Dates, epoch timestamps, sizes, ranges and codes are not phones."""
        assert redact(text).text == text


class TestIp:
    @pytest.mark.parametrize(
        "ip",
        [
            "192.168.1.1",
            "255.255.255.255",
            "2001:db8::1",
            "fe80::1%eth0",
            "::ffff:192.0.2.1",
            "::1",
        ],
    )
    def test_addresses_are_found(self, ip: str) -> None:
        """IPv4 and IPv6 addresses, including mapped and zoned ones, are found whole."""
        assert kinds(f"from {ip} today") == [(ip, PiiType.IP)]

    @pytest.mark.parametrize(
        "text",
        [
            "999.1.1.1",
            "192.168.1.256",
            "192.168.1",
            "2001::db8::1",
            "MAC aa:bb:cc:dd:ee:ff",
            "Time 12:34:56",
            "std::cout and MyClass::toString",
            "IP192.168.1.1text",
        ],
    )
    def test_invalid_or_embedded_addresses_are_not(self, text: str) -> None:
        """What `ipaddress` rejects, or what sits inside a word, is not an address."""
        assert redact(text).text == text

    @pytest.mark.parametrize("text", ["version 1.2.3.4", "v10.0.19041.1", "build 4.5.6.7"])
    def test_four_part_versions_are_not_addresses(self, text: str) -> None:
        """A dotted quad right after a version word is a version, not an address."""
        assert redact(text).text == text

    def test_a_bare_dotted_quad_is_an_address(self) -> None:
        """Without a version word, 1.2.3.4 is a valid address and is redacted."""
        assert redact("reached 1.2.3.4").text == "reached [REDACTED_IP]"


class TestCreditCard:
    @pytest.mark.parametrize(
        "card",
        ["4111111111111111", "4012-8888-8888-1881", "4012 8888 8888 1881", "3782 822463 10005"],
    )
    def test_luhn_valid_numbers_are_found(self, card: str) -> None:
        """13-19 digits, plain or grouped, that pass the Luhn check are cards."""
        assert kinds(f"card {card} expires") == [(card, PiiType.CREDIT_CARD)]

    @pytest.mark.parametrize("card", ["4012-8888-8888-1882", "36168002586008", "4111111111111112"])
    def test_luhn_failing_numbers_are_not_redacted(self, card: str) -> None:
        """A wrong check digit means no card, and no redaction of any kind."""
        assert redact(card).text == card

    def test_millisecond_timestamps_are_not_cards(self) -> None:
        """13-digit numbers not starting with 4 (Visa's only 13-digit range) are not cards."""
        assert redact("at 1764112345129").text == "at 1764112345129"


class TestRedact:
    def test_placeholders_and_counts(self) -> None:
        """Each value becomes its placeholder and is counted by kind."""
        result = redact("mail a@example.com or b@example.com from 10.0.0.1, SSN 536-22-1234")
        assert result.text == (
            "mail [REDACTED_EMAIL] or [REDACTED_EMAIL] from [REDACTED_IP], SSN [REDACTED_SSN]"
        )
        assert result.counts == {PiiType.EMAIL: 2, PiiType.IP: 1, PiiType.SSN: 1}

    def test_text_without_pii_comes_back_unchanged(self) -> None:
        """Nothing to redact: the same text and no counts."""
        result = redact("What is the travel policy?")
        assert (result.text, result.counts) == ("What is the travel policy?", {})

    def test_the_ssn_wins_over_the_phone_it_also_looks_like(self) -> None:
        """A validated SSN is redacted as an SSN, not as the phone number it resembles."""
        assert redact("078-05-1123").text == "[REDACTED_SSN]"

    def test_the_longest_address_wins(self) -> None:
        """An IPv4-mapped IPv6 address is one span, not an IPv6 prefix plus an IPv4."""
        assert find_pii("::ffff:192.0.2.1") == [PiiSpan(0, 16, PiiType.IP)]

    def test_an_email_wins_over_the_digits_inside_it(self) -> None:
        """A card-like number inside an email address is part of the email."""
        assert kinds("4111111111111111@example.com") == [
            ("4111111111111111@example.com", PiiType.EMAIL)
        ]


class TestPiiScrubber:
    def test_nested_strings_are_redacted_and_counted(self) -> None:
        """Every string in the event dict, however deep, is redacted; each kind is reported."""
        seen: list[tuple[str, int]] = []
        scrub = PiiScrubber(on_redaction=lambda kind, n: seen.append((kind, n)))
        event: dict[str, Any] = {
            "event": "login from 203.0.113.42",
            "user": {"email": "jane@example.com", "phones": ["+1 415 555 0132", 42]},
            "tags": ("ssn 536-22-1234",),
            "latency_ms": 12.5,
        }
        out = scrub(None, "info", event)
        assert out == {
            "event": "login from [REDACTED_IP]",
            "user": {"email": "[REDACTED_EMAIL]", "phones": ["[REDACTED_PHONE]", 42]},
            "tags": ("ssn [REDACTED_SSN]",),
            "latency_ms": 12.5,
        }
        assert sorted(seen) == [("email", 1), ("ip", 1), ("phone", 1), ("ssn", 1)]

    def test_the_timestamp_is_left_alone(self) -> None:
        """Fields our own processors wrote (timestamp, level, logger) are not scanned."""
        event = {"timestamp": "2025-11-26T03:22:00Z", "event": "ok", "level": "info"}
        assert PiiScrubber()(None, "info", dict(event)) == event
