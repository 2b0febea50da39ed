"""The PII evaluation set: labelled values built by generators, and PII-free text.

Values come from public test vectors and generators, never from a list we tuned against:
phone numbers from libphonenumber's own example numbers per region and type (and valid
neighbours of them), printed in every format the library knows plus the ways people write them
(dots, dashes, `00` for `+`, `(0)`, extensions); Faker's locale phone formats; Luhn-valid card
numbers of every length 12-19 and the main brands, with spaces, dots, dashes, no-break spaces,
full-width digits or zero-width characters between digits; SSNs in every separator; emails from
Faker, obfuscated in the ways people do (`[at]`, `(dot)`, ` at `, a full-width `＠`); IPv4 with
leading zeros, IPv6 in every compressed form, with zones, IPv4-mapped; IBANs from the IBAN
registry's published examples and random valid ones for every registry country.

The set has two parts with disjoint seeds, regions, Faker locales and sentence templates:
`dev` is what the detector was tuned on, `heldout` was only ever scored (see bench/pii_recall.py).
A few format variants exist only in `heldout`, so that its score says something about formats
nobody looked at while writing the detector.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from stdnum import iban as stdnum_iban

PARTS = ("dev", "heldout")
KINDS = ("phone", "email", "ssn", "ip", "credit_card", "iban")


@dataclass(frozen=True, slots=True)
class Value:
    """One labelled value: `text[start:end]` of a case is a `kind`, made by generator `source`."""

    start: int
    end: int
    kind: str
    source: str


@dataclass(frozen=True, slots=True)
class Case:
    """A sentence holding one labelled value."""

    text: str
    value: Value

    @property
    def raw(self) -> str:
        """The value as written in the text."""
        return self.text[self.value.start : self.value.end]


def _split(items: list[str], part: str) -> list[str]:
    """Every other item, by sorted order: the parts never share a region, locale or template."""
    ordered = sorted(items)
    return ordered[0::2] if part == "dev" else ordered[1::2]


# Templates are disjoint between parts: the dev ones were read while tuning, the held-out ones not.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "dev": {
        "phone": (
            "Call me at {v}.",
            "Phone: {v}",
            "You can reach the front desk on {v} until 5 pm.",
            "Contact: Maria Lopez, {v}",
            "{v} is my mobile number.",
            "Mi número es {v}, llámame.",
            "电话：{v}",
            "Rufen Sie mich unter {v} an.",
            "Appelez le {v} s'il vous plaît.",
            "The new hire listed {v} on the form",
        ),
        "email": (
            "Send the report to {v} by Friday.",
            "Contact: {v}",
            "{v} wrote back yesterday.",
            "Meine Adresse ist {v}.",
            "The reviewer ({v}) approved it.",
        ),
        "ssn": (
            "SSN: {v}",
            "Her social security number is {v}.",
            "Employee SSN {v} was entered twice.",
            "SS# {v}",
        ),
        "ip": (
            "Login from {v} failed three times.",
            "The server at {v} is down.",
            "client={v} status=403",
            "Block {v} at the firewall.",
        ),
        "credit_card": (
            "Card number: {v}",
            "Please charge {v} for the conference fee.",
            "Paid with {v} on 3 March.",
            "Karte {v}, gültig bis 09/27",
        ),
        "iban": (
            "IBAN: {v}",
            "Please transfer the deposit to {v}.",
            "Bankverbindung {v} (Sparkasse)",
        ),
    },
    "heldout": {
        "phone": (
            "For support dial {v} anytime.",
            "Mobile - {v}",
            "Numéro de téléphone : {v}",
            "Телефон: {v}",
            "WhatsApp {v}",
            "My number ({v}) changed last week.",
            "連絡先 {v}",
            "Ligue para {v} amanhã.",
            "फ़ोन: {v}",
            "Emergency contact {v}; after hours use the hotline.",
        ),
        "email": (
            "Reply-To: {v}",
            "Questions go to {v} please.",
            "Escríbeme a {v}.",
            "cc {v}; bcc the team",
            "邮箱：{v}",
        ),
        "ssn": (
            "social security no. {v}",
            "Applicant's SSN is {v}",
            "SSN {v} (verified)",
            "Sozialversicherungsnummer (US SSN): {v}",
        ),
        "ip": (
            "Traffic spike from {v} at noon.",
            "remote_addr: {v}",
            "Whitelisted host {v}, see ticket.",
            "Die Adresse {v} ist gesperrt.",
        ),
        "credit_card": (
            "CC: {v}",
            "Número de tarjeta {v}",
            "She read the card out as {v} over the phone.",
            "Payment card {v} declined",
        ),
        "iban": (
            "Compte : {v}",
            "Wire to account {v} before the 5th.",
            "IBAN {v}",
        ),
    },
}


# --- phone numbers -------------------------------------------------------------------------

PHONE_TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.VOIP,
)
EXTENSIONS = {
    "dev": (" ext. {e}", " x{e}", " ext {e}"),
    "heldout": (" extension {e}", " x {e}", ", ext. {e}", " #{e}"),
}


def _neighbour(number: phonenumbers.PhoneNumber, rng: random.Random) -> phonenumbers.PhoneNumber:
    """A valid number like `number` with its last digits changed (the example itself if none)."""
    national = str(number.national_number)
    for _ in range(20):
        tail = "".join(rng.choice(string.digits) for _ in range(min(3, len(national) - 1)))
        candidate = phonenumbers.PhoneNumber(
            country_code=number.country_code,
            national_number=int(national[: -len(tail)] + tail),
            italian_leading_zero=number.italian_leading_zero,
            number_of_leading_zeros=number.number_of_leading_zeros,
        )
        if phonenumbers.is_valid_number(candidate):
            return candidate
    return number


def _phone_renderings(
    number: phonenumbers.PhoneNumber, region: str, part: str, rng: random.Random
) -> Iterator[tuple[str, str]]:
    """(written form, format name) for one number."""
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    yield international, "international"
    yield e164, "e164"
    yield national, "national"
    yield "00" + international[1:], "00-prefix"
    cc = str(number.country_code)
    rest = international[len(cc) + 2 :]
    yield f"+{cc}-{rest.replace(' ', '-')}", "international-dashes"
    yield f"+{cc}.{rest.replace(' ', '.').replace('-', '.')}", "international-dots"
    prefix = phonenumbers.PhoneMetadata.metadata_for_region(region)
    trunk = prefix.national_prefix if prefix is not None else None
    if trunk and national.startswith(trunk):
        yield f"+{cc} ({trunk}){national[len(trunk) :].lstrip()}", "plus-trunk"
    ext = rng.choice(EXTENSIONS[part]).format(e=rng.randint(1, 99999))
    yield international + ext, "extension"
    if part == "heldout":  # formats nobody looked at while writing the detector
        yield f"+{cc} {rest.replace(' ', '').replace('-', '')}", "cc-then-block"
        yield national.replace(" ", "/", 1), "national-slash"
        yield e164, "tel-uri"  # labelled below: the value is the number after "tel:"


def phone_cases(part: str, seed: int) -> Iterator[Case]:
    """libphonenumber's example numbers (and valid neighbours) of this part's regions."""
    rng = random.Random(seed)
    regions = _split(sorted(phonenumbers.SUPPORTED_REGIONS), part)
    templates = TEMPLATES[part]["phone"]
    for region in regions:
        for kind in PHONE_TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None or not phonenumbers.is_valid_number(example):
                continue
            number = _neighbour(example, rng)
            for written, fmt in _phone_renderings(number, region, part, rng):
                template = rng.choice(templates)
                if fmt == "tel-uri":
                    template = template.replace("{v}", "tel:{v}")
                yield _embed(template, written, "phone", f"libphonenumber:{fmt}")


FAKER_PHONE_LOCALES = [
    "en_US",
    "en_GB",
    "de_DE",
    "fr_FR",
    "es_ES",
    "it_IT",
    "nl_NL",
    "pt_BR",
    "pt_PT",
    "ja_JP",
    "zh_CN",
    "ru_RU",
    "hi_IN",
    "pl_PL",
    "sv_SE",
    "en_AU",
    "en_CA",
    "de_AT",
    "de_CH",
    "fr_CH",
    "es_MX",
    "en_IN",
    "da_DK",
    "fi_FI",
    "no_NO",
    "cs_CZ",
    "hu_HU",
    "tr_TR",
    "ko_KR",
    "zh_TW",
    "en_NZ",
    "en_IE",
    "el_GR",
    "ro_RO",
    "uk_UA",
    "th_TH",
]


def faker_phone_cases(part: str, seed: int, per_locale: int = 25) -> Iterator[Case]:
    """Faker's phone formats per locale: shapes people write, not always valid numbers."""
    from faker import Faker

    rng = random.Random(seed)
    for locale in _split(FAKER_PHONE_LOCALES, part):
        fake = Faker(locale)
        fake.seed_instance(seed)
        for _ in range(per_locale):
            written = fake.phone_number()
            yield _embed(rng.choice(TEMPLATES[part]["phone"]), written, "phone", f"faker:{locale}")


