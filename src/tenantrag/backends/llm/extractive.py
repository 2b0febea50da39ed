"""An offline answerer: a short answer and the sentences that support it, quoted and cited.

It never invents text: every sentence is copied from a numbered passage and ends with that
passage's [n], so each citation names where its sentence comes from. The source's own
reference numbers ([3], [2, 5]) are removed from quotes, so they never read as citations, and
a passage quoted as untrusted data is read without the wrapper around it.

Sentences are scored by words, context and retrieval (scoring.py), and by meaning: each is
compared with the question by the vector ingestion stored for it (or, for a chunk stored without
them, the best few by words are embedded now). When even the best sentence neither shares the
question's terms nor its meaning (its confidence is below `min_confidence`), it answers with
prompt.NO_ANSWER, the refusal every answerer shares.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tenantrag.backends.cache.lru import TenantLRU
from tenantrag.backends.llm import Completion, ContextBlock, Delta, Done, Prompt, StreamEvent
from tenantrag.backends.llm.prompt import MAX_SUPPORTING, NO_ANSWER, source_text
from tenantrag.backends.llm.scoring import (
    Candidate,
    Weights,
    abbreviations,
    candidates,
    term_list,
    terms,
    word_scores,
)
from tenantrag.backends.llm.sentences import Sentence, sentences
from tenantrag.backends.llm.tokens import TokenCounter, rough_count, shared_count

Embed = Callable[[Sequence[str]], np.ndarray]
# The question's vector when the pipeline has already computed it: (tenant, question) -> vector.
KnownVector = Callable[[str, str], np.ndarray | None]

MIN_CONFIDENCE = 0.25  # chosen on the tune half's refusal curve (docs/benchmarks/answers.md)
MIN_RELATIVE = 0.8  # a supporting sentence scores at least this share of the best one's score
SHORT_WORDS = 25  # a best sentence this short is the short answer itself
FOLLOW_WORDS = 16  # a best sentence shorter than this is quoted with the one after it
EMBED_WORDS = 16  # sentences embedded live, by their first words: the cost grows with length
VECTOR_CACHE = 8192  # sentence vectors kept, by tenant, chunk and text
SENTENCE_CACHE = 4096  # passages' split sentences kept, by tenant, chunk and text
_CLOSING = re.compile(r"([.!?:;]+)([\"')\]]*)$")
_CLAUSE = re.compile(r"(?<=[;:])\s+|,\s+(?=(?:which|whereas|while|but|although|though)\b)")
# The fence quote_untrusted puts around a flagged passage's text (governance/injection.py).
_FENCED = re.compile(r"```text\n(.*)\n```", re.DOTALL)


def unwrap(block: ContextBlock) -> str:
    """The passage's own text: for an untrusted one, only what is inside the data fence.

    The wrapper's sentences ("The text below is quoted from a document...") are ours, not the
    document's, and must never come back as an answer; an untrusted passage without the fence
    is not read at all.
    """
    if not block.untrusted:
        return block.text
    match = _FENCED.search(block.text)
    return match.group(1) if match else ""


def cite(sentence: str, index: int) -> str:
    """`sentence` with its citation [index] placed before the closing full stop."""
    match = _CLOSING.search(sentence)
    if match is None:
        return f"{sentence} [{index}]."
    stop = match.group(1)[-1]
    stop = "." if stop in ":;" else stop  # a quoted list intro ends our sentence
    return f"{sentence[: match.start()]}{match.group(2)} [{index}]{stop}"


def short_answer(question: str, sentence: str) -> str:
    """The tightest clause of `sentence` that holds most of the question's terms.

    A sentence of at most SHORT_WORDS words is already short. Otherwise it is cut at clause
    boundaries (; : and ", which", ", but" ...) and the clause sharing the most question terms
    wins, ties going to the earlier one. A clause that adds nothing beyond the question's own
    words does not answer it, and then the whole sentence is kept.
    """
    if len(sentence.split()) <= SHORT_WORDS:
        return sentence
    wanted = terms(question)
    clauses = [c for c in _clauses(sentence) if len(c.split()) >= 4]
    best = max(clauses, key=lambda c: len(wanted & terms(c)), default=sentence)
    if not wanted & terms(best) or not terms(best) - wanted:
        return sentence
    best = best.rstrip(",;: ")
    return best[:1].upper() + best[1:]


def _clauses(sentence: str) -> list[str]:
    """`sentence` cut at its clause boundaries outside brackets.

    "(Zhou et al., 1997; ...)" stays whole: a clause cut inside brackets would not read.
    """
    pieces: list[str] = []
    start = 0
    for match in _CLAUSE.finditer(sentence):
        before = sentence[start : match.start()]
        depth = before.count("(") - before.count(")") + before.count("[") - before.count("]")
        if depth == 0:
            pieces.append(before)
            start = match.end()
    pieces.append(sentence[start:])
    return pieces


@dataclass(frozen=True, slots=True)
class Reply:
    """What the answerer says: a cited short answer, its supporting sentences, its confidence.

    An empty `short` is a refusal; `text` is then NO_ANSWER.
    """

    short: str
    support: tuple[str, ...]
    confidence: float

    @property
    def pieces(self) -> list[str]:
        """The answer as streamed: the short answer, then each supporting sentence."""
        if not self.short:
            return [NO_ANSWER]
        if not self.support:
            return [self.short]
        return [self.short, "\n\n" + self.support[0], *(" " + s for s in self.support[1:])]

    @property
    def text(self) -> str:
        """The whole answer."""
        return "".join(self.pieces)


# What the answerer keeps of popular passages, which come back query after query, is keyed by
# (tenant, chunk id, text): one tenant's passages never answer for another's.
_Passage = tuple[str, str, str]


class _VectorCache(TenantLRU[_Passage, np.ndarray]):
    """Sentence vectors embedded while a question waited (chunks stored without theirs)."""


class ExtractiveLLM:
    """Answers from the passages alone: a short answer and supporting sentences, each cited [n].

    Args:
        count_tokens: counts usage; pass the embedder's word-piece counter for real numbers.
        embed: the embedding model; when given, the best `semantic_candidates` sentences by
            words are compared with the question by meaning too (one batched call per answer).
        max_sentences: the most sentences an answer quotes (the short answer's included; the
            prompt's shape, prompt.MAX_SUPPORTING more), plus the sentence after the best one
            when that is short (FOLLOW_WORDS).
        min_relative: a supporting sentence's least score, as a share of the best sentence's.
        max_blocks: how many of the top passages are read.
        min_confidence: below this confidence the answer is NO_ANSWER.
        semantic_candidates: how many sentences without a stored vector are embedded per
            answer (cached per chunk); those with one are all compared.
        weights: how the scores are combined (scoring.Weights).
        query_vector: looks up the question's vector the pipeline computed for the tenant, so
            only sentences are embedded here; when it has none the question is embedded too.
    """

    model = "extractive"

    def __init__(
        self,
        *,
        count_tokens: TokenCounter = rough_count,
        embed: Embed | None = None,
        max_sentences: int = 1 + MAX_SUPPORTING,
        max_blocks: int = 5,
        min_confidence: float = MIN_CONFIDENCE,
        semantic_candidates: int = 3,
        min_relative: float = MIN_RELATIVE,
        weights: Weights | None = None,
        query_vector: KnownVector | None = None,
    ) -> None:
        self.count_tokens, self.embed = count_tokens, embed
        # The cache is the one build_prompt fills: with a word-piece counter it has already
        # counted each source's text on its own, so usage tokenises no source a second time.
        self._count_block = shared_count(count_tokens)
        self.max_sentences, self.max_blocks = max_sentences, max_blocks
        self.min_confidence, self.semantic_candidates = min_confidence, semantic_candidates
        self.weights, self.min_relative = weights or Weights(), min_relative
        self.query_vector = query_vector
        self._vectors = _VectorCache(VECTOR_CACHE)
        self._split = TenantLRU[_Passage, tuple[Sentence, ...]](SENTENCE_CACHE)

    @property
    def options(self) -> dict[str, Any]:
        """The constructor's arguments, to build another answerer configured alike."""
        return {
            "count_tokens": self.count_tokens,
            "embed": self.embed,
            "max_sentences": self.max_sentences,
            "max_blocks": self.max_blocks,
            "min_confidence": self.min_confidence,
            "semantic_candidates": self.semantic_candidates,
            "min_relative": self.min_relative,
            "weights": self.weights,
            "query_vector": self.query_vector,
        }

    def reply(self, question: str, blocks: Sequence[ContextBlock], *, tenant: str = "") -> Reply:
        """The answer to `question` from `blocks` (best first), or a refusal."""
        ranked = self.rank(question, blocks, tenant=tenant)
        if ranked is None:
            return Reply("", (), 0.0)
        found, score, confidence = ranked
        order = np.argsort(-score, kind="stable")
        best = float(confidence[order[0]])
        if best < self.min_confidence:
            return Reply("", (), best)
        # A supporting sentence must score near the best one: a weak runner-up adds words, not
        # answers.
        floor = self.min_relative * score[order[0]]
        picked = [i for i in order[: self.max_sentences] if i == order[0] or score[i] >= floor]
        return self._compose(question, [found[i] for i in picked], best)

    def rank(
        self, question: str, blocks: Sequence[ContextBlock], *, tenant: str = ""
    ) -> tuple[list[Candidate], np.ndarray, np.ndarray] | None:
        """Every candidate sentence with its score and confidence; None when there is none."""
        texts = [unwrap(b) for b in blocks[: self.max_blocks]]
        read = [(b, self._sentences(tenant, b, t)) for b, t in zip(blocks, texts, strict=False)]
        # Abbreviations the question or the passages define ("... encephalopathy (ANE)") join
        # a sentence that uses one to the question that spells it out, and the other way round.
        found = candidates(read, abbreviations([question, *texts]))
        if not found or not term_list(question):
            return None
        words = word_scores(question, found, self.weights)
        score, confidence = words.score.copy(), words.coverage.copy()
        if self.embed is not None and self.semantic_candidates > 0:
            # Every sentence whose vector ingestion stored is measured (a dot product); of the
            # rest, only the best few by words are embedded now, each costing a model call.
            stored = _stored_rows(read)
            by_words = np.argsort(-score, kind="stable")[: self.semantic_candidates]
            have = np.flatnonzero(np.array([v is not None for v in stored], dtype=bool))
            shortlist = np.union1d(by_words, have)
            cosine = self._cosine(
                question, [found[i] for i in shortlist], stored[shortlist], tenant
            )
            score[shortlist] += self.weights.meaning * cosine
            confidence[shortlist] = 0.5 * confidence[shortlist] + 0.5 * cosine
            others = np.setdiff1d(np.arange(len(found)), shortlist)
            confidence[others] *= 0.5  # their meaning was not measured: counted as none
        return found, score, confidence

    def tenants(self) -> set[str]:
        """The tenants this answerer keeps something of now.

        Its caches are TenantLRUs, so an erasure drops the tenant from them (forget_everywhere).
        """
        return self._split.tenants() | self._vectors.tenants()

    def _sentences(self, tenant: str, block: ContextBlock, text: str) -> list[Sentence]:
        """`sentences(text)`, split once per (tenant, chunk, text) while it stays popular."""
        key = (tenant, block.chunk_id, text)
        found = self._split.get(key)
        if found is None:
            found = tuple(sentences(text))
            self._split.put(key, found)
        return list(found)

    def _compose(self, question: str, picked: list[Candidate], confidence: float) -> Reply:
        """The short answer from the best sentence, and the sentences that support it.

        Sentences are quoted with the source's own reference numbers (Sentence.quoted).
        """
        first = picked[0]
        whole = first.sentence.quoted
        # The clause is chosen on the sentence as scored: reference numbers are not words.
        short = short_answer(question, first.sentence.text)
        short = whole if short == first.sentence.text else short
        quoted = {whole.lower()} if short == whole else set()
        quotes = [(c.sentence.quoted, c.block.index) for c in picked]
        if len(first.sentence.text.split()) < FOLLOW_WORDS and first.following is not None:
            # A short best sentence often only opens the point ("The results were as follows.")
            # that the next one makes.
            quotes.insert(1, (first.following.quoted, first.block.index))
        support: list[str] = []
        for text, index in quotes if short != whole else quotes[1:]:
            if text.lower() not in quoted:
                quoted.add(text.lower())
                support.append(cite(text, index))
        return Reply(cite(short, first.block.index), tuple(support), confidence)

    def _cosine(
        self, question: str, chosen: list[Candidate], stored: np.ndarray, tenant: str
    ) -> np.ndarray:
        """Cosine similarity of each chosen sentence to the question, negatives clipped to 0.

        A sentence's vector is the one ingestion stored (`stored`, aligned with `chosen`), else
        one embedded earlier for this tenant's chunk, else embedded now with the question.
        """
        assert self.embed is not None
        keys = [(tenant, c.block.chunk_id, _clip(c.sentence)) for c in chosen]
        vectors: list[np.ndarray | None] = [
            row if row is not None else self._vectors.get(k)
            for row, k in zip(stored, keys, strict=True)
        ]
        missing = [i for i, v in enumerate(vectors) if v is None]
        known = self._known(tenant, question)
        if known is not None and not missing:
            matrix = np.stack([v for v in vectors if v is not None])
            return np.asarray(np.clip(matrix @ known, 0.0, 1.0), dtype=np.float64)
        texts = [keys[i][2] for i in missing] if known is not None else [question]
        if known is None:
            texts += [keys[i][2] for i in missing]
        fresh = _unit(self.embed(texts)) if texts else np.zeros((0, 0))
        asked = known if known is not None else fresh[0]
        first = 0 if known is not None else 1
        for row, i in enumerate(missing, start=first):
            vectors[i] = fresh[row]
            self._vectors.put(keys[i], fresh[row])
        matrix = np.stack([v for v in vectors if v is not None])
        return np.asarray(np.clip(matrix @ asked, 0.0, 1.0), dtype=np.float64)

    def _known(self, tenant: str, question: str) -> np.ndarray | None:
        """The question's vector as the pipeline computed it, normalised; None if not known."""
        if self.query_vector is None or not tenant:
            return None
        vector = self.query_vector(tenant, question)
        return None if vector is None else _unit(np.asarray(vector).reshape(1, -1))[0]

    def _pieces(self, prompt: Prompt, tenant: str = "") -> tuple[list[str], Completion]:
        """The answer's pieces as streamed, and the completion they add up to."""
        pieces = self.reply(prompt.question, prompt.blocks, tenant=tenant).pieces
        text = "".join(pieces)
        read = self.count_tokens(prompt.question) + sum(
            self._count_block(source_text(b)) for b in prompt.blocks[: self.max_blocks]
        )
        return pieces, Completion(text, self.model, read, self.count_tokens(text))

    async def _answer(self, prompt: Prompt, tenant: str) -> tuple[list[str], Completion]:
        # With an embedding call (tens of ms, the GIL released inside onnxruntime) the answer is
        # worked out on a thread, so the event loop goes on serving other requests meanwhile.
        # With every passage's sentence vectors stored there is none: a few ms of Python, which
        # a thread would not overlap with anything (the GIL) and whose hand-offs cost more.
        if self.embed is None or self._all_stored(prompt.blocks):
            return self._pieces(prompt, tenant)
        return await asyncio.to_thread(self._pieces, prompt, tenant)

    def _all_stored(self, blocks: Sequence[ContextBlock]) -> bool:
        return self.query_vector is not None and all(
            b.sentence_vectors is not None for b in blocks[: self.max_blocks]
        )

    async def complete(self, prompt: Prompt, *, tenant: str) -> Completion:
        """The extractive answer to the prompt's question."""
        return (await self._answer(prompt, tenant))[1]

    async def stream(self, prompt: Prompt, *, tenant: str) -> AsyncIterator[StreamEvent]:
        """The same answer: the short answer, then one delta per supporting sentence."""
        pieces, completion = await self._answer(prompt, tenant)
        for piece in pieces:
            yield Delta(piece)
        yield Done(completion)


def _stored_rows(read: Sequence[tuple[ContextBlock, list[Sentence]]]) -> np.ndarray:
    """Per candidate sentence (in `candidates` order), its stored vector or None.

    A block's stored rows are used only when they number its sentences: rows from another
    split of the text (a chunk stored by an older release) would be matched to the wrong ones.
    """
    rows: list[np.ndarray | None] = []
    for block, found in read:
        vectors = block.sentence_vectors
        if vectors is not None and len(vectors) == len(found):
            rows.extend(vectors[i] for i in range(len(found)))
        else:
            rows.extend([None] * len(found))
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


def _clip(sentence: Sentence) -> str:
    words = sentence.text.split()
    return sentence.text if len(words) <= EMBED_WORDS else " ".join(words[:EMBED_WORDS])


def sentence_texts(passage: str) -> list[str]:
    """The sentences of `passage` that ingestion embeds for the answerer, whole and in order.

    Ingestion embeds these once per chunk (rows.sentence_blob); `rank` then reads the stored
    rows instead of embedding while the question waits, and measures every sentence, not a
    shortlist. Whole sentences, where a live embedding takes EMBED_WORDS words to bound the
    question's wait: on COVID-QA dev +1.9 points contains-gold (docs/benchmarks/answers.md).
    The rows line up with `sentences()` of the same text, which is how they are matched.
    """
    return [s.text for s in sentences(passage)]


def _unit(vectors: np.ndarray) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return np.asarray(matrix / norms, dtype=np.float64)
