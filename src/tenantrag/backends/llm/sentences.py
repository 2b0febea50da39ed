"""The quotable sentences of a retrieved passage, cleaned for quoting, with their context.

Passages come from the chunker, which has already joined a paragraph's wrapped lines: each line
of a chunk is one paragraph, list item or heading. A line that does not read as a sentence
(a heading, a title, a URL, a short label) is never quoted, but the words of the headings above
a sentence tell what it is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_WORDS = 4  # shorter fragments are headings or list stubs, not answers
MAX_SENTENCE_CHARS = 600

# A reference list inside a source, e.g. [3], [2, 5], [7-9], [1]-[4], [3], [4-6], [12–14]: never
# a citation of ours.
# Spaces are matched one at a time ([ ]?), never as runs: these patterns see untrusted text and
# must not backtrack over a long run of it.
_REF_GROUP = r"\[ ?\d{1,4}(?: ?[,;\u2013\u2014-] ?\d{1,4})* ?\]"
REFERENCE = re.compile(
    rf"[ \t]?{_REF_GROUP}(?:[ ]?[,;\u2013\u2014-]?[ ]?{_REF_GROUP})*"
    r"|[ \t]?(?:\( ?\d{1,3} ?\)[ ]?){2,}"  # runs like "(6) (7) (8)" (one "(1)" may be a list item)
)
# Where a sentence ends: . ! ? (and closing quotes or brackets), then space, then a capital,
# a digit or an opening quote/bracket. Checked further in _ends_sentence.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c(\[]?[A-Z0-9])")
# A full stop after a space or a closing bracket, glued to a capitalised word: "[28] .Various".
_GLUED_STOP = re.compile(r"(?<=[ \]])\.(?=[A-Z][a-z]{2})")
_ABBREVIATION_LIST = """
    e.g i.e cf vs viz al approx ca dr mr mrs ms prof sr jr st fig figs eq eqs ref refs sec no nos
    vol inc ltd co corp dept univ est jan feb mar apr jun jul aug sep sept oct nov dec etc resp
"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_LIST.split())
_INITIAL = re.compile(r"(?:[A-Za-z]\.)*[A-Za-z]")
_HEADING = re.compile(r"^\s*#{1,6}\s+")
_BLOCK_MARK = re.compile(r"^\s*(?:[-*+>]\s+|\d{1,3}[.)]\s+)+")
_INLINE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)|\{%.*?%\}|\{\{.*?\}\}|<[^>\n]+>|\*\*|__|\|")
# Labels that open a line in papers and forms: "Abstract:", "METHODS AND FINDINGS:", "Text:".
_LABELS = re.compile(r"^(?:(?:[A-Z][a-z]+|[A-Z]{2,}(?:\s+(?:AND|OF|[A-Z]{2,}))*)\s*:\s+){1,3}")
# Superscript reference numbers flattened into the text open some sentences: "8, 9, 14 HCoV-OC43".
_LEADING_NUMBERS = re.compile(r"^(?:\d{1,3}(?:\s*[,\u2013-]\s*\d{1,3})*\s+)+(?=[A-Z])")
_URL = re.compile(r"\bhttps?://\S+|\bdoi:\s*\S+|\bwww\.\S+", re.IGNORECASE)
# Only from the start of a run of spaces (the lookbehind), so a long run costs one scan.
_SPACE_BEFORE_STOP = re.compile(r"(?<![ \t])[ \t]+(?=[.,;:!?])")
_TERMINAL = (".", "!", "?", ":", '."', ".)", ".'")


@dataclass(frozen=True, slots=True)
class Sentence:
    """A quotable sentence of a passage: its text, position and surroundings."""

    text: str  # cleaned: no reference lists, no leading labels, no markup
    position: int  # its order among the passage's sentences
    heading: str  # the heading lines above it in the passage ("" if none)
    paragraph: int  # the line (paragraph) it belongs to
    # As an answer quotes it: cleaned alike, but the source's own reference numbers kept, in
    # parentheses ("[31]" -> "(31)"), so no reader or client takes them for our [n] citations
    # and the quote stays whole. "" when it reads as `text` (no reference in it).
    quote: str = ""

    @property
    def quoted(self) -> str:
        """The sentence as an answer quotes it."""
        return self.quote or self.text


def strip_references(text: str) -> str:
    """`text` without the source's own reference markers such as [3] or [2, 5]."""
    if "[" not in text and "(" not in text:
        return text
    return _SPACE_BEFORE_STOP.sub("", REFERENCE.sub("", text))