# --- cards -----------------------------------------------------------------------------------

CARD_PREFIXES: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "visa": (("4",), (13, 16, 19)),
    "mastercard": (("51", "52", "53", "54", "55", "2221", "2500", "2720"), (16,)),
    "amex": (("34", "37"), (15,)),
    "discover": (("6011", "65", "644", "649"), (16, 19)),
    "diners": (("300", "305", "36", "38"), (14,)),
    "jcb": (("3528", "3589"), (16, 17, 18, 19)),
    "maestro": (("50", "56", "58", "6304", "6759"), (12, 13, 15, 16, 18, 19)),
    "unionpay": (("62",), (16, 17, 18, 19)),
}
# Payment networks' published test numbers (Stripe, PayPal, Adyen documentation).
PUBLISHED_CARDS = (
    "4111111111111111",
    "4012888888881881",
    "4222222222222",
    "5555555555554444",
    "5105105105105100",
    "2223003122003222",
    "378282246310005",
    "371449635398431",
    "6011111111111117",
    "6011000990139424",
    "3530111333300000",
    "3566002020360505",
    "30569309025904",
    "38520000023237",
    "6200000000000005",
    "6759649826438453",
    "4000056655665556",
    "5200828282828210",
    "36227206271667",
    "6205500000000000004",
)
CARD_SEPARATORS = {
    "dev": (" ", "-", ".", "\u00a0", "\u200b", " \u200b"),
    "heldout": (" ", "-", ".", "\u00a0", "\u202f", "\u2060", "\u2009", "\u200c"),
}


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    """A random `length`-digit number starting with `prefix` whose Luhn sum is right."""
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        if luhn_ok(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always fits")


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _group(digits: str) -> list[str]:
    """The usual print grouping: Amex 4-6-5, Diners 4-6-4, else fours."""
    if len(digits) in (14, 15) and digits[0] == "3":
        return [digits[:4], digits[4:10], digits[10:]]
    return [digits[i : i + 4] for i in range(0, len(digits), 4)]


def _card_renderings(digits: str, part: str, rng: random.Random) -> Iterator[tuple[str, str]]:
    yield digits, "plain"
    groups = _group(digits)
    for sep in CARD_SEPARATORS[part]:
        yield sep.join(groups), f"groups:{sep!a}"
    yield "".join(chr(ord(d) + 0xFEE0) for d in digits), "full-width"
    wide = "".join(chr(ord(d) + 0xFEE0) for d in groups[0])
    yield wide + " " + " ".join(groups[1:]), "full-width-first-group"
    yield "\u200b".join(digits), "zero-width-every-digit"
    if part == "heldout":
        yield "\u3000".join("".join(chr(ord(d) + 0xFEE0) for d in g) for g in groups), "ideo-space"
        yield "-".join(groups[:2]) + " " + " ".join(groups[2:]), "mixed-separators"


def card_cases(part: str, seed: int, per_brand: int = 6) -> Iterator[Case]:
    """Luhn-valid numbers of every brand and length, and the networks' published test numbers."""
    rng = random.Random(seed)
    numbers = [(n, "published") for n in PUBLISHED_CARDS[(0 if part == "dev" else 1) :: 2]]
    for brand, (prefixes, lengths) in CARD_PREFIXES.items():
        for _ in range(per_brand):
            length = rng.choice(lengths)
            numbers.append((luhn_complete(rng.choice(prefixes), length, rng), brand))
    for digits, brand in numbers:
        for written, fmt in _card_renderings(digits, part, rng):
            template = rng.choice(TEMPLATES[part]["credit_card"])
            yield _embed(template, written, "credit_card", f"card:{brand}:{len(digits)}:{fmt}")


# --- SSN, email, IP, IBAN ----------------------------------------------------------------------


def _ssn_digits(rng: random.Random) -> str:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            return f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"


def ssn_cases(part: str, seed: int, n: int = 120) -> Iterator[Case]:
    """Valid SSNs (no area 000, 666 or 9xx) with dashes, spaces, dots, Unicode dashes or none."""
    rng = random.Random(seed)
    seps = ["-", " ", ".", "", "\u2013", "\u2010"]
    if part == "heldout":
        seps += ["\u2011", "\u00a0", "\u2212"]
    for _ in range(n):
        d = _ssn_digits(rng)
        sep = rng.choice(seps)
        written = f"{d[:3]}{sep}{d[3:5]}{sep}{d[5:]}"
        fmt = {"": "none", "-": "dash", " ": "space", ".": "dot"}.get(sep, f"unicode:{sep!a}")
        yield _embed(rng.choice(TEMPLATES[part]["ssn"]), written, "ssn", f"ssn:{fmt}")


FAKER_EMAIL_LOCALES = ["en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "pl_PL"]
OBFUSCATIONS: dict[str, tuple[tuple[str, str, str], ...]] = {
    # (name, at, dot)
    "dev": (
        ("plain", "@", "."),
        ("brackets", " [at] ", " [dot] "),
        ("parens-tight", "(at)", "."),
        ("words", " at ", " dot "),
        ("spaced-at", " @ ", "."),
        ("full-width-at", "\uff20", "."),
        ("brackets-upper", " [AT] ", " [DOT] "),
    ),
    "heldout": (
        ("plain", "@", "."),
        ("parens", " (at) ", " (dot) "),
        ("braces", " {at} ", " {dot} "),
        ("brackets-tight", "[at]", "[dot]"),
        ("spaced-at-left", " @", "."),
        ("small-at", "\ufe6b", "."),
        ("angle", " <at> ", " <dot> "),
    ),
}


def email_cases(part: str, seed: int, per_style: int = 25) -> Iterator[Case]:
    """Faker emails, plain and obfuscated."""
    from faker import Faker

    rng = random.Random(seed)
    fakes = []
    for locale in _split(FAKER_EMAIL_LOCALES, part):
        fake = Faker(locale)
        fake.seed_instance(seed)
        fakes.append(fake)
    for name, at, dot in OBFUSCATIONS[part]:
        for _ in range(per_style):
            fake = rng.choice(fakes)
            address = rng.choice((fake.email, fake.free_email, fake.company_email))()
            local, domain = address.split("@")
            written = local + at + dot.join(domain.split("."))
            yield _embed(rng.choice(TEMPLATES[part]["email"]), written, "email", f"email:{name}")


def _ipv6(rng: random.Random) -> str:
    import ipaddress

    groups = [rng.getrandbits(16) if rng.random() < 0.6 else 0 for _ in range(8)]
    return str(ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups)))


