"""Find and redact personal data: email, US SSN, phone, IP address, payment card and IBAN.

Each detector is a precompiled regex plus a validator (SSA rules, `ipaddress`, Luhn, the IBAN
registry and mod 97, libphonenumber), so a match is a checked value, not just a digit shape.

Matching runs on a *normalised view* of the text: full-width and other compatibility forms
folded to ASCII (NFKC, one character at a time), every Unicode digit to its ASCII digit, Unicode
spaces and dashes to " " and "-", and invisible format characters (zero-width space and joiners,
soft hyphen, bidi marks, Unicode tags) removed. A card written "４１１１\u200b1111 1111 1111" or
with no-break spaces is therefore found like "4111 1111 1111 1111". Each span found in the view is
mapped back to the original offsets, so the original characters, invisible ones included, are
what is replaced.

Redaction runs on every log line and every retrieved chunk: ASCII text skips the normalisation,
text that cannot hold any of these values (no digit, no "@", no ":", no spelled-out "at")
returns at once, and the phone matcher, the slowest part, only sees digit runs shaped like
phone numbers, with its verdicts cached per run.
"""

from __future__ import annotations

import bisect
import enum
import functools
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import numdb

from tenantrag.backends.cache.lru import TenantLRU
from tenantrag.models import Chunk, Metadata, MetadataValue


class PiiType(enum.StrEnum):
    """The kinds of personal data we redact; the value names it in counts and metrics."""

    EMAIL = "email"
    SSN = "ssn"
    PHONE = "phone"
    IP = "ip"
    CREDIT_CARD = "credit_card"
    IBAN = "iban"

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

    @property
    def total(self) -> int:
        """How many values were replaced, all kinds together."""
        return sum(self.counts.values())


# --- the normalised view ------------------------------------------------------------------------

# Invisible characters that are not format characters (category Cf) but are used the same way:
# variation selectors, the combining grapheme joiner and the Hangul fillers.
_INVISIBLE_EXTRA = frozenset(
    [0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0]
    + list(range(0xFE00, 0xFE10))
    + list(range(0xE0100, 0xE01F0))
)
_FULL_STOPS = frozenset({0x3002, 0xFF61})  # ideographic full stops, read as "." in domains


