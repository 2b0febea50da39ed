"""An offline answerer: quotes the context sentences that best match the question, with citations.

It never invents text: every sentence of an answer is copied from a numbered block and cites it
as [n]. When no sentence shares enough of the question's terms, it says so plainly instead.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tenantrag.backends.llm import Completion, ContextBlock, Delta, Done, Prompt, StreamEvent
from tenantrag.backends.llm.prompt import NO_ANSWER
from tenantrag.backends.llm.tokens import TokenCounter, rough_count, shared_count

Embed = Callable[[Sequence[str]], np.ndarray]

_STOPWORD_LIST = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further get gets got had has have having he her here hers herself him himself his
    how i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would
    you your yours yourself yourselves tell know please much many may might must shall also
    long often far able want like
"""
STOPWORDS = frozenset(_STOPWORD_LIST.split())
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
# A line opening a new markdown block: heading, list item, quote or table row.
_BLOCK_START = re.compile(r"^\s*(?:#{1,6}\s+|[-*+>]\s+|\d{1,3}[.)]\s+|\|)+")
_HEADING = re.compile(r"^\s*#{1,6}\s")
_INLINE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)|\{%.*?%\}|\{\{.*?\}\}|<[^>\n]+>|\*\*|__|\|")
_CLOSING = re.compile(r"([.!?:;]+)([\"')\]]*)$")
_SUFFIXES = ("ments", "ment", "ings", "ing", "ed", "ly", "es", "s")
HEADING_WEIGHT = 0.5
MIN_WORDS = 4  # shorter fragments are headings or list stubs, not answers
MAX_SENTENCE_CHARS = 400


@functools.lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """A light English stem: plurals, -ing, -ed, -ly, -ment and a final -e removed."""
    if len(word) <= 3:
        return word
    if word.endswith(("ies", "ied")) and len(word) > 4:
        word = word[:-3] + "y"
    else:
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
                word = word[: -len(suffix)]
                break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "ls":  # stopp -> stop
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def terms(text: str) -> set[str]:
    """The stemmed content words of `text`."""
    words = (w.lower() for w in _WORD.findall(text))
    return {stem(w) for w in words if len(w) > 1 and w not in STOPWORDS}


def paragraphs(text: str) -> list[tuple[str, str]]:
    """Markdown's paragraphs and list items, one line each, inline markup removed.

    Each comes with the heading it sits under: headings are never quoted (alone they answer
    nothing), but they tell what the paragraph is about.
    """
    found: list[tuple[str, str]] = []
    current: list[str] = []
    heading = ""
    for line in text.splitlines():
        starts_block = _BLOCK_START.match(line)
        if current and (starts_block or not line.strip()):
            found.append((heading, " ".join(current)))
            current = []
        if _HEADING.match(line):
            heading = line
        elif line.strip():
            current.append(_BLOCK_START.sub("", line).strip() if starts_block else line.strip())
    if current:
        found.append((heading, " ".join(current)))
    return [(h, " ".join(_INLINE.sub(_inline_text, p).split())) for h, p in found]


def _inline_text(match: re.Match[str]) -> str:
    return match.group(1) or ""  # a link keeps its text; templating, tags and ** disappear


def _is_statement(piece: str) -> bool:
    """True for a whole declarative sentence: long enough, not a question, not cut off mid-list."""
    words = piece.split()
    return (
        len(words) >= MIN_WORDS
        and not piece.endswith(("?", ","))
        and words[-1].lower() not in {"and", "or"}
    )


def statements(text: str) -> list[tuple[str, str]]:
    """`text`'s whole declarative sentences (at most 400 chars each), with their heading."""
    return [
        (heading, piece[:MAX_SENTENCE_CHARS])
        for heading, paragraph in paragraphs(text)
        for piece in _SENTENCE_END.split(paragraph)
        if _is_statement(piece)
    ]


def cite(sentence: str, index: int) -> str:
    """`sentence` with its citation [index] placed before the closing full stop."""
    match = _CLOSING.search(sentence)
    if match is None:
        return f"{sentence} [{index}]."
    stop = match.group(1)[-1]
    stop = "." if stop in ":;" else stop  # a quoted list intro ends our sentence
    return f"{sentence[: match.start()]}{match.group(2)} [{index}]{stop}"


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer's cited sentences and how sure the answerer was."""

    sentences: tuple[str, ...]
    confidence: float


@dataclass(frozen=True, slots=True)
class _Candidate:
    block: ContextBlock
    text: str
    terms: frozenset[str]
    topic: frozenset[str]  # the terms of its heading