def ip_cases(part: str, seed: int, n: int = 40) -> Iterator[Case]:
    """IPv4 (plain, leading zeros, with port) and IPv6 in compressed, full, zoned, mapped forms."""
    import ipaddress

    rng = random.Random(seed)
    templates = TEMPLATES[part]["ip"]
    for _ in range(n):
        v4 = ipaddress.IPv4Address(rng.getrandbits(32))
        octets = str(v4).split(".")
        v6 = ipaddress.IPv6Address(_ipv6(rng))
        forms = [
            (str(v4), "ipv4"),
            (".".join(o.zfill(3) for o in octets), "ipv4-zero-padded"),
            (".".join(o.zfill(rng.choice((1, 2, 3))) for o in octets), "ipv4-some-zeros"),
            (v6.compressed, "ipv6-compressed"),
            (v6.exploded, "ipv6-exploded"),
            (v6.compressed.upper(), "ipv6-upper"),
            (f"{v6.compressed}%eth{rng.randint(0, 3)}", "ipv6-zone"),
            (f"::ffff:{v4}", "ipv4-mapped"),
            (f"fe80::{rng.getrandbits(16):x}:{rng.getrandbits(16):x}%{rng.randint(1, 20)}", "link"),
            (f"2001:db8::{rng.getrandbits(16):x}", "ipv6-doc"),
        ]
        if part == "heldout":
            forms += [
                (f"::{rng.getrandbits(16):x}", "ipv6-leading-compression"),
                (f"{rng.getrandbits(16):x}::", "ipv6-trailing-compression"),
                (f"64:ff9b::{v4}", "ipv4-embedded"),
                (f"0:0:0:0:0:ffff:{v4}", "ipv4-mapped-full"),
            ]
        for written, fmt in forms:
            yield _embed(rng.choice(templates), written, "ip", f"ip:{fmt}")