@functools.lru_cache(maxsize=8192)
def _fold(ch: str) -> str:
    """What one non-ASCII character becomes in the normalised view ("" = removed)."""
    code = ord(ch)
    category = unicodedata.category(ch)
    if category == "Cf" or code in _INVISIBLE_EXTRA:
        return ""
    if category == "Nd":
        return str(unicodedata.decimal(ch))
    if category == "Zs":
        return " "
    if category == "Pd" or code == 0x2212:  # dashes and the minus sign
        return "-"
    if code in _FULL_STOPS:
        return "."
    folded = unicodedata.normalize("NFKC", ch)
    return folded if len(folded) == 1 and folded.isascii() else ch


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """A normalised view of a text and the way back to the original offsets.

    Every kept character maps to one character (so lengths only change where characters were
    removed); `_removed_before[r]` is the view index at which the r-th removed character sat.
    """

    original: str
    text: str
    _removed_at: tuple[int, ...] = ()

    def original_index(self, index: int) -> int:
        """The offset in the original text of view character `index`."""
        return index + bisect.bisect_right(self._removed_at, index)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original offsets of view span [start, end): removed characters inside included."""
        if not self._removed_at:
            return start, end
        return self.original_index(start), self.original_index(end - 1) + 1


def normalize_for_matching(text: str) -> NormalizedText:
    """The normalised view of `text` used for matching (see the module docstring)."""
    if text.isascii():
        return NormalizedText(text, text)
    table = {}
    for ch in set(text):
        if not ch.isascii():
            folded = _fold(ch)
            if folded != ch:
                table[ord(ch)] = folded
    if not table:
        return NormalizedText(text, text)
    view = text.translate(table)
    removed = {chr(code) for code, folded in table.items() if not folded}
    if not removed:
        return NormalizedText(text, view)
    positions = [i for i, ch in enumerate(text) if ch in removed]
    # View index of the r-th removed character: its original index minus those removed before.
    return NormalizedText(text, view, tuple(p - r for r, p in enumerate(positions)))


# --- patterns -----------------------------------------------------------------------------------

_MAYBE_PII = re.compile(r"[0-9@:]|(?<![^\W\d_])(?:at|arroba)(?![^\W\d_])", re.IGNORECASE)
_DIGIT = re.compile(r"[0-9]")
# Python's re scans fastest when a pattern opens with a character class, so each digit pattern
# opens with one and checks the character before it with a lookbehind after it. Word boundaries
# are ASCII: a number right after a Chinese or Japanese word ("电话13812345678") is still found.
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9\u00c0-\uffff][\w.!#$%&'*+/=?^{|}~-]{0,63}\Z")
_EMAIL_DOMAIN = re.compile(
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:xn--[a-z0-9-]{2,59}|[^\W\d_]{2,63})(?![\w-])",
    re.IGNORECASE,
)
# Spelled-out "@" and ".": "jane [at] example [dot] com", "jane(at)example.com",
# "jane at example dot com". Brackets make the intent plain; a bare " at " also needs " dot ".
_AT_WORD = r"(?:at|arroba|ät)"
_DOT_WORD = r"(?:dot|punkt|punto|point|ponto)"  # only in brackets: "at some point in" is prose
# Two searches, each opening with a character class (fast): a bracketed "at", and, only in text
# that holds " dot ", a bare one.
_BRACKETED_AT = re.compile(rf"[\[({{<]\s*(?:{_AT_WORD}|@)\s*[\])}}>]", re.IGNORECASE)
_BARE_AT = re.compile(rf"\s(?:{_AT_WORD})\s", re.IGNORECASE)
_OBFUSCATED_DOMAIN = re.compile(
    rf"(?P<labels>[^\W_][\w-]{{0,62}}(?:(?:\s*[\[({{<]\s*(?:{_DOT_WORD}|\.)\s*[\])}}>]\s*"
    rf"|\s+dot\s+|\.)[^\W_][\w-]{{0,62}})+)",
    re.IGNORECASE,
)
_DOT_FORM = re.compile(rf"\s*[\[({{<]\s*(?:{_DOT_WORD}|\.)\s*[\])}}>]\s*|\s+dot\s+", re.IGNORECASE)
_OBFUSCATED_LOCAL = re.compile(r"[A-Za-z0-9][\w.+-]{0,63}\Z")
_TLD_LETTERS = re.compile(r"[^\W\d_]{2,63}\Z")

# After a pattern's first character: nothing word-like, no "+" (a phone's country code) before it.
_NOT_BEFORE = r"(?<![A-Za-z0-9_.+)-].)"
# Not part of a longer run of digit groups ("+591 800 17 1448" is a phone, not an SSN).
_NOT_IN_GROUPS = r"(?<![0-9+)][ .-].)"
_NOT_MORE_GROUPS = r"(?![A-Za-z0-9_]|[ .-]\d|-[A-Za-z])"
_SSN_FORMATTED = re.compile(
    rf"[0-9]{_NOT_BEFORE}{_NOT_IN_GROUPS}\d{{2}}(?P<sep>[- .])\d{{2}}(?P=sep)\d{{4}}"
    + _NOT_MORE_GROUPS
)
# Nine bare digits and the 3-6 slip ("078-051121") are SSNs unless they sit in a URL or follow
# an id marker ("#", "=", "/", "order", "PMID"); the 5-4 slip is also a ZIP+4 code, so it needs
# the words around to say SSN.
_SSN_LOOSE = re.compile(
    rf"[0-9]{_NOT_BEFORE}{_NOT_IN_GROUPS}(?:\d{{8}}|\d{{2}}[- .]\d{{6}}|\d{{4}}[- .]\d{{4}})"
    + _NOT_MORE_GROUPS
)
_SSN_CONTEXT = re.compile(
    r"\bssns?\b|\bss\s*#|\bss\s*no\b|social\s+security|\bsoc\.?\s*sec|\bssa\b|"
    r"\b(?:itin|taxpayer)\b|sozialversicherung|seguro\s+social|sécurité\s+sociale",
    re.IGNORECASE,
)
# 12-19 digits: contiguous, or in groups (first 4-6, middle 4-6, last 1-6) split by spaces, dots
# or dashes (zero-width characters are gone in the view, no-break spaces are spaces).
_CARD = re.compile(
    rf"[0-9]{_NOT_BEFORE}(?:\d{{11,18}}"
    r"|\d{3,5}(?:[ .-]{1,2}\d{4,6}){1,3}[ .-]{1,2}\d{1,6}"
    r"|\d{3,5}[ .-]{1,2}\d{4,6}[ .-]{1,2}\d{4,6})"
    r"(?![A-Za-z0-9_]|[.,-]\d|-[A-Za-z])"  # "4409607962387-Copy-member" is a page slug
)
_IPV4 = re.compile(r"[0-9](?<![A-Za-z0-9_.+].)\d{0,2}(?:\.\d{1,3}){3}(?![A-Za-z0-9_]|\.\d)")
# Dotted quads that are versions or section numbers, not addresses: after a version word, a tool
# name and "/" (a module path: "bowtie2/2.3.3.1"), or a section, table or figure word or "EC"
# (an enzyme number: "EC 1.14.16.2").
_VERSION_BEFORE = re.compile(
    r"(?:(?:version|ver|release|build|v)\.?\s*[:=]?|[A-Za-z][\w.+-]*/|"
    r"\b(?:EC|section|sect?\.|§|chapter|chap\.|appendix|table|figure|fig\.|step|clause|para\.?)"
    r"\s*)\s*$",
    re.IGNORECASE,
)
_IPV6 = re.compile(
    r"[0-9a-f:](?<![\w:.].)(?:(?<=:)|[0-9a-f]{0,3}:)(?:[0-9a-f]{0,4}:){1,6}"
    r"(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9a-f]{1,4})?"
    r"(?:%[\w.]+)?(?![\w:]|\.\d)",
    re.IGNORECASE,
)
# Two letters, two check digits, then 10-30 letters or digits, in groups or not; cut to the
# registry length of the country in `_iban_spans`.
_IBAN = re.compile(  # opens at the first check digit (a digit class scans fast); start is 2 back
    r"[0-9](?<![A-Za-z0-9_][A-Za-z]{2}.)(?<=[A-Za-z]{2}.)[0-9](?:[ -]?[A-Za-z0-9]){10,30}"
)
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")  # two colons close together, else no IPv6
_EXTENSION = (
    r"(?:\s*,?\s*(?:ext\.?|extension|x|#|доб\.?|poste|durchwahl|anexo|内线|分机)\s*\d{1,6})?"
)
_PHONE_CANDIDATE = re.compile(
    r"[+(0-9](?<![A-Za-z0-9_+.-].)(?:(?<=\+)\s?\(?[0-9]|(?<=\()\+?[0-9]|(?<=[0-9]))"
    rf"[\d \t().\-/]{{5,24}}\d(?:\s?\(\d{{1,6}}\))?{_EXTENSION}(?![A-Za-z0-9_])",
    re.IGNORECASE,
)
_OTHER_SEPARATOR = re.compile(r"[-/()]")
_CN_MOBILE = re.compile(r"1[3-9]\d{9}")
_NANP_SHAPE = re.compile(
    rf"(?:\+?1[-. ]?)?(?:\(\d{{3}}\)\s?|\d{{3}}[-. ])\d{{3}}[-. ]\d{{4}}{_EXTENSION}",
    re.IGNORECASE,
)
# Dates (and date-times) are masked before the phone search; only plausible ones, so that
# "+213-551-23-49-05" keeps its tail.
_DATE = re.compile(
    r"[0-9](?<![\d.].)(?<!\d[./-].)(?:(?P<y>\d{3})-(?P<m>\d{2})-(?P<d>\d{2})|"
    r"(?P<a>\d?)(?P<sep>[./-])(?P<b>\d{1,2})(?P=sep)\d{2,4})"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?(?!\d|[./-]\d)"
)
_DIGIT_GROUP = re.compile(r"\d+")
_SSN_LAYOUT = re.compile(r"\d{3}([- .])\d{2}\1\d{4}")


# --- the public API -----------------------------------------------------------------------------


def find_pii(text: str) -> list[PiiSpan]:
    """Every personal value in `text`, in order, without overlaps (the longest, surest wins).

    Offsets are into `text` itself, whatever the normalised view had to remove or fold.
    """
    if not text.isascii():
        view = normalize_for_matching(text)
        if view.text is not text:
            return [PiiSpan(*view.original_span(s.start, s.end), s.type) for s in _find(view.text)]
    return _find(text)


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


REDACTION_CACHE = 8192  # texts whose redaction is kept, every tenant together
REDACTION_CACHE_CHARS = 8_000_000  # and their characters, kept texts and results together


class RedactionCache(TenantLRU[tuple[str, str], RedactionResult]):
    """`redact()`'s results by (tenant, text), for the passages that come back query after query.

    A search redacts its five hits' texts, titles and metadata every time (a sixth of a
    search's Python under load, docs/benchmarks.md); `redact` is a pure function of the text,
    so a kept result is exactly what it would compute again. The tenant is part of every key:
    one tenant's texts never answer, nor speed up, another tenant's requests. Bounded by
    entries and by characters (chunks run to 4,000); an erased tenant's entries are dropped
    (`forget_tenant`), since the keys are the raw texts.
    """

    def __init__(self, size: int = REDACTION_CACHE, max_chars: int = REDACTION_CACHE_CHARS) -> None:
        super().__init__(
            size, weigh=lambda key, result: len(key[1]) + len(result.text), max_weight=max_chars
        )

    def redact(self, tenant: str, text: str) -> RedactionResult:
        """`redact(text)`, computed once per tenant while the text stays popular."""
        found = self.get((tenant, text))
        if found is None:
            found = redact(text)
            self.put((tenant, text), found)
        return found


class Tally:
    """Redacts the fields of what a reply shows, adding up what it replaced (by kind).

    Titles, document ids, file names (`source`) and metadata are shown beside a chunk's text
    and are redacted like it: one caller collects every count here, then reports them once.
    With a `cache`, results are kept for `tenant` (the counts are still added every time).
    """

    def __init__(self, cache: RedactionCache | None = None, tenant: str = "") -> None:
        if cache is not None and not tenant:
            raise ValueError("a Tally with a cache needs the tenant its entries belong to")
        self.counts: dict[str, int] = {}
        self._cache, self._tenant = cache, tenant

    def text(self, value: str) -> str:
        """`value` redacted; its replacements counted."""
        result = redact(value) if self._cache is None else self._cache.redact(self._tenant, value)
        for kind, n in result.counts.items():
            self.counts[str(kind)] = self.counts.get(str(kind), 0) + n
        return result.text

    def value(self, value: MetadataValue) -> MetadataValue:
        """A metadata value redacted; an integer holding a value becomes its placeholder."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**6:
            shown = self.text(str(value))  # a card or phone number stored as a number
            return value if shown == str(value) else shown
        return value

    def metadata(self, metadata: Metadata) -> dict[str, MetadataValue]:
        """Metadata with its keys and values redacted."""
        return {self.text(k): self.value(v) for k, v in metadata.items()}

    def chunk(self, chunk: Chunk, *, text: bool = True) -> Chunk:
        """The chunk with its id, title, source, metadata (and `text`) redacted."""
        fields: dict[str, Any] = {
            "document_id": self.text(chunk.document_id),
            "title": self.text(chunk.title),
            "source": self.text(chunk.source),
            "metadata": self.metadata(chunk.metadata) if chunk.metadata else chunk.metadata,
        }
        if text:
            fields["text"] = self.text(chunk.text)
        if all(fields[name] == getattr(chunk, name) for name in fields):
            return chunk
        return replace(chunk, **fields)


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


