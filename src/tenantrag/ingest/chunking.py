"""Split a document's text into chunks that the embedding model reads whole.

A chunk is embedded as `embedding_text(piece, title)`: the title, the heading path and the text. The
MiniLM model stops reading at 256 word pieces including its two special tokens, so every chunk's
embedding text is packed to at most `max_tokens - 2` tokens. Token counts are taken once per
sentence and summed, which is exact for WordPiece (it splits on whitespace first, so joining pieces
with a space or newline adds nothing) and keeps chunking linear in the document's length.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tenantrag.errors import ValidationFailed

TokenCounter = Callable[[str], int]

SPECIAL_TOKENS = 2  # [CLS] and [SEP], added by the embedder around every chunk
TITLE_MAX_CHARS = 300
HEADING_MAX_CHARS = 120  # per heading; a path holds at most six
MIN_TEXT_TOKENS = 64  # below this, the heading path is shortened to leave room for text
MAX_CHUNK_CHARS = 4000  # bounds chunks of long tokens that WordPiece reads as one [UNK]

# Words that end in a period without ending the sentence ("Dr. Smith", "e.g. this", "Fig. 3").
# fmt: off
ABBREVIATIONS = frozenset({
    "e.g", "i.e", "cf", "vs", "viz", "al", "approx", "ca", "dr", "mr", "mrs", "ms", "prof", "sr",
    "jr", "st", "mt", "ft", "vol", "vols", "fig", "figs", "eq", "eqs", "ref", "refs", "sec", "ch",
    "pp", "inc", "ltd", "co", "corp", "dept", "univ", "est", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec",
})
# fmt: on
NUMBER_ABBREVIATIONS = frozenset({"no", "nos"})  # "No. 5", but "the answer is no. Then"
_INITIALS = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]|[A-Za-z]")  # "U.S", "Ph.D" or one initial
# The lookbehind makes a long run of dots cost one scan, not one per dot. Regexes here see
# untrusted text: none may backtrack over a run of unbounded length.
_BOUNDARY = re.compile(r"(?<![.!?\u2026])[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+")
_HEADING = re.compile(r"(#{1,6})[ \t]+(.*)")
_FENCE = re.compile(r"[ \t]*(?:```|~~~)")
_BLOCK_START = re.compile(r"[ \t]*(?:[-*+][ \t]|\d{1,3}[.)][ \t]|\|)")  # list item or table row


@dataclass(frozen=True, slots=True)
class ChunkPiece:
    """One chunk of a document: its order, its text and the heading path of its section."""

    position: int
    text: str
    heading: str | None


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence (or a piece of a long one) with its token count."""

    text: str
    tokens: int
    starts_block: bool  # joined to the previous unit by a newline instead of a space


@dataclass
class _Section:
    heading: str | None
    heading_line: str | None
    blocks: list[str]


TITLE_LINE_MAX_CHARS = 200  # a longer first line is a paragraph, not a title
TITLE_LINE_MAX_WORDS = 30
TITLE_LINE_MAX_TOKENS = 64  # a quarter of the chunk budget: the rest of every chunk is text
_URL_LINE = re.compile(r"(?:https?://|www\.)\S*$", re.IGNORECASE)
# A title may end in an abbreviation's full stop ("... of ovine Eimeria spp."): not a sentence.
_TITLE_FINAL_ABBREVIATIONS = ABBREVIATIONS | {"sp", "spp", "subsp", "var"}