# The IBAN registry's own examples (SWIFT IBAN Registry, "IBAN print format example").
REGISTRY_IBANS = (
    "AD12 0001 2030 2003 5910 0100",
    "AT61 1904 3002 3457 3201",
    "BE68 5390 0754 7034",
    "CH93 0076 2011 6238 5295 7",
    "CZ65 0800 0000 1920 0014 5399",
    "DE89 3704 0044 0532 0130 00",
    "DK50 0040 0440 1162 43",
    "ES91 2100 0418 4502 0005 1332",
    "FI21 1234 5600 0007 85",
    "FR14 2004 1010 0505 0001 3M02 606",
    "GB29 NWBK 6016 1331 9268 19",
    "IE29 AIBK 9311 5212 3456 78",
    "IT60 X054 2811 1010 0000 0123 456",
    "NL91 ABNA 0417 1643 00",
    "NO93 8601 1117 947",
    "PL61 1090 1014 0000 0712 1981 2874",
    "PT50 0002 0123 1234 5678 9015 4",
    "SE45 5000 0000 0583 9825 7466",
    "SA03 8000 0000 6080 1016 7519",
    "BR18 0036 0305 0000 1000 9795 493C 1",
    "MT84 MALT 0110 0001 2345 MTLC AST0 01S",
    "TR33 0006 1005 1978 6457 8413 26",
)