# --- detectors (on the normalised view) ---------------------------------------------------------


def _find(text: str) -> list[PiiSpan]:
    if not _MAYBE_PII.search(text):
        return []
    found: list[PiiSpan] = []
    if "@" in text:
        found += _email_spans(text)
    found += _obfuscated_email_spans(text)
    has_digit = _DIGIT.search(text) is not None
    if has_digit:
        found += [
            _ssn_or_phone(text, s) for s in _spans(_SSN_FORMATTED, text, PiiType.SSN, _valid_ssn)
        ]
        found += [
            s for s in _spans(_SSN_LOOSE, text, PiiType.SSN, _valid_ssn) if _loose_ssn(text, s)
        ]
        found += _card_spans(text)
        found += [
            s for s in _spans(_IPV4, text, PiiType.IP, _valid_ipv4) if not _is_version(text, s)
        ]
        found += _iban_spans(text)
    if ":" in text and _IPV6_HINT.search(text):
        found += _spans(_IPV6, text, PiiType.IP, _valid_ip)
    if has_digit:
        found += _phone_spans(text, found)
    return _resolve_overlaps(found)


def _spans(
    pattern: re.Pattern[str], text: str, kind: PiiType, valid: Callable[[str], bool]
) -> Iterator[PiiSpan]:
    for match in pattern.finditer(text):
        if valid(match.group()):
            yield PiiSpan(match.start(), match.end(), kind)