def first_line_title(text: str, count_tokens: TokenCounter) -> str:
    """The title a document posted without one takes: its first line, when that reads as one.

    Every chunk is embedded and indexed with its document's title, so a chunk deep in a paper
    is still found as part of that paper: on COVID-QA dev, articles posted without titles
    answer 59.6% of questions against 64.1% with them (docs/benchmarks/answers.md). The first
    non-empty line (a Markdown heading's text) is the title unless it is the whole document,
    runs past TITLE_LINE_MAX_CHARS, TITLE_LINE_MAX_WORDS or TITLE_LINE_MAX_TOKENS word pieces
    (every chunk carries it), is an address, holds no letter, or ends like a sentence or a label
    (. , ; :, but an abbreviation's full stop is no sentence's); then the document has none.
    """
    lines = (line.strip() for line in text.splitlines())
    first = next((line for line in lines if line), "")
    rest = next((line for line in lines if line), "")
    heading = parse_heading(first)
    title = heading[1] if heading else first
    if (
        not rest
        or len(title) > TITLE_LINE_MAX_CHARS
        or len(title.split()) > TITLE_LINE_MAX_WORDS
        or _URL_LINE.match(title)
        or not any(c.isalpha() for c in title)
        or title.endswith((",", ";", ":"))
        or _ends_a_sentence(title)
        or count_tokens(title) > TITLE_LINE_MAX_TOKENS
    ):
        return ""
    return title


def _ends_a_sentence(line: str) -> bool:
    """True when `line` ends in a full stop that is not an abbreviation's or initials'."""
    last = line.rsplit(maxsplit=1)[-1] if line.strip() else ""
    word = last[:-1]
    abbreviated = word.lower() in _TITLE_FINAL_ABBREVIATIONS or _INITIALS.fullmatch(word)
    return last.endswith(".") and not abbreviated


def embedding_text(piece: ChunkPiece, title: str) -> str:
    """What to embed and index for `piece`: the title, the heading path and the text, one a line."""
    parts = (_clip(title, TITLE_MAX_CHARS), piece.heading, piece.text)
    return "\n".join(part for part in parts if part)


def chunk_text(
    text: str,
    *,
    title: str,
    count_tokens: TokenCounter,
    max_tokens: int = 256,
    overlap_tokens: int = 32,
) -> list[ChunkPiece]:
    """Chunks of `text` whose embedding text, title and heading included, fits in `max_tokens`.

    Sections follow markdown headings; chunks never cross one. Sentences are packed whole, with
    about `overlap_tokens` of trailing sentences repeated at the start of the next chunk of a
    section. A document that fits whole becomes exactly one chunk. Returns [] for blank text.

    Raises:
        ValidationFailed: the title alone takes more than half the budget.
    """
    budget = max_tokens - SPECIAL_TOKENS
    clipped_title = _clip(title, TITLE_MAX_CHARS)
    title_tokens = count_tokens(clipped_title) if clipped_title else 0
    if title_tokens > budget // 2:
        raise ValidationFailed(
            f"the title is too long for the embedding model: {title_tokens} word pieces, "
            f"at most {budget // 2}; give the document a shorter title"
        )
    sections = list(_sections(text, clipped_title))
    units = [_units(section.blocks, count_tokens) for section in sections]
    if not any(units) and not any(s.heading_line for s in sections):
        return []
    whole = title_tokens + sum(u.tokens for section_units in units for u in section_units)
    # A line past MAX_CHUNK_CHARS cannot be in a one-chunk document anyway; its length bounds
    # its count, and tokenizing 5 MB at once costs the tokenizer ~280 MB.
    whole += sum(
        count_tokens(s.heading_line)
        if len(s.heading_line) <= MAX_CHUNK_CHARS
        else len(s.heading_line)
        for s in sections
        if s.heading_line
    )
    if whole <= budget:
        text = _whole_text(sections, units)
        if len(text) <= MAX_CHUNK_CHARS:
            return [ChunkPiece(0, text, None)]
    pieces: list[ChunkPiece] = []
    for section, section_units in zip(sections, units, strict=True):
        heading, heading_tokens = _fit_heading(section.heading, title_tokens, budget, count_tokens)
        text_budget = budget - title_tokens - heading_tokens
        for chunk in _pack(section_units, text_budget, overlap_tokens, count_tokens):
            pieces.append(ChunkPiece(len(pieces), chunk, heading))
    return pieces