def random_iban(country: str, structure: str, rng: random.Random) -> str:
    """A random IBAN of `country` following its registry BBAN structure, with right check digits."""
    import re

    bban = ""
    for count, kind in re.findall(r"(\d+)!([nac])", structure):
        alphabet = {"n": string.digits, "a": string.ascii_uppercase}.get(
            kind, string.digits + string.ascii_uppercase
        )
        bban += "".join(rng.choice(alphabet) for _ in range(int(count)))
    check = stdnum_iban.calc_check_digits(country + "00" + bban)
    return country + check + bban


def iban_cases(part: str, seed: int) -> Iterator[Case]:
    """Registry examples and a random valid IBAN per registry country, compact and grouped."""
    from stdnum import numdb

    rng = random.Random(seed)
    structures = {}
    db = numdb.get("iban")
    for country in [a + b for a in string.ascii_uppercase for b in string.ascii_uppercase]:
        info = db.info(country + "00")
        props = info[0][1]
        if "bban" in props:
            structures[country] = props["bban"]
    numbers = [n.replace(" ", "") for n in REGISTRY_IBANS[(0 if part == "dev" else 1) :: 2]]
    numbers += [random_iban(c, structures[c], rng) for c in _split(list(structures), part)]
    for compact in numbers:
        grouped = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
        forms = [(compact, "compact"), (grouped, "grouped")]
        if part == "heldout":
            forms += [(grouped.replace(" ", "-"), "dashes"), (grouped.lower(), "lower")]
        for written, fmt in forms:
            yield _embed(rng.choice(TEMPLATES[part]["iban"]), written, "iban", f"iban:{fmt}")


def _embed(template: str, value: str, kind: str, source: str) -> Case:
    start = template.index("{v}")
    text = template.replace("{v}", value)
    return Case(text, Value(start, start + len(value), kind, source))


GENERATORS: dict[str, Callable[[str, int], Iterator[Case]]] = {
    "phone": phone_cases,
    "phone-faker": faker_phone_cases,
    "credit_card": card_cases,
    "ssn": ssn_cases,
    "email": email_cases,
    "ip": ip_cases,
    "iban": iban_cases,
}


def positive_cases(part: str) -> list[Case]:
    """Every labelled case of one part (seeded: the same list on every run)."""
    seed = 1 if part == "dev" else 2
    return [case for generate in GENERATORS.values() for case in generate(part, seed)]


# --- PII-free text ----------------------------------------------------------------------------

