"""How well each sentence of the retrieved passages answers a question: the extractive scores.

Words first: the share of the question's terms a sentence holds, rarer terms weighing more,
plus what its context adds (the headings and title above it, the sentences around it), the
question's word pairs found in order, and whether it holds the kind of thing asked for (a number
for "how many", a date for "when"). Then meaning: the best few by words are compared with the
question by embedding, and that cosine joins their score. The weights were tuned on the tune
half of the COVID-QA dev set (`tenantrag eval-answers`) and checked on the other half.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tenantrag.backends.llm import ContextBlock
from tenantrag.backends.llm.sentences import Sentence

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
    study studies found shown used using based reported observed described according including
    include known well due
"""
# The last two lines are the words of reporting ("found", "reported", "according to"): in a
# question they say how something was learnt, not what is asked (+0.5 contains-gold on dev).
STOPWORDS = frozenset(_STOPWORD_LIST.split())
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SUFFIXES = ("ments", "ment", "ings", "ing", "ed", "ly", "es", "s")

# What kind of answer the question asks for, and what a sentence holding one looks like.
_ASKS_NUMBER = re.compile(
    r"\bhow (?:many|much|long|large|big|old|often|far|frequent)"
    r"|\bwhat (?:is |was |are |were )?(?:the )?(?:[a-z-]+ ){0,2}(?:number|percentage|proportion"
    r"|rate|size|amount|ratio|duration|length|period|dose|concentration|range|mortality|age)\b"
    r"|\bsample size\b|\bwhat percent",
    re.IGNORECASE,
)
_ASKS_DATE = re.compile(r"\bwhen\b|\b(?:what|which) (?:year|date|month)\b", re.IGNORECASE)
_ASKS_PERSON = re.compile(r"^\s*who\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d")
_MONTHS = "january february march april may june july august september october november december"
_DATE = re.compile(
    rf"\b(?:1[6-9]\d\d|20\d\d)\b|\b(?:{'|'.join(_MONTHS.split())})\b|\b(?:day|week|month|year)s?\b",
    re.IGNORECASE,
)
_NAME = re.compile(r"(?<!^)\b[A-Z][A-Za-z0-9-]+")
_REFERS_BACK = re.compile(
    r"(?:[A-Z][a-z]+,\s+)?(?:it|its|this|these|they|their|such|those|he|she|the latter)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Weights:
    """How much each signal counts in a sentence's score (tuned on the dev set's tune half)."""

    words: float = 2.0  # share of the question's (weighted) terms in the sentence
    meaning: float = 1.0  # cosine similarity of sentence and question embeddings
    heading: float = 0.3  # question terms only in the headings and title above the sentence
    pairs: float = 0.2  # share of the question's adjacent term pairs found in order
    kind: float = 0.4  # penalty when the question asks for a number/date/name it lacks
    rank: float = 0.1  # 1 / the passage's retrieval rank
    retrieval: float = 0.1  # the passage's fused score relative to the top passage's
    anaphora: float = 0.5  # a sentence opening with "It", "This", ... also holds the terms of
    # the sentence before it (whose subject it continues), at this share of their weight


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


def term_list(text: str) -> list[str]:
    """The stemmed content words of `text`, in order."""
    words = (w.lower() for w in _WORD.findall(text))
    return [stem(w) for w in words if len(w) > 1 and w not in STOPWORDS]


def terms(text: str) -> set[str]:
    """The stemmed content words of `text`."""
    return set(term_list(text))


def _pairs(items: Sequence[str]) -> set[tuple[str, str]]:
    return set(zip(items, items[1:], strict=False))


def lacks_kind(question: str, sentence: str) -> bool:
    """True when the question asks for a number, a date or a name and the sentence has none."""
    if _ASKS_NUMBER.search(question):
        return _NUMBER.search(sentence) is None
    if _ASKS_DATE.search(question):
        return _DATE.search(sentence) is None
    if _ASKS_PERSON.search(question):
        return _NAME.search(sentence) is None
    return False


@dataclass(frozen=True, slots=True)
class Candidate:
    """A sentence of a passage, with what scoring needs to know about it."""

    block: ContextBlock
    sentence: Sentence
    terms: frozenset[str]
    context: frozenset[str]  # the terms of its headings, its passage's title, its neighbours
    before: frozenset[str] = frozenset()  # the previous sentence's terms when this one refers back
    following: Sentence | None = None  # the next sentence of the same passage


def candidates(blocks: Sequence[tuple[ContextBlock, list[Sentence]]]) -> list[Candidate]:
    """Every sentence of every passage, with the terms of its context."""
    found: list[Candidate] = []
    for block, sentences in blocks:
        own = [frozenset(term_list(s.text)) for s in sentences]
        title = terms(block.title)
        for i, sentence in enumerate(sentences):
            before = own[i - 1] if i else frozenset()
            around = before | (own[i + 1] if i + 1 < len(own) else frozenset())
            context = frozenset(title | terms(sentence.heading) | around)
            refers = before if _REFERS_BACK.match(sentence.text) else frozenset()
            after = sentences[i + 1] if i + 1 < len(sentences) else None
            found.append(Candidate(block, sentence, own[i], context, refers, after))
    return found


@dataclass(frozen=True, slots=True)
class WordScores:
    """Per candidate: its score from words alone, and its plain coverage of the question."""

    score: np.ndarray
    coverage: np.ndarray


def word_scores(question: str, found: Sequence[Candidate], weights: Weights) -> WordScores:
    """Each candidate's score from words and retrieval (everything but meaning).

    A term's weight is 1 + log((n + 1) / (1 + the number of sentences holding it)): the
    question's rarer terms decide. One shared term is chance, not evidence, unless the question
    has only one: below two terms a sentence's coverage counts nothing.
    """
    asked = term_list(question)
    wanted, pairs = set(asked), _pairs(asked)
    n = len(found)
    weight = {t: 1.0 + math.log((n + 1) / (1 + sum(t in c.terms for c in found))) for t in wanted}
    total = sum(weight.values()) or 1.0
    needed = min(2, len(wanted))
    top = max((c.block.score for c in found), default=0.0) or 1.0
    score, coverage = np.zeros(n), np.zeros(n)
    for i, c in enumerate(found):
        own = wanted & c.terms
        if len(own) >= needed and wanted:
            coverage[i] = sum(weight[t] for t in own) / total
        borrowed = sum(weight[t] for t in (wanted & c.before) - c.terms) / total
        in_context = sum(weight[t] for t in (wanted & c.context) - c.terms) / total
        in_order = len(pairs & _pairs(term_list(c.sentence.text))) / len(pairs) if pairs else 0.0
        score[i] = (
            weights.words * coverage[i]
            + weights.anaphora * borrowed
            + weights.heading * in_context
            + weights.pairs * in_order
            - weights.kind * lacks_kind(question, c.sentence.text)
            + weights.rank / max(c.block.index, 1)
            + weights.retrieval * max(c.block.score, 0.0) / top
        )
    return WordScores(score, coverage)