def _email_spans(text: str) -> Iterator[PiiSpan]:
    """Emails, found from each "@" outwards (one space either side allowed: "jane @ x.org")."""
    at = text.find("@")
    while at > 0:
        before = at - 1 if text[at - 1] == " " else at
        after = at + 2 if text[at + 1 : at + 2] == " " else at + 1
        local = _EMAIL_LOCAL.search(text, max(0, before - 64), before)
        domain = _EMAIL_DOMAIN.match(text, after)
        if local and domain:
            yield PiiSpan(local.start(), domain.end(), PiiType.EMAIL)
        at = text.find("@", at + 1)


_COMMON_TLDS = frozenset(
    (
        "com",
        "org",
        "net",
        "edu",
        "gov",
        "mil",
        "int",
        "io",
        "co",
        "info",
        "biz",
        "me",
        "us",
        "uk",
        "de",
        "fr",
        "es",
        "it",
        "nl",
        "be",
        "ch",
        "at",
        "se",
        "no",
        "dk",
        "fi",
        "pl",
        "pt",
        "br",
        "mx",
        "ar",
        "ca",
        "au",
        "nz",
        "in",
        "cn",
        "jp",
        "kr",
        "ru",
        "ua",
        "tr",
        "gr",
        "ie",
        "cz",
        "hu",
        "ro",
        "il",
        "za",
        "sg",
        "hk",
        "tw",
        "ai",
        "app",
        "dev",
    )
)