CLEAN_TEMPLATES = (
    "Released on {date}; see version {version} for the fix.",
    "ISBN {isbn}, published {date}.",
    "Total: {amount} (incl. VAT), invoice {invoice}.",
    "Build {version} passed {n} of {m} tests in {secs} s.",
    "def f(x):\n    return x * {n} + 0x{hexnum:x}  # line {m}",
    "commit {sha} on {date} bumped {pkg} from {version} to {version2}",
    "The budget grew from {amount} to {amount2} between {year} and {year2}.",
    "Meeting on {date} at {time} in room {room}.",
    "p < 0.{p:03d}, 95% CI {ci1}-{ci2}, n = {n}",
    "GET /api/v{vmaj}/items/{n}?page={m} 200 {secs} ms",
    "Order #{invoice} shipped {date}, tracking {tracking}.",
    "uuid={uuid} size={n} bytes ts={ts}",
    "Coordinates {lat}, {lon}; elevation {m} m.",
    "Table 3: {n} {m} {n2} {m2} {p} {p2}",
)


def _isbn13(rng: random.Random) -> str:
    body = "978" + "".join(rng.choice(string.digits) for _ in range(9))
    check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10) % 10
    digits = body + str(check)
    return rng.choice(
        [digits, f"{digits[:3]}-{digits[3]}-{digits[4:6]}-{digits[6:12]}-{digits[12]}"]
    )


def generated_clean(seed: int, n: int = 600) -> list[str]:
    """Dates, versions, ISBNs, amounts, code, ids and tables: numbers that are not PII."""
    import uuid

    rng = random.Random(seed)
    out = []
    for i in range(n):
        year = rng.randint(1990, 2030)
        values = {
            "date": rng.choice(
                [
                    f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{year}",
                    f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/{year}",
                    f"March {rng.randint(1, 28)}, {year}",
                ]
            ),
            "version": f"{rng.randint(0, 20)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",
            "version2": f"v{rng.randint(0, 20)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
            "isbn": _isbn13(rng),
            "amount": rng.choice(
                [
                    f"${rng.randint(1, 10**7):,}.{rng.randint(0, 99):02d}",
                    f"€ {rng.randint(1, 10**6):,}".replace(",", ".") + f",{rng.randint(0, 99):02d}",
                    f"{rng.randint(1000, 10**7):,} USD".replace(",", " "),
                ]
            ),
            "amount2": f"${rng.randint(1, 10**9):,}",
            "invoice": str(rng.randint(10**5, 10**8)),
            "n": rng.randint(1, 5000),
            "m": rng.randint(1, 5000),
            "n2": rng.randint(1, 999),
            "m2": rng.randint(1, 999),
            "p": rng.randint(1, 999),
            "p2": rng.randint(1, 999),
            "secs": f"{rng.random() * 100:.2f}",
            "hexnum": rng.getrandbits(32),
            "sha": f"{rng.getrandbits(160):040x}",
            "pkg": rng.choice(["numpy", "fastapi", "react", "django"]),
            "year": year,
            "year2": year + rng.randint(1, 10),
            "time": f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
            "room": f"{rng.randint(1, 12)}.{rng.randint(100, 400)}",
            "ci1": f"{rng.random() * 2:.2f}",
            "ci2": f"{rng.random() * 2 + 2:.2f}",
            "vmaj": rng.randint(1, 3),
            "tracking": f"1Z{rng.getrandbits(64):016X}",
            "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
            "ts": rng.randint(1.5e9, 1.8e9),
            "lat": f"{rng.uniform(-90, 90):.5f}",
            "lon": f"{rng.uniform(-180, 180):.5f}",
        }
        out.append(CLEAN_TEMPLATES[i % len(CLEAN_TEMPLATES)].format(**values))
    return out


def corpus_clean(
    data: Path, part: str, *, abstracts: int = 1500, chunk_chars: int = 1000
) -> dict[str, list[str]]:
    """SciFact abstracts and 18F handbook pages cut into chunks, each part its own half."""
    abstracts_all = [json.loads(line)["text"] for line in (data / "scifact/corpus.jsonl").open()]
    pages = [
        json.loads(line)["text"]
        for line in (data / "enterprise_docs/18f_handbook/corpus.jsonl").open()
    ]
    pick = slice(0, None, 2) if part == "dev" else slice(1, None, 2)
    chunks = [
        page[i : i + chunk_chars] for page in pages[pick] for i in range(0, len(page), chunk_chars)
    ]
    return {"scifact": abstracts_all[pick][:abstracts], "handbook": chunks}
