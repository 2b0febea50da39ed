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
from collections.abc import Iterable, Sequence
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
# A stem is cut to this many letters: one concept's word family shares its opening letters
# whatever its ending ("coronavirus" and "Coronaviridae", "immunity" and "immunities",
# "infection" and "infectious"), which the suffix rules alone miss (tune half +1.3 points).
CONCEPT_CHARS = 7
# An abbreviation defined in the text: "acute necrotizing encephalopathy (ANE)". The short
# form has a capital letter and at most 10 characters; its long form is found among the words
# just before it (long_form). Linear patterns only: they read untrusted text.
_DEFINED = re.compile(r"\(\s?([A-Za-z][A-Za-z0-9-]{1,9})\s?\)")
_LONG_FORM_CHARS = 150
_LONG_FORM_WORDS = 12
_LONG_WORD = re.compile(r"[^\W_][\w'-]*")

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
def concept(word: str) -> str:
    """A lower-case word's concept: its stem, cut to CONCEPT_CHARS letters."""
    return stem(word)[:CONCEPT_CHARS]


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
    """The concepts of `text`'s content words, in order.

    An upper-case word is an acronym even when its lower case is a stop word ("WHO criteria",
    "IT costs"), unless the whole text is upper case.
    """
    acronyms = not text.isupper()
    found = []
    for word in _WORD.findall(text):
        lower = word.lower()
        if len(word) > 1 and (lower not in STOPWORDS or acronyms and word.isupper()):
            found.append(concept(lower))
    return found


def terms(text: str) -> set[str]:
    """The stemmed content words of `text`."""
    return set(term_list(text))


def long_form(before: str, short: str) -> str | None:
    """The words at the end of `before` that `short` abbreviates, or None.

    Schwartz and Hearst's rule: the short form's letters and digits are found in order, from
    its last to its first, reading the text backwards, and its first letter opens a word. The
    long form is at most min(letters + 5, 2 * letters) words and at least two.
    """
    chars = [c.lower() for c in short if c.isalnum()]
    text = " ".join(_LONG_WORD.findall(before)[-_LONG_FORM_WORDS:])
    at = len(text) - 1
    for n, char in enumerate(reversed(chars)):
        first = n == len(chars) - 1
        while at >= 0 and (text[at].lower() != char or first and at > 0 and text[at - 1].isalnum()):
            at -= 1
        if at < 0:
            return None
        at -= 1
    start = text.rfind(" ", 0, at + 1) + 1
    words = text[start:].split()
    if not 2 <= len(words) <= min(len(chars) + 5, 2 * len(chars)):
        return None
    return " ".join(words)


def abbreviations(texts: Iterable[str]) -> dict[str, frozenset[str]]:
    """The abbreviations `texts` define, as {short form's term: its long form's terms}.

    "nuclear receptors (NRs)" gives {"nrs": {"nuclear", "recepto"}, "nr": ...}: a sentence that
    only says "NRs" is about nuclear receptors.
    """
    found: dict[str, frozenset[str]] = {}
    for text in texts:
        for match in _DEFINED.finditer(text):
            short = match.group(1)
            if not any(c.isupper() for c in short):
                continue
            core = short[:-1] if short.endswith("s") and short[:-1].isupper() else short
            before = text[max(0, match.start() - _LONG_FORM_CHARS) : match.start()]
            words = long_form(before, core)
            if words is None:
                continue
            meaning = frozenset(term_list(words))
            for key in {concept(core.lower()), concept(short.lower())}:
                if meaning - {key}:
                    found[key] = meaning - {key}
    return found


def expand(found: frozenset[str], defined: dict[str, frozenset[str]]) -> frozenset[str]:
    """`found` with each defined abbreviation's long form, and each long form's abbreviation."""
    if not defined:
        return found
    grown = set(found)
    for short, meaning in defined.items():
        if short in found:
            grown |= meaning
        elif meaning <= found:
            grown.add(short)
    return frozenset(grown)


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
    topic: frozenset[str] = frozenset()  # the terms of its passage's title and its headings
    order: tuple[str, ...] = ()  # its own terms in order (term_list), for the question's pairs


def candidates(
    blocks: Sequence[tuple[ContextBlock, list[Sentence]]],
    defined: dict[str, frozenset[str]] | None = None,
) -> list[Candidate]:
    """Every sentence of every passage, with the terms of its context.

    `defined` abbreviations (abbreviations()) add their long form's terms to a sentence that
    uses the short form, and the short form's to one that spells the long form out.
    """
    known = defined or {}
    found: list[Candidate] = []
    for block, sentences in blocks:
        orders = [tuple(term_list(s.text)) for s in sentences]
        own = [expand(frozenset(o), known) for o in orders]
        title = terms(block.title)
        for i, sentence in enumerate(sentences):
            before = own[i - 1] if i else frozenset()
            around = before | (own[i + 1] if i + 1 < len(own) else frozenset())
            topic = frozenset(title | terms(sentence.heading))
            context = expand(topic | around, known)
            refers = before if _REFERS_BACK.match(sentence.text) else frozenset()
            after = sentences[i + 1] if i + 1 < len(sentences) else None
            found.append(
                Candidate(block, sentence, own[i], context, refers, after, topic, orders[i])
            )
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
    has only one: below two terms a sentence's coverage counts nothing. The question's terms in
    the title or headings above a sentence count towards those two (a sentence of the article
    on bovine coronavirus need not repeat "bovine coronavirus"), though not in its coverage.
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
        if len(own | (wanted & c.topic)) >= needed and own:
            coverage[i] = sum(weight[t] for t in own) / total
        borrowed = sum(weight[t] for t in (wanted & c.before) - c.terms) / total
        in_context = sum(weight[t] for t in (wanted & c.context) - c.terms) / total
        order = c.order or term_list(c.sentence.text)
        in_order = len(pairs & _pairs(order)) / len(pairs) if pairs else 0.0
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