def _obfuscated_email_spans(text: str) -> Iterator[PiiSpan]:
    """Emails with a spelled-out or bracketed "@" (and maybe "."), validated once rebuilt."""
    ats = list(_BRACKETED_AT.finditer(text))
    if " dot " in text.lower():
        ats += _BARE_AT.finditer(text)
    for at in ats:
        before = len(text[: at.start()].rstrip())
        local = _OBFUSCATED_LOCAL.search(text, max(0, before - 64), before)
        after = (
            at.end()
            + len(text[at.end() : at.end() + 8])
            - len(text[at.end() : at.end() + 8].lstrip())
        )
        domain = _OBFUSCATED_DOMAIN.match(text, after)
        if not local or not domain:
            continue
        labels = _DOT_FORM.split(domain.group("labels"))
        labels = [p for label in labels for p in label.split(".")]
        if len(labels) < 2 or not _TLD_LETTERS.match(labels[-1]):
            continue
        bare = at.group()[0].isspace()  # bare " at ": needs " dot " words and a familiar TLD
        if bare and (labels[-1].lower() not in _COMMON_TLDS or " " not in domain.group()):
            continue
        yield PiiSpan(local.start(), domain.end(), PiiType.EMAIL)


def _ssn_or_phone(text: str, span: PiiSpan) -> PiiSpan:
    """A "3 2 4" number with spaces or dots is a phone where the words around say phone.

    "Rufen Sie mich unter 800 17 1448 an"; with dashes, or where the words say SSN, it stays
    an SSN.
    """
    if text[span.start + 3] == "-" or _says_ssn(text, span):
        return span
    window = text[max(0, span.start - 40) : span.start] + " " + text[span.end : span.end + 30]
    if _PHONE_CONTEXT.search(window):
        return PiiSpan(span.start, span.end, PiiType.PHONE)
    return span


_ID_MARKER = re.compile(
    r"(?:[#=/:]\s*|\b(?:id|no|nr|num|order|invoice|ticket|case|ref|pmid|doi|isbn|issn|account|"
    r"acct|zip|postal|batch|serial|tracking|po|item|sku|part|build|job|run)\.?\s*[#:=]?\s*)$",
    re.IGNORECASE,
)


def _loose_ssn(text: str, span: PiiSpan) -> bool:
    """Whether an SSN without the "3-2-4" layout counts.

    Where the words say SSN, always; otherwise nine bare digits or a 3-6 slip outside URLs and
    id markers.
    """
    if _says_ssn(text, span):
        return True
    value = text[span.start : span.end]
    if len(value) == 10 and value[5] in "- .":
        return False  # 5-4: a ZIP+4 code as often as an SSN
    if _ID_MARKER.search(text[max(0, span.start - 16) : span.start]):
        return False
    word_start = max(text.rfind(" ", 0, span.start), text.rfind("\n", 0, span.start)) + 1
    return "://" not in text[word_start : span.start]


def _says_ssn(text: str, span: PiiSpan) -> bool:
    """Whether the words just before or after a bare nine-digit number call it an SSN."""
    window = text[max(0, span.start - 40) : span.start] + " " + text[span.end : span.end + 20]
    return _SSN_CONTEXT.search(window) is not None


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


_GROUP_TAIL = re.compile(r"[ .-]{1,2}\d+$")


def _card_spans(text: str) -> Iterator[PiiSpan]:
    """Cards.

    A run that fails validation is tried again without its last group, since the regex is
    greedy ("4012-8888-8888-1881 4012 8888 ..." is two cards side by side).
    """
    pos = 0
    while (match := _CARD.search(text, pos)) is not None:
        value = match.group()
        while not _valid_card(value):
            tail = _GROUP_TAIL.search(value)
            if tail is None or sum(ch.isdigit() for ch in value[: tail.start()]) < 12:
                value = ""
                break
            value = value[: tail.start()]
        if value:
            yield PiiSpan(match.start(), match.start() + len(value), PiiType.CREDIT_CARD)
            pos = match.start() + len(value)
        else:
            pos = match.start() + 1


def _valid_card(value: str) -> bool:
    """12-19 digits, a card industry the length fits and the Luhn sum; one kind of separator.

    First digit 1-6 (ISO 7812: airlines, travel, banking); 12 digits only Maestro (5, 6), 13 only
    Visa and Maestro, 1 (UATP) only with 15.
    """
    separators = {ch for ch in value if not ch.isdigit()}
    if len(separators) > 1 and separators != {" ", "-"}:  # "4111 - 1111" is still one card
        return False
    digits = [int(ch) for ch in value if ch.isdigit()]
    n = len(digits)
    if not 12 <= n <= 19 or not 1 <= digits[0] <= 6:
        return False
    if (n == 12 and digits[0] < 5) or (n == 13 and digits[0] not in (4, 5, 6)):
        return False
    if digits[0] == 1 and n != 15:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _valid_ipv4(value: str) -> bool:
    """Four octets of 0-255; leading zeros allowed ("010.001.002.003" is written too)."""
    return all(int(octet) <= 255 for octet in value.split("."))


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_version(text: str, span: PiiSpan) -> bool:
    """True when a dotted quad reads as a version or section number (see `_VERSION_BEFORE`).

    `v1.2.3.4`, `version 10.0.1.2`, `samtools/1.10.2.3`, `Section 2.3.3.1`.
    """
    return _VERSION_BEFORE.search(text, max(0, span.start - 24), span.start) is not None