class ExtractiveLLM:
    """Answers from the context alone by quoting its most relevant sentences, each cited [n].

    Args:
        count_tokens: counts usage; pass the embedder's word-piece counter for real numbers.
        embed: optional; when given, cosine similarity to the question joins the lexical score.
        max_sentences: the most sentences an answer quotes.
        max_blocks: how many of the top blocks are read.
        min_coverage: the share of the question's (weighted) terms a sentence must contain.
        min_combined: with `embed`, the least mean of that share and the cosine similarity.
    """

    model = "extractive"

    def __init__(
        self,
        *,
        count_tokens: TokenCounter = rough_count,
        embed: Embed | None = None,
        max_sentences: int = 3,
        max_blocks: int = 5,
        min_coverage: float = 0.5,
        min_combined: float = 0.35,
        min_confidence: float | None = None,
    ) -> None:
        self.options: dict[str, Any] = {
            "count_tokens": count_tokens,
            "embed": embed,
            "max_sentences": max_sentences,
            "max_blocks": max_blocks,
            "min_coverage": min_coverage,
            "min_combined": min_combined,
        }
        if min_confidence is not None:
            min_coverage = min_combined = min_confidence
        self.min_confidence = min_combined if embed is not None else min_coverage
        self.count_tokens, self.embed = count_tokens, embed
        # Popular chunks come back query after query; counting one again costs more than answering.
        # The cache is the one build_prompt fills: with a word-piece counter it has already
        # counted each source's text on its own, so usage tokenises no source a second time.
        self._count_block = shared_count(count_tokens)
        self.max_sentences, self.max_blocks = max_sentences, max_blocks
        self.min_coverage, self.min_combined = min_coverage, min_combined

    def reply(self, question: str, blocks: Sequence[ContextBlock], *, tenant: str = "") -> Reply:
        """The answer and its confidence."""
        self._best = 0.0
        picked = self.answer(question, blocks)
        return Reply(tuple(picked), self._best)

    def answer(self, question: str, blocks: Sequence[ContextBlock]) -> list[str]:
        """The cited sentences of the answer, best first; empty when the blocks do not answer."""
        wanted = terms(question)
        candidates = [
            _Candidate(block, text, frozenset(terms(text)), frozenset(terms(heading)))
            for block in blocks[: self.max_blocks]
            for heading, text in statements(block.text)
        ]
        if not wanted or not candidates:
            return []
        scores, threshold = self._lexical(wanted, candidates), self.min_coverage
        if self.embed is not None:
            scores = 0.5 * scores + 0.5 * self._semantic(self.embed, question, candidates)
            threshold = self.min_combined
        best = float(scores.max())
        self._best = best
        if best < threshold:
            return []
        picked: list[str] = []
        seen: set[str] = set()
        # Stable sort: among equal scores the higher-ranked block and earlier sentence win.
        for i in sorted(range(len(candidates)), key=lambda i: -scores[i]):
            candidate = candidates[i]
            key = candidate.text.lower()
            if scores[i] < max(threshold, 0.6 * best) or len(picked) == self.max_sentences:
                break
            if key not in seen:
                seen.add(key)
                picked.append(cite(candidate.text, candidate.block.index))
        return picked

    def _lexical(self, wanted: set[str], candidates: list[_Candidate]) -> np.ndarray:
        """Each sentence's weighted share of the question's terms; 0 below two distinct terms.

        Rarer terms weigh more; a term found only in the sentence's heading counts half. One
        shared word is chance, not evidence, unless the question has only one.
        """
        n = len(candidates)
        weight = {
            t: 1.0 + math.log((n + 1) / (1 + sum(t in c.terms for c in candidates))) for t in wanted
        }
        total = sum(weight.values())
        needed = min(2, len(wanted))
        scores = np.zeros(n)
        for i, c in enumerate(candidates):
            own, topic = wanted & c.terms, (wanted & c.topic) - c.terms
            if len(own) + len(topic) >= needed:
                shared = sum(weight[t] for t in own) + HEADING_WEIGHT * sum(
                    weight[t] for t in topic
                )
                scores[i] = shared / total
        return scores

    @staticmethod
    def _semantic(embed: Embed, question: str, candidates: list[_Candidate]) -> np.ndarray:
        """Cosine similarity of each sentence to the question, negatives clipped to 0."""
        vectors = np.asarray(embed([question, *(c.text for c in candidates)]), dtype=np.float64)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return np.asarray(np.clip(vectors[1:] @ vectors[0], 0.0, 1.0), dtype=np.float64)

    def _pieces(self, prompt: Prompt) -> tuple[list[str], Completion]:
        """The answer's pieces as streamed, and the completion they add up to."""
        cited = list(self.reply(prompt.question, prompt.blocks).sentences) or [NO_ANSWER]
        pieces = [cited[0], *(" " + sentence for sentence in cited[1:])]
        text = "".join(pieces)
        read = self.count_tokens(prompt.question) + sum(
            self._count_block(b.text) for b in prompt.blocks[: self.max_blocks]
        )
        usage = (read, self.count_tokens(text))
        return pieces, Completion(text, self.model, *usage)

    async def complete(self, prompt: Prompt, *, tenant: str) -> Completion:
        """The extractive answer to the prompt's question."""
        return self._pieces(prompt)[1]

    async def stream(self, prompt: Prompt, *, tenant: str) -> AsyncIterator[StreamEvent]:
        """The same answer, one sentence per delta."""
        pieces, completion = self._pieces(prompt)
        for piece in pieces:
            yield Delta(piece)
        yield Done(completion)
