"""Keyword (BM25) indexes, and the safe subset of the query language users may type.

Users may write AND, OR, `-term`, "a phrase" and parentheses. Everything else (field names,
wildcards, ranges, boosts, regexes) is reduced to plain words, so a query can neither name a
field such as tenant_id nor fail to parse. Each word is rendered as a quoted phrase, which the
Tantivy and Lucene grammars both read as plain text.
"""

from __future__ import annotations

import re
import unicodedata

MAX_QUERY_CHARS = 4_000
MAX_TERMS = 64
MAX_DEPTH = 8
MAX_TOKEN_BYTES = 40  # both analyzers drop tokens of this many UTF-8 bytes or more

# Lucene's EnglishAnalyzer stop set: Tantivy's Language::English list and OpenSearch's `_english_`
# are this same list (docs/opensearch.md, "Analysis").
ENGLISH_STOP_WORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    }
)

_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r'-?"[^"]*"|-?\(|\)|[^\s()"]+')
_OPEN = ("(", "-(")
_FIELD = re.compile(r"\w:")


def clean_query(text: str) -> str:
    """`text` cut to MAX_QUERY_CHARS, with control and format characters turned into spaces."""
    cut = text[:MAX_QUERY_CHARS]
    return "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in cut)


def indexed_words(text: str) -> list[str]:
    """The words of `text` an index keeps, lowercased: too-long tokens and stop words dropped.

    A phrase none of whose words is kept matches nothing by itself; Tantivy's query parser
    leaves such a clause out, and the OpenSearch backend does the same.
    """
    words = (w.lower() for w in _WORD.findall(text))
    return [
        w
        for w in words
        if w not in ENGLISH_STOP_WORDS and len(w.encode("utf-8", "surrogatepass")) < MAX_TOKEN_BYTES
    ]


def plain_query(text: str) -> str | None:
    """Every word of `text` as an optional term (operators and syntax dropped), or None if none."""
    words = _WORD.findall(clean_query(text))[:MAX_TERMS]
    return " ".join(f'"{w}"' for w in words) or None


def structured_query(text: str) -> str | None:
    """`text` in the safe query subset; "" when it has no positive term, None when it names fields.

    Unbalanced parentheses, operators in odd places and nesting deeper than MAX_DEPTH are
    repaired or dropped rather than rejected; unbalanced quotes give None (read it as plain words).
    """
    cleaned = clean_query(text)
    if _FIELD.search(cleaned) or cleaned.count('"') % 2:
        return None
    tokens = _TOKEN.findall(cleaned)
    keep_parens = _balanced(tokens)
    items: list[str] = []
    terms = 0
    for token in tokens:
        if token in (*_OPEN, ")"):
            if keep_parens:
                items.append(token)
        elif token in ("AND", "OR"):
            items.append(token)
        elif terms < MAX_TERMS:
            words = _WORD.findall(token)
            if words:
                items.append(("-" if token[0] == "-" else "") + '"' + " ".join(words) + '"')
                terms += 1
    items = _tidy(items)
    return " ".join(items) if any(item.startswith('"') for item in items) else ""


def _balanced(tokens: list[str]) -> bool:
    depth = 0
    for item in tokens:
        depth += 1 if item in _OPEN else -1 if item == ")" else 0
        if depth < 0 or depth > MAX_DEPTH:
            return False
    return depth == 0


def _tidy(items: list[str]) -> list[str]:
    """Drop empty groups and operators that do not sit between two operands, until stable."""
    while True:
        out: list[str] = []
        for i, item in enumerate(items):
            before = out[-1] if out else None
            after = items[i + 1] if i + 1 < len(items) else None
            if item in ("AND", "OR") and not (
                before is not None
                and before not in ("AND", "OR", *_OPEN)
                and after is not None
                and after not in ("AND", "OR", ")")
            ):
                continue
            if item == ")" and before in _OPEN:
                out.pop()
                continue
            out.append(item)
        if out == items:
            return out
        items = out