def parenthesise_references(text: str) -> str:
    """`text` with the source's own reference markers in parentheses: [3] -> (3), [2, 5] -> (2, 5).

    Square brackets are our citations' (postprocess.MARKER); a source's "[3]" quoted as it
    stands would read as, and be linked to, our source 3.
    """
    if "[" not in text:
        return text
    kept = REFERENCE.sub(lambda m: m.group(0).replace("[", "(").replace("]", ")"), text)
    return _SPACE_BEFORE_STOP.sub("", kept).rstrip()


def clean(sentence: str, *, keep_references: bool = False) -> str:
    """A sentence as quoted: references, leading labels, markup and stray spaces removed.

    With `keep_references`, the source's reference markers stay, as written, except one that
    opens the sentence (it refers to nothing in it).
    """
    # Whitespace is collapsed first, so no pattern below ever scans a long run of it.
    text = _INLINE.sub(lambda m: m.group(1) or "", " ".join(sentence.split()))
    if not keep_references:
        text = strip_references(text)
    text = _LABELS.sub("", text.strip())
    if keep_references and (opening := REFERENCE.match(text)):
        text = text[opening.end() :].lstrip()
    return _bounded(_LEADING_NUMBERS.sub("", text))


def _bounded(text: str) -> str:
    """`text` within MAX_SENTENCE_CHARS: a longer one is cut after a whole word and ends "…".

    A quote cut inside a word ("inhibit polymerase activ") reads as broken, not as shortened.
    """
    if len(text) <= MAX_SENTENCE_CHARS:
        return text
    cut = text[: MAX_SENTENCE_CHARS - 2]
    space = cut.rfind(" ")
    if space > MAX_SENTENCE_CHARS // 2:  # one very long token is cut where it must be
        cut = cut[:space]
    return cut.rstrip(" ,;:") + " …"


def quote_of(piece: str, cleaned: str) -> str:
    """`piece` as an answer quotes it: `cleaned` with the references kept, in parentheses.

    "" when that is `cleaned` itself, or when keeping them would change more than the
    references (a label or leading numbers left in, a different cut at MAX_SENTENCE_CHARS):
    the quote never says anything the scored sentence does not.
    """
    kept = clean(piece, keep_references=True)
    if kept == cleaned or strip_references(kept) != cleaned:
        return ""
    return parenthesise_references(kept)


def split_sentences(paragraph: str) -> list[str]:
    """The sentences of one paragraph, not split after abbreviations, initials or decimals.

    Text extracted from PDFs often loses the space after a full stop that follows a reference
    ("memory B cells [28] .Various studies"); such a stop still ends the sentence.
    """
    paragraph = _GLUED_STOP.sub(". ", paragraph)
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(paragraph):
        before = paragraph[start : match.start()].rsplit(None, 1)
        word = before[-1].rstrip(".!?").lstrip("([\"'") if before else ""
        if word.lower() in _ABBREVIATIONS or _INITIAL.fullmatch(word) and len(word) <= 3:
            continue
        pieces.append(paragraph[start : match.start()].strip())
        start = match.end()
    pieces.append(paragraph[start:].strip())
    return [p for p in pieces if p]


def _is_heading(line: str, first: bool) -> bool:
    """A markdown heading, or a line without a full stop that is short or opens the passage."""
    if _HEADING.match(line):
        return True
    if _BLOCK_MARK.match(line):
        return False
    words = line.split()
    return (first or len(words) < 2 * MIN_WORDS) and not line.rstrip().endswith(_TERMINAL)


def _quotable(text: str) -> bool:
    """A whole statement: long enough, not a question, not cut off, not a link or a reference."""
    words = text.split()
    return (
        len(words) >= MIN_WORDS
        and not text.endswith(("?", ","))
        and words[-1].lower() not in {"and", "or"}
        and len(_URL.sub("", text).split()) >= MIN_WORDS
    )


def sentences(text: str) -> list[Sentence]:
    """The quotable sentences of a passage, in order, each with the headings above it."""
    found: list[Sentence] = []
    heading = ""
    for number, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if not line:
            continue
        if _is_heading(line, first=not found and not heading):
            heading = f"{heading} {_HEADING.sub('', line)}".strip()[-MAX_SENTENCE_CHARS:]
            continue
        for piece in split_sentences(_BLOCK_MARK.sub("", line)):
            cleaned = clean(piece)
            if _quotable(cleaned):
                quote = quote_of(piece, cleaned) if "[" in piece else ""
                found.append(Sentence(cleaned, len(found), heading, number, quote))
    return found