@functools.cache
def _iban_lengths() -> dict[str, int]:
    """IBAN length per registry country (from python-stdnum's copy of the SWIFT registry)."""
    db = numdb.get("iban")
    lengths = {}
    for a in range(26):
        for b in range(26):
            country = chr(65 + a) + chr(65 + b)
            props = db.info(country + "00")[0][1]
            if "bban" in props:
                counts = re.findall(r"(\d+)!", props["bban"])
                lengths[country] = 4 + sum(int(c) for c in counts)
    return lengths


def _iban_spans(text: str) -> Iterator[PiiSpan]:
    """IBANs: cut each candidate to its country's registry length, then mod 97 and structure."""
    for match in _IBAN.finditer(text):
        start = match.start() - 2
        country = text[start : start + 2].upper()
        length = _iban_lengths().get(country)
        if length is None:
            continue
        compact = ""
        end = start
        for end in range(start, match.end()):  # noqa: B007  # end is used after the loop
            if text[end].isalnum():
                compact += text[end]
                if len(compact) == length:
                    break
        if len(compact) != length or text[end + 1 : end + 2].isalnum():
            continue
        if _mod97(compact.upper()) and stdnum_iban.is_valid(compact.upper(), check_country=False):
            yield PiiSpan(start, end + 1, PiiType.IBAN)


def _mod97(compact: str) -> bool:
    """The IBAN check (ISO 7064 mod 97-10): cheap, so it runs before the registry look-up."""
    rearranged = compact[4:] + compact[:4]
    if not rearranged.isalnum() or not rearranged.isascii():
        return False
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


# --- phone numbers ------------------------------------------------------------------------------


# Words that say a number nearby is a phone number; with one, national numbers without a
# trunk prefix ("Tel. 2123 4567", "ring 32 12 34 56") are looked up in every country's plan.
_PHONE_CONTEXT = re.compile(
    r"phone|\btel\b|\btel\.|\bcall(?:ed|ing|s)?\b|\bdial|mobile|\bcell(?:phone|\s*phone|\s*:|\s*#)|"
    r"\bfax\b|whatsapp|\bsms\b|hotline|telefon|teléfono|téléphone|telefone|telefono|appel|"
    r"\brufen|anruf|handy|\bligue|\bligar|chiama|cellulare|móvil|portable|"
    r"телефон|звон|моб|手机|电话|電話|連絡|携帯|फ़ोन|फोन|मोबाइल|هاتف|جوال|ফোন|فون|موبائل",
    re.IGNORECASE,
)
# Masked before the phone search: URLs (their digit runs are ids: ".../articles/216771908-Make-
# calls") and year ranges ("1966-1990").
_URL = re.compile(r"[hHwW](?<![A-Za-z0-9_].)(?:ttps?://|ww\.)[^\s<>()\[\]]+", re.IGNORECASE)
_YEAR_RANGE = re.compile(r"[12](?<![\d.-].)[0-9]{3}\s?[-/]\s?[12][0-9]{3}(?!\d|[.-]\d)")
# Shapes that are quantities, not phone numbers, unless words around say "phone": thousands
# in groups of three ("2 135 415"), a decimal ("80.30380"), a range ("3001-3500").
_THOUSANDS = re.compile(r"\d{1,3}(?:[ ,]\d{3})+")
_DECIMAL = re.compile(r"\d+\.\d+")
_RANGE = re.compile(r"(\d+)\s?-\s?(\d+)")
# Scientific text: bracketed citation numbers in a row ("(16) (17) (18) (19"); a range up to a
# number in thousands ("50-500 000"). A phone has at most one bracketed group (its area code).
_REFERENCE_RUN = re.compile(r"\d\)\s*\(\s*\d")
# A bracket opens a phone (its area code: "(212) 717-3298") or follows a trunk or country digit
# ("8 (912) 345-67-89", "+7 (495)"); after a number of two digits or more that is no trunk
# prefix, it holds a range, a year or a unit: "median 454 (376-671)", "Nature 246 (1973), 15".
_VALUE_THEN_BRACKET = re.compile(r"[1-9]\d+\s*\((?!0\))")  # "44 (0) 20 ...": a trunk "(0)"
_RANGE_TO_THOUSANDS = re.compile(r"(\d+)\s?-\s?(\d{1,3}(?:[ ,]\d{3})+)")