def split_sentences(text: str) -> list[str]:
    """The sentences of one paragraph, not split after abbreviations, initials or decimals."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if _ends_sentence(text, match):
            sentences.append(text[start : match.end()].strip())
            start = match.end()
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return [s for s in sentences if s]


def parse_heading(line: str) -> tuple[int, str] | None:
    """The level and name of a markdown heading line such as '## Name ##', else None."""
    match = _HEADING.match(line.strip())
    if match is None:
        return None
    name = match.group(2).rstrip()
    bare = name.rstrip("#")
    if bare != name and (not bare or bare[-1] in " \t"):  # a closing '##' sequence
        name = bare.rstrip()
    return (len(match.group(1)), name) if name else None


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    following = text[match.end() : match.end() + 1]
    if following.islower():  # "approx. five", "etc. and": a sentence starts with a capital
        return False
    if text[match.start()] != "." or match.group().startswith(".."):
        return True
    before = text[max(0, match.start() - 32) : match.start()].split()  # abbreviations are short
    word = before[-1].lstrip("(['\"\u201c") if before else ""
    lowered = word.lower()
    if lowered in NUMBER_ABBREVIATIONS and following.isdigit():
        return False
    return lowered not in ABBREVIATIONS and _INITIALS.fullmatch(word) is None


def _sections(text: str, title: str) -> Iterator[_Section]:
    """Markdown sections (heading path, heading line, blocks); headings in code fences are text."""
    trail: list[tuple[int, str]] = []
    section = _Section(None, None, [])
    block: list[str] = []
    in_fence = False
    for raw in text.splitlines():
        line = raw.strip()
        heading = None if in_fence else parse_heading(line)
        if _FENCE.match(line):
            in_fence = not in_fence
        if heading or not line or in_fence or _FENCE.match(line) or _BLOCK_START.match(line):
            if block:
                section.blocks.append(" ".join(block))
            block = []
        if heading:
            yield section
            level, name = heading[0], _clip(heading[1], HEADING_MAX_CHARS)
            trail = [(lvl, n) for lvl, n in trail if lvl < level] + [(level, name)]
            names = [n for n in (n for _, n in trail) if n.casefold() != title.casefold()]
            path = " > ".join(names) or None
            section = _Section(path, line, [])
        elif in_fence or _FENCE.match(line):
            section.blocks.append(line)  # code keeps its lines
        elif line:
            block.append(line)
    if block:
        section.blocks.append(" ".join(block))
    yield section


def _units(blocks: list[str], count_tokens: TokenCounter) -> list[_Unit]:
    units: list[_Unit] = []
    for block in blocks:
        for i, sentence in enumerate(split_sentences(block)):
            # One giant sentence is split anyway and its pieces counted; counting it whole first
            # would cost seconds (the tokenizer is slow on one multi-megabyte string).
            tokens = count_tokens(sentence) if len(sentence) <= MAX_CHUNK_CHARS else len(sentence)
            units.append(_Unit(sentence, tokens, i == 0))
    return units


def _fit_heading(
    heading: str | None, title_tokens: int, budget: int, count_tokens: TokenCounter
) -> tuple[str | None, int]:
    """The heading path to embed and its tokens, shortened to its last heading if it crowds text."""
    room = budget - title_tokens - MIN_TEXT_TOKENS
    for candidate in (heading, heading.rpartition(" > ")[2] if heading else None):
        tokens = count_tokens(candidate) if candidate else 0
        if tokens <= room:
            return candidate, tokens
    return None, 0


def _pack(units: list[_Unit], budget: int, overlap: int, count_tokens: TokenCounter) -> list[str]:
    """Greedy packing of sentences into chunks of at most `budget` tokens, with sentence overlap."""
    chunks: list[str] = []
    current: list[_Unit] = []
    used = chars = 0
    for unit in (piece for u in units for piece in _split_long(u, budget, count_tokens)):
        if current and (used + unit.tokens > budget or chars + len(unit.text) > MAX_CHUNK_CHARS):
            chunks.append(_join(current))
            room = (budget - unit.tokens, MAX_CHUNK_CHARS - len(unit.text) - 1)
            current = _overlap_tail(current, overlap, *room)
            used = sum(u.tokens for u in current)
            chars = sum(len(u.text) + 1 for u in current)
        current.append(unit)
        used += unit.tokens
        chars += len(unit.text) + 1
    if current:
        chunks.append(_join(current))
    return chunks


def _overlap_tail(units: list[_Unit], overlap: int, room: int, room_chars: int) -> list[_Unit]:
    """The trailing sentences whose tokens come closest to `overlap`, leaving room for the next."""
    best: list[_Unit] = []
    tokens = chars = 0
    for i in range(len(units) - 1, 0, -1):  # never the whole chunk again
        before = tokens
        tokens += units[i].tokens
        chars += len(units[i].text) + 1
        closer = abs(tokens - overlap) < abs(before - overlap)
        if tokens > room or chars > room_chars or not closer:
            break
        best = units[i:]
    return best


def _split_long(unit: _Unit, budget: int, count_tokens: TokenCounter) -> list[_Unit]:
    """`unit` itself, or pieces of it split between words when it is over the budget."""
    if unit.tokens <= budget and len(unit.text) <= MAX_CHUNK_CHARS:
        return [unit]
    words = [
        word[i : i + MAX_CHUNK_CHARS]
        for word in unit.text.split()
        for i in range(0, len(word), MAX_CHUNK_CHARS)
    ]
    pieces: list[_Unit] = []
    start, take = 0, budget  # most words are one word piece or more
    while start < len(words):
        # Shrink (or grow) the previous piece's word count by the measured ratio until it fits:
        # one or two counts per piece instead of one per word.
        take = max(1, min(take, len(words) - start))
        while True:
            piece = " ".join(words[start : start + take])
            tokens = count_tokens(piece)
            if take == 1 or (tokens <= budget and len(piece) <= MAX_CHUNK_CHARS):
                break
            ratio = min(budget / max(tokens, 1), MAX_CHUNK_CHARS / len(piece))
            take = max(1, min(take - 1, int(take * ratio)))
        first = unit.starts_block and not pieces
        if tokens > budget or len(piece) > MAX_CHUNK_CHARS:  # one word alone is over: cut it
            pieces.extend(_split_word(piece, budget, count_tokens, first))
        else:
            pieces.append(_Unit(piece, tokens, first))
        start += take
        if tokens < budget * 0.9:
            take = int(take * budget / max(tokens, 1))
    return pieces


def _split_word(word: str, budget: int, count_tokens: TokenCounter, first: bool) -> list[_Unit]:
    """Pieces of one word that fit the budget, by halving; only pathological input gets here."""
    tokens = count_tokens(word)
    if len(word) <= 1 or (tokens <= budget and len(word) <= MAX_CHUNK_CHARS):
        return [_Unit(word, tokens, first)]
    half = len(word) // 2
    return _split_word(word[:half], budget, count_tokens, first) + _split_word(
        word[half:], budget, count_tokens, False
    )


def _join(units: list[_Unit]) -> str:
    parts = [units[0].text]
    for unit in units[1:]:
        parts.append(("\n" if unit.starts_block else " ") + unit.text)
    return "".join(parts)


def _whole_text(sections: list[_Section], units: list[list[_Unit]]) -> str:
    parts: list[str] = []
    for section, section_units in zip(sections, units, strict=True):
        if section.heading_line:
            parts.append(section.heading_line)
        if section_units:
            parts.append(_join(section_units))
    return "\n".join(parts)


def _clip(text: str, limit: int) -> str:
    """`text` on one line, cut at a word boundary to at most `limit` characters."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut
