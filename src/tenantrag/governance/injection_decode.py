"""Decode what an attacker hid in a text, so the same injection rules can read it again.

Injections get past pattern lists by being encoded: "aWdub3JlIGFsbCBwcmV2aW91cyBpbnN0cnVjdGlvbnM="
(base64), "vtaber nyy cerivbhf vafgehpgvbaf" (rot13), "69676e6f7265..." (hex), "ignore%20all%20..."
(URL encoding), instructions written in invisible Unicode tag characters (U+E0020-E007E mirror
ASCII), or words with Cyrillic and Greek look-alike letters ("ignоre" with a Cyrillic о).

`decoded_views(text)` returns each readable text such a layer hides, named by its decoder. A view
only counts when it decodes to readable text (mostly printable, with letters and spaces), so ids,
hashes and digests, which decode to noise, yield nothing. The functions are pure and cheap when
there is nothing to decode: each decoder first looks for its tell-tale shape with one regex.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
import urllib.parse

MIN_PAYLOAD_CHARS = 12  # shorter decoded runs are ids and flags, not instructions

# Base64 tokens: 16+ characters of the alphabet (standard or URL-safe), padding allowed.
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX = re.compile(
    r"[0-9A-Fa-f\\](?<![0-9A-Za-z\\].)(?:"
    r"(?<=\\)x[0-9A-Fa-f]{2}(?:\\x[0-9A-Fa-f]{2}){7,}"  # \x49\x67...
    r"|(?<=0)x[0-9A-Fa-f]{2}(?:[\s:,]*0x[0-9A-Fa-f]{2}){7,}"  # 0x49 0x67 ...
    r"|(?<=[0-9A-Fa-f])[0-9A-Fa-f][\s:,]?(?:[0-9A-Fa-f]{2}[\s:,]?){7,})"  # 4967... / 49 67 ...
)
_HEX_DIGITS = re.compile(r"\\x|0x|[\s:,]")
_CYRILLIC_OR_GREEK = re.compile(r"[\u0370-\u04ff]")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_LETTERS = re.compile(r"[^\W\d_]")
# Cyrillic and Greek letters that look like Latin ones, folded only inside words that mix them
# with Latin letters ("ignоre"): a Russian or Greek word on its own stays what it is.
_CONFUSABLES = str.maketrans(
    "асеорхуіјѕԁԛԝАВСЕНІЈКМОРЅТХУαβεικνορτυχΑΒΕΗΙΚΜΝΟΡΤΥΧ",
    "aceopxyijsdqwABCEHIJKMOPSTXYabeiknoptuxABEHIKMNOPTYX",
)
_MIXED = re.compile(r"[a-zA-Z][\u0370-\u04ff]|[\u0370-\u04ff][a-zA-Z]")
_WORD_AROUND = re.compile(r"\w+")
_ROT13_HINT = re.compile(r"\brot[\s-]?13\b|\bcaesar\b|\bcipher\b", re.IGNORECASE)
# Common English words: plain English text holds several, its rot13 almost none (and the other way
# round for rot13 text), which says whether rot13 is worth a look.
_COMMON = frozenset(
    (
        "the",
        "and",
        "you",
        "your",
        "all",
        "to",
        "of",
        "is",
        "are",
        "previous",
        "instructions",
        "ignore",
        "now",
        "system",
        "prompt",
        "say",
        "tell",
        "me",
        "what",
        "with",
        "for",
        "from",
        "this",
        "that",
        "print",
        "full",
        "history",
        "conversation",
        "keys",
        "reveal",
        "rules",
        "answer",
        "output",
        "password",
        "secret",
        "forget",
        "everything",
        "not",
        "do",
        "it",
        "in",
        "hidden",
        "instruction",
        "disregard",
        "above",
        "only",
    )
)
# (No word here whose rot13 is itself English: "be" would be "or", "an" "na".)
_ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm",
)
_ROT_COMMON = frozenset(word.translate(_ROT13) for word in _COMMON)
_LATIN_WORD = re.compile(r"[a-z]{2,}")


def decoded_views(text: str) -> list[tuple[str, str]]:
    """(decoder, decoded text) for every readable payload hidden in `text`."""
    views: list[tuple[str, str]] = []
    if not text.isascii():
        if _TAGS.search(text):
            hidden = tag_text(text)
            if hidden:
                views.append(("unicode_tags", hidden))
        if _CYRILLIC_OR_GREEK.search(text):
            folded = fold_confusables(text)
            if folded != text:
                views.append(("homoglyphs", folded))
    words = text.split()
    long_words = [word for word in words if len(word) >= 16]
    if long_words:
        views += [("base64", v) for v in _base64_payloads(long_words)]
    if long_words or "\\x" in text or "0x" in text or sum(len(w) == 2 for w in words) >= 8:
        views += [("hex", v) for v in _hex_payloads(text)]
    if "%" in text:
        unquoted = _url_decoded(words)
        if unquoted:
            views.append(("url", unquoted))
    rotated = _rot13(text, words)
    if rotated:
        views.append(("rot13", rotated))
    # One layer inside another ("base64 of a URL-encoded text"): decode the decoded once more.
    nested = [
        (f"{name}+{inner}", payload)
        for name, view in list(views)
        for inner, payload in _one_more_layer(view)
    ]
    return views + nested


def tag_text(text: str) -> str:
    """The ASCII that Unicode tag characters in `text` spell (U+E0020-E007E mirror 0x20-0x7E)."""
    runs = _TAGS.findall(text)
    return " ".join(
        "".join(chr(ord(ch) - 0xE0000) for ch in run if 0xE0020 <= ord(ch) <= 0xE007E)
        for run in runs
    ).strip()


def fold_confusables(text: str) -> str:
    """`text` with look-alike Cyrillic and Greek letters folded to Latin inside mixed words."""
    if not _MIXED.search(text):
        return text
    return _WORD_AROUND.sub(
        lambda m: m.group().translate(_CONFUSABLES) if _MIXED.search(m.group()) else m.group(),
        text,
    )


def readable(payload: str) -> bool:
    """Whether decoded bytes read as text: mostly printable, letters, and some spaces.

    A URL-encoded text is judged once unquoted: it is one layer inside another.
    """
    if "%" in payload and len(_PERCENT.findall(payload)) >= 3:
        payload = urllib.parse.unquote_plus(payload)
    if len(payload) < MIN_PAYLOAD_CHARS:
        return False
    printable = sum(1 for ch in payload if ch.isprintable() or ch in "\n\t")
    letters = len(_LETTERS.findall(payload))
    return (
        printable >= 0.95 * len(payload)
        and letters >= 0.5 * len(payload)
        and (" " in payload or not payload.isascii())
        and not any(unicodedata.category(ch) == "Co" for ch in payload)
    )


def _bytes_to_text(raw: bytes) -> str | None:
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return decoded if readable(decoded) else None


def _base64_payloads(words: list[str]) -> list[str]:
    """Readable texts that base64 tokens inside `words` (each 16+ characters) decode to."""
    out = []
    for match in (m for word in words for m in _BASE64.finditer(word)):
        token = match.group().rstrip("=")
        if token.isalpha() and (token.islower() or token.isupper()):
            continue  # a long plain word, not base64
        if "://" in match.string or token.count("/") > 2:
            continue  # a URL or a path
        padded = token + "=" * (-len(token) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decode(padded)
            except (binascii.Error, ValueError):
                continue
            decoded = _bytes_to_text(raw)
            if decoded:
                out.append(decoded)
                break
    return out


def _hex_payloads(text: str) -> list[str]:
    out = []
    for match in _HEX.finditer(text):
        digits = _HEX_DIGITS.sub("", match.group())
        if len(digits) % 2:
            digits = digits[:-1]
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            continue
        decoded = _bytes_to_text(raw)
        if decoded:
            out.append(decoded)
    return out


def _url_decoded(words: list[str]) -> str | None:
    """The URL-decoded text of every token holding three or more %XX escapes, joined."""
    tokens = [w for w in words if w.count("%") >= 3 and len(_PERCENT.findall(w)) >= 3]
    if not tokens:
        return None
    decoded = " ".join(urllib.parse.unquote_plus(t) for t in tokens)
    return decoded if readable(decoded) else None


def _rot13(text: str, words: list[str]) -> str | None:
    """The rot13 of `text` when it looks encoded, else None.

    It does when three of its words are rot13 of common English words (or two, when rot13 is
    named): plain text almost never holds "gur", "nyy" or "vafgehpgvbaf".
    """
    hits = len(_ROT_COMMON.intersection(_LATIN_WORD.findall(text.lower())))
    if hits >= 3 or (hits >= 2 and _ROT13_HINT.search(text)):
        return text.translate(_ROT13)
    return None


def _one_more_layer(view: str) -> list[tuple[str, str]]:
    out = [("base64", v) for v in _base64_payloads([w for w in view.split() if len(w) >= 16])]
    if "%" in view:
        unquoted = _url_decoded(view.split())
        if unquoted:
            out.append(("url", unquoted))
    return out