def _phone_spans(text: str, known: list[PiiSpan]) -> list[PiiSpan]:
    """Phone numbers in phone-like digit runs, outside values already found and dates."""
    if not _PHONE_CANDIDATE.search(text):
        return []  # most texts: no phone-shaped run at all, so no masks to compute
    masked = list(text)
    masks = [m.span() for m in _DATE.finditer(text) if _plausible_date(m)]
    masks += [m.span() for m in _YEAR_RANGE.finditer(text)]
    if "://" in text or "www." in text:
        masks += [m.span() for m in _URL.finditer(text)]
    for start, end in [(s.start, s.end) for s in known] + masks:
        masked[start:end] = "x" * (end - start)  # a letter: no digit run can cross it
    found: list[PiiSpan] = []
    for candidate in _PHONE_CANDIDATE.finditer("".join(masked)):
        start, end = candidate.span()
        window = text[max(0, start - 40) : start] + " " + text[end : end + 30]
        said = _PHONE_CONTEXT.search(window) is not None
        found += (
            PiiSpan(start + a, start + b, PiiType.PHONE)
            for a, b in _phone_in(candidate.group(), said)
        )
    return found


def _plausible_date(match: re.Match[str]) -> bool:
    """Whether a date-shaped match has a month of 1-12 and a day of 1-31 in some order."""
    if match.group("y") is not None:
        return 1 <= int(match.group("m")) <= 12 and 1 <= int(match.group("d")) <= 31
    first, second = int(match.group()[0] + match.group("a")), int(match.group("b"))
    return (1 <= first <= 31 and 1 <= second <= 12) or (1 <= first <= 12 and 1 <= second <= 31)


