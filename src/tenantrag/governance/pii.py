"""Find and redact personal data: email, US SSN, phone, IP address and payment card numbers.

Each detector is a precompiled regex plus a validator (SSA rules, `ipaddress`, Luhn,
libphonenumber), so a match is a checked value, not just a digit shape. Redaction runs on every
log line and every retrieved chunk, so text that cannot hold any of these (no digit, no `@`,
no `:`) returns at once, and the phone matcher, the slowest part, only sees digit runs that
look like phone numbers.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers


class PiiType(enum.StrEnum):
    """The kinds of personal data we redact; the value names it in counts and metrics."""

    EMAIL = "email"
    SSN = "ssn"
    PHONE = "phone"
    IP = "ip"
    CREDIT_CARD = "credit_card"

    @property
    def placeholder(self) -> str:
        """The text that replaces a value of this kind, e.g. `[REDACTED_EMAIL]`."""
        return f"[REDACTED_{self.name}]"


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """One value found in a text: `text[start:end]` is of kind `type`."""

    start: int
    end: int
    type: PiiType


@dataclass(frozen=True, slots=True)
class RedactionResult:
    """The redacted text and how many values of each kind were replaced."""

    text: str
    counts: dict[PiiType, int] = field(default_factory=dict)


# Countries whose national numbers we recognise by their trunk prefix 0 (the US reads
# "+CC" numbers of every country): the largest economies and Presidio's default regions.
NATIONAL_REGIONS = ("GB", "DE", "FR", "IN", "IL", "JP", "CN", "BR", "AU")

_MAYBE_PII = re.compile(r"[0-9@:]")
_DIGIT = re.compile(r"[0-9]")
# Python's re scans fastest when a pattern opens with a character class, so each digit pattern
# opens with one and checks the character before it with a lookbehind after it.
_EMAIL_LOCAL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}\Z")
_EMAIL_DOMAIN = re.compile(
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:xn--[a-z0-9-]{2,59}|[^\W\d_]{2,63})(?![\w-])",
    re.IGNORECASE,
)
# 3-2-4 with one consistent separator, or nine bare digits; 3-6 and 5-4 are common slips of
# the same number (a 5-4 ZIP+4 code matches too, acceptable since addresses are personal data).
_SSN = re.compile(
    r"[0-9](?<![\w.-].)(?:\d{2}(?P<sep>[- .])\d{2}(?P=sep)\d{4}|\d{8}|\d{2}-\d{6}|\d{4}-\d{4})"
    r"(?![\w]|[.-]\d)"
)
_CARD = re.compile(
    r"[0-9](?<![\w.-].)(?:\d{12,18}|\d{3}(?P<sep>[ -])\d{4,6}(?:(?P=sep)\d{3,5}){1,3})"
    r"(?![\w]|[.-]\d)"
)
_IPV4 = re.compile(r"[0-9](?<![\w.].)\d{0,2}(?:\.\d{1,3}){3}(?!\w)")
_VERSION_BEFORE = re.compile(r"(?:version|ver|release|build|v)\.?\s*[:=]?\s*$", re.IGNORECASE)
_IPV6 = re.compile(
    r"[0-9a-f:](?<![\w:.].)(?:(?<=:)|[0-9a-f]{0,3}:)(?:[0-9a-f]{0,4}:){1,6}"
    r"(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9a-f]{1,4})?"
    r"(?:%[\w.]+)?(?![\w:]|\.\d)",
    re.IGNORECASE,
)
_PHONE_CANDIDATE = re.compile(
    r"[+(0-9](?<![\w+.-].)(?:(?<=\+)\s?\(?[0-9]|(?<=\()\+?[0-9]|(?<=[0-9]))"
    r"[\d \t().\-/]{5,24}\d(?!\w)"
)
_OTHER_SEPARATOR = re.compile(r"[-/()]")
_CN_MOBILE = re.compile(r"1[3-9]\d{9}")
_DATE = re.compile(
    r"[0-9](?<![\d.].)(?:\d{3}-\d{2}-\d{2}|\d?([./-])\d{1,2}\1\d{2,4})"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?(?!\d|[./-]\d)"
)
_DIGIT_GROUP = re.compile(r"\d+")
_SSN_LAYOUT = re.compile(r"\d{3}([- .])\d{2}\1\d{4}")


def find_pii(text: str) -> list[PiiSpan]:
    """Every personal value in `text`, in order, without overlaps (the longest, surest wins)."""
    if not _MAYBE_PII.search(text):
        return []
    found: list[PiiSpan] = []
    if "@" in text:
        found += _email_spans(text)
    has_digit = _DIGIT.search(text) is not None
    if has_digit:
        found += _spans(_SSN, text, PiiType.SSN, _valid_ssn)
        found += _spans(_CARD, text, PiiType.CREDIT_CARD, _valid_card)
        found += [s for s in _spans(_IPV4, text, PiiType.IP, _valid_ip) if not _is_version(text, s)]
    if ":" in text:
        found += _spans(_IPV6, text, PiiType.IP, _valid_ip)
    if has_digit:
        found += _phone_spans(text, found)
    return _resolve_overlaps(found)


def redact(text: str) -> RedactionResult:
    """`text` with every personal value replaced by its placeholder, and the counts by kind."""
    spans = find_pii(text)
    if not spans:
        return RedactionResult(text)
    parts: list[str] = []
    counts: dict[PiiType, int] = {}
    cursor = 0
    for span in spans:
        parts += (text[cursor : span.start], span.type.placeholder)
        counts[span.type] = counts.get(span.type, 0) + 1
        cursor = span.end
    parts.append(text[cursor:])
    return RedactionResult("".join(parts), counts)


class PiiScrubber:
    """A structlog processor that redacts every string in the event dict, however nested."""

    def __init__(
        self,
        *,
        on_redaction: Callable[[str, int], None] | None = None,
        skip_keys: frozenset[str] = frozenset({"timestamp", "level", "logger"}),
    ) -> None:
        """Report each redaction as `on_redaction(type, n)`; leave `skip_keys` (ours) alone."""
        self.on_redaction = on_redaction
        self.skip_keys = skip_keys

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """The same event dict with its string values redacted in place."""
        for key, value in event_dict.items():
            if key not in self.skip_keys:
                event_dict[key] = self._scrub(value)
        return event_dict

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            result = redact(value)
            if self.on_redaction is not None:
                for kind, n in result.counts.items():
                    self.on_redaction(kind.value, n)
            return result.text
        if isinstance(value, Mapping):
            return {key: self._scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._scrub(item) for item in value)
        return value


def _spans(
    pattern: re.Pattern[str], text: str, kind: PiiType, valid: Callable[[str], bool]
) -> Iterator[PiiSpan]:
    for match in pattern.finditer(text):
        if valid(match.group()):
            yield PiiSpan(match.start(), match.end(), kind)


def _email_spans(text: str) -> Iterator[PiiSpan]:
    """Emails, found from each "@" outwards: cheaper than scanning every word for a local part."""
    at = text.find("@")
    while at > 0:
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        if local and domain:
            start = at - len(local.group().lstrip(".+-"))  # punctuation before a name is not it
            if start < at:
                yield PiiSpan(start, domain.end(), PiiType.EMAIL)
        at = text.find("@", at + 1)


def _valid_ssn(value: str) -> bool:
    """SSA rules: no area 000, 666 or 900-999, no group 00, no serial 0000.

    Published placeholders such as 123-45-6789 are redacted too: they are not anyone's
    number, but hiding them costs nothing and a reader cannot tell them apart.
    """
    digits = "".join(ch for ch in value if ch.isdigit())
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return len(set(digits)) > 1


def _valid_card(value: str) -> bool:
    """13-19 digits, an ISO 7812 card industry (1-6; 13 digits only Visa) and the Luhn sum."""
    digits = [int(ch) for ch in value if ch.isdigit()]
    if not 13 <= len(digits) <= 19 or not 1 <= digits[0] <= 6:
        return False
    if len(digits) == 13 and digits[0] != 4:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_version(text: str, span: PiiSpan) -> bool:
    """True when a dotted quad follows a version word: `v1.2.3.4`, `version 10.0.1.2`."""
    return _VERSION_BEFORE.search(text, max(0, span.start - 12), span.start) is not None


def _phone_spans(text: str, known: list[PiiSpan]) -> list[PiiSpan]:
    """Phone numbers in phone-like digit runs, outside values already found and dates."""
    masked = list(text)
    for start, end in [(s.start, s.end) for s in known] + [m.span() for m in _DATE.finditer(text)]:
        masked[start:end] = "x" * (end - start)  # a letter: no digit run can cross it
    found: list[PiiSpan] = []
    for candidate in _PHONE_CANDIDATE.finditer("".join(masked)):
        start = candidate.start()
        found += (
            PiiSpan(start + a, start + b, PiiType.PHONE) for a, b in _phone_in(candidate.group())
        )
    return found


@functools.lru_cache(maxsize=4096)  # the same numbers recur in logs and in re-retrieved chunks
def _phone_in(run: str) -> tuple[tuple[int, int], ...]:
    """Where `run` holds phone numbers: US numbers and every "+CC" number by libphonenumber's
    matcher; other countries' numbers written in groups with the trunk prefix 0 or with the
    country code but no "+", and Chinese mobiles, checked against their numbering plans.
    """
    digits = "".join(ch for ch in run if ch.isdigit())
    if not 7 <= len(digits) <= 17 or ("." in run and _OTHER_SEPARATOR.search(run)):
        return ()  # too short or long for E.164 + extension, or a range of decimals
    if run.startswith("00"):  # the international call prefix most countries dial for "+"
        plus = phonenumbers.PhoneNumberMatcher("+" + run[2:], "US")
        return tuple((m.start and m.start + 1, m.end + 1) for m in plus)
    matches = tuple((m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(run, "US"))
    if matches or run[0] == "+":
        return matches
    groups = _DIGIT_GROUP.findall(run)
    if len(groups) == 1:  # bare digits are ids as often as phones: only the unmistakable
        return ((0, len(run)),) if _CN_MOBILE.fullmatch(digits) and _valid_in(digits, "CN") else ()
    if _SSN_LAYOUT.fullmatch(run):
        return ()  # an SSN that failed validation is not a phone either
    if digits[0] == "0" and digits[1] != "0" and 8 <= len(digits) <= 13:
        regions: tuple[str, ...] = NATIONAL_REGIONS
        national = digits[1:]
    else:
        regions = tuple(r for r in NATIONAL_REGIONS if str(_country_code(r)) == groups[0])
        national = digits[len(groups[0]) :]
    return ((0, len(run)),) if any(_valid_in(national, r) for r in regions) else ()


def _country_code(region: str) -> int:
    return int(phonenumbers.country_code_for_region(region))


def _valid_in(national: str, region: str) -> bool:
    number = phonenumbers.PhoneNumber(
        country_code=_country_code(region), national_number=int(national)
    )
    return bool(phonenumbers.is_valid_number_for_region(number, region))


def _resolve_overlaps(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Keep validated kinds over phones, then longer spans over shorter ones."""
    chosen: list[PiiSpan] = []
    ranked = sorted(spans, key=lambda s: (s.type is PiiType.PHONE, s.start - s.end, s.start))
    for span in ranked:
        if all(span.end <= kept.start or kept.end <= span.start for kept in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)