@functools.lru_cache(maxsize=4096)  # the same numbers recur in logs and in re-retrieved chunks
def _phone_in(run: str, said: bool) -> tuple[tuple[int, int], ...]:
    """Where `run` holds phone numbers; `said`: words around call it a phone number.

    In order: international numbers ("+CC" or "00CC"), which libphonenumber checks for a
    possible length of that country; US numbers, valid ones in any layout and any number in the
    North American layout ("(555) 013-2456", "555.013.2456"); national numbers written in
    groups with their trunk prefix ("020 7123 4567", "8 (912) 345-67-89"), valid in some
    country's numbering plan; bare Chinese mobiles; and, where the words around say "phone",
    any number valid in some country's plan.
    """
    digits = "".join(ch for ch in run if ch.isdigit())
    if _NANP_SHAPE.fullmatch(run):
        plus = run.startswith("+")
        return _international(run) if plus and not run.startswith("+1") else ((0, len(run)),)
    number = _EXTENSION_TAIL.sub("", run)
    if not 7 <= len(digits) <= 22 or ("." in number and _OTHER_SEPARATOR.search(number)):
        return ()  # too short or long, or a range of decimals
    if run.startswith(("+", "00")):
        return _international(run)
    if "." in number and (" " in number or "\t" in number):
        return ()  # "81 200 40.51": numbers and a decimal, not a phone written with dots
    if _REFERENCE_RUN.search(run) or _VALUE_THEN_BRACKET.match(run):
        return ()  # "(16) (17) (18)", "454 (376-671)", "246 (1973)": citations and measures
    if not said and _looks_like_measure(number):
        return ()  # "7723018.002", "(50-500 000": a decimal or a range, however valid its digits
    matches = tuple((m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(run, "US"))
    if matches == ((0, len(run)),):
        return matches
    groups = _DIGIT_GROUP.findall(run)
    if matches:  # part of the run reads as a US number; the whole may be a national one
        whole = (
            len(groups) > 1 and not _SSN_LAYOUT.fullmatch(run) and _national_somewhere(number, said)
        )
        return ((0, len(run)),) if whole else matches
    if len(groups) == 1 and not said:  # bare digits are ids as often as phones
        return ((0, len(run)),) if _CN_MOBILE.fullmatch(digits) and _valid_in(digits, "CN") else ()
    if _SSN_LAYOUT.fullmatch(run) or len(groups[0]) > 15:
        return ()  # an SSN that failed validation is not a phone either
    whole = _national_somewhere(number, said) or _country_code_first(number)
    return ((0, len(run)),) if whole else ()


def _country_code_first(run: str) -> bool:
    """Whether `run` is a country code without its "+", then a number valid there.

    In three groups or more: "91-415-555-0132", "44 20 7123 4567".
    """
    groups = _DIGIT_GROUP.findall(run)
    if len(groups) < 3 or len(groups[0]) > 3:
        return False
    national = "".join(groups[1:])
    regions = phonenumbers.region_codes_for_country_code(int(groups[0]))
    return 8 <= len(national) <= 12 and any(
        _valid_in(national.removeprefix("0"), r) for r in regions if r != "001"
    )


_EXTENSION_TAIL = re.compile(_EXTENSION.removesuffix("?") + r"\Z", re.IGNORECASE)


def _international(run: str) -> tuple[tuple[int, int], ...]:
    """A "+CC" or "00CC" number: possible for its country (libphonenumber), with extension."""
    shift = 1 if run.startswith("00") else 0
    plus = "+" + run[2:] if shift else run
    found = [
        (max(0, m.start - shift) if m.start else 0, m.end + shift)
        for m in phonenumbers.PhoneNumberMatcher(
            plus, "ZZ", leniency=phonenumbers.Leniency.POSSIBLE
        )
    ]
    return tuple(found)


@functools.cache
def _national_plans() -> tuple[tuple[str, str, re.Pattern[str], frozenset[int]], ...]:
    """(region, trunk prefix or "", general number pattern, possible lengths) of every country.

    Loaded once on first use (about 70 ms).
    """
    plans = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if meta is None or meta.general_desc is None:
            continue
        pattern = meta.general_desc.national_number_pattern
        lengths = frozenset(meta.general_desc.possible_length or ())
        if pattern:
            plans.append((region, meta.national_prefix or "", re.compile(pattern), lengths))
    return tuple(plans)


def _national_somewhere(run: str, said: bool) -> bool:
    """Whether `run` is a national number valid in some country's plan.

    With a trunk prefix (0 or 8, stripped) or a leading 0 that belongs to the number (Italy),
    or where words around say "phone", validity is enough. Otherwise the number must also be
    grouped exactly as that country prints it ("2123 4567" in Hong Kong, "912 34 56 78" in
    Spain): plain validity would take thousands separators and ranges for phones.
    """
    digits = "".join(ch for ch in run if ch.isdigit())
    trunk_like = digits[0] in "08"
    layout = tuple(len(g) for g in _DIGIT_GROUP.findall(run))
    if not said and (
        _looks_like_quantity(run) or (not trunk_like and ("/" in run or len(layout) < 2))
    ):
        return False
    for region, prefix, pattern, lengths in _national_plans():
        if prefix and digits.startswith(prefix):
            national = digits[len(prefix) :]
        elif said or not prefix or not trunk_like:
            national = digits
        else:
            continue
        if len(national) not in lengths or not pattern.fullmatch(national):
            continue
        if not _valid_in(national, region):
            continue
        if said or (trunk_like and (national is not digits or not prefix)):
            return True
        if _printed_layout(national, region) == layout:
            return True
    return False


def _looks_like_quantity(run: str) -> bool:
    """Thousands, a decimal or an ascending range: a quantity, written like a phone number."""
    run = run.strip("() ")
    if _THOUSANDS.fullmatch(run) or _DECIMAL.fullmatch(run):
        return True
    bounds = _RANGE.fullmatch(run)  # a range never opens with 0; "09-7625400" is a number
    return bounds is not None and run[0] != "0" and int(bounds.group(1)) < int(bounds.group(2))


def _looks_like_measure(run: str) -> bool:
    """A decimal or an ascending range up to thousands: a measure, not a phone number.

    So even where libphonenumber takes its digits for a valid number ("7723018.002" holds a
    valid US number). A phone written with dots has two dots or more ("555.013.2456"), and
    one that opens with a trunk 0 is no range ("09-7625 400").
    """
    run = run.strip("() ")
    if _DECIMAL.fullmatch(run):
        return True
    bounds = _RANGE_TO_THOUSANDS.fullmatch(run)
    if bounds is None or run[0] == "0":
        return False
    return int(bounds.group(1)) < int(re.sub(r"\D", "", bounds.group(2)))


@functools.lru_cache(maxsize=1024)
def _printed_layout(national: str, region: str) -> tuple[int, ...]:
    """The digit-group lengths of a number as its country prints it in national format."""
    number = phonenumbers.PhoneNumber(
        country_code=_country_code(region),
        national_number=int(national),
        italian_leading_zero=national.startswith("0") or None,
    )
    printed = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return tuple(len(g) for g in _DIGIT_GROUP.findall(printed))


def _country_code(region: str) -> int:
    return int(phonenumbers.country_code_for_region(region))


def _valid_in(national: str, region: str) -> bool:
    """Whether `national` is a valid number of `region`.

    By libphonenumber's number-type patterns, compiled once per region here: its own checks
    recompile them through `re`'s small cache, which dozens of regions overflow.
    """
    return any(
        len(national) in lengths and pattern.fullmatch(national) is not None
        for pattern, lengths in _type_patterns(region)
    )


_NUMBER_TYPES = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)


@functools.cache
def _type_patterns(region: str) -> tuple[tuple[re.Pattern[str], frozenset[int]], ...]:
    """(number pattern, possible lengths) of each number type `region` has."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if meta is None or meta.general_desc is None:
        return ()
    general = frozenset(meta.general_desc.possible_length or ())
    out = []
    for name in _NUMBER_TYPES:
        desc = getattr(meta, name, None)
        if desc is None or not desc.national_number_pattern:
            continue
        lengths = frozenset(desc.possible_length or ()) or general
        out.append((re.compile(desc.national_number_pattern), lengths))
    return tuple(out)


def _resolve_overlaps(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Keep validated kinds over phones, then longer spans over shorter ones."""
    chosen: list[PiiSpan] = []
    ranked = sorted(spans, key=lambda s: (s.type is PiiType.PHONE, s.start - s.end, s.start))
    for span in ranked:
        if all(span.end <= kept.start or kept.end <= span.start for kept in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)
