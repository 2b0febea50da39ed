"""Answer quality on a SQuAD-format dataset: the data, the scores and the report.

Scores follow SQuAD: answers and gold spans are normalised (lower case, no punctuation, no
articles, single spaces); "contains gold" is a gold span found whole in the answer, and token F1
is the best over the gold spans. A refusal scores 0 on both. A refusal is wrong when a gold span
was in one of the passages the answerer was given (at most `top_k`, 5 by default).

With the extractive answerer every question is answered with its refusal threshold at 0 and the
answerer's confidence is kept, so one run yields the scores at any threshold: a question is
refused at threshold t when its confidence is below t. That is exactly what an answerer with
min_confidence=t returns (its threshold decides only whether to answer, never what to say).
Running the questions through the pipeline is evaluation_answers_run.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import statistics
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenantrag.backends.llm.prompt import is_no_answer

SPLITS = ("tune", "check")
OFF_TOPIC = "off-topic"  # questions the documents do not answer: refusing them is right
TITLE_CHARS = 200
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(17))  # the curve's points
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_MARKER = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")


@dataclass(frozen=True, slots=True)
class Question:
    """One question with its gold answer spans."""

    id: str
    text: str
    answers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Article:
    """One context of the dataset, stored as one document, with the questions about it."""

    document_id: str
    title: str
    text: str
    questions: tuple[Question, ...]

    @property
    def split(self) -> str:
        """'tune' or 'check': a fixed half of the articles, by a hash of the document id."""
        if not self.document_id:
            return OFF_TOPIC
        digest = hashlib.sha256(self.document_id.encode()).digest()
        return SPLITS[digest[0] % 2]


def load_squad(path: Path) -> list[Article]:
    """The contexts of a SQuAD-format file, each with its answerable questions.

    Each context is one document: its `document_id` when the file gives one, else the article
    and paragraph numbers; its title is the article's, else the context's first line.

    Raises:
        ValueError: the file is not SQuAD-shaped JSON.
    """
    try:
        return list(_articles(json.loads(path.read_text(encoding="utf-8"))["data"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a SQuAD-format JSON file ({exc!r})") from None


def _articles(data: list[dict[str, Any]]) -> Iterable[Article]:
    for i, article in enumerate(data):
        for j, paragraph in enumerate(article.get("paragraphs", [])):
            text = str(paragraph["context"])
            doc_id = str(paragraph.get("document_id", f"{i}-{j}"))
            first_line = next((line for line in text.splitlines() if line.strip()), doc_id)
            title = str(article.get("title") or first_line).strip()[:TITLE_CHARS]
            questions = tuple(
                Question(
                    str(qa["id"]), str(qa["question"]), tuple(str(a["text"]) for a in qa["answers"])
                )
                for qa in paragraph.get("qas", [])
                if qa.get("answers") and not qa.get("is_impossible", False)
            )
            yield Article(f"squad-{doc_id}", title, text, questions)


def load_off_topic(path: Path) -> Article:
    """Questions the tenant's documents do not answer, from JSONL lines {"text": ...}.

    They come back as one pseudo-article without a document, so nothing is ingested for them.

    Raises:
        ValueError: a line is not a JSON object with a "text" string.
    """
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)["text"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}:{number} is not a JSON object with a text") from None
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}:{number}: text must be a non-empty string")
        questions.append(Question(f"{OFF_TOPIC}-{number}", text, ()))
    return Article("", OFF_TOPIC, "", tuple(questions))


def normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_words(answer: str) -> list[str]:
    """The normalised words of an answer, its citation markers removed."""
    return normalise(_MARKER.sub(" ", answer)).split()


def contains_gold(answer: str, golds: Iterable[str]) -> bool:
    """True when some gold span, normalised, appears whole (word for word) in the answer."""
    padded = f" {' '.join(answer_words(answer))} "
    return any(f" {normalise(g)} " in padded for g in golds if normalise(g))


def token_f1(answer: str, golds: Iterable[str]) -> float:
    """SQuAD's token F1 of the answer against its best-matching gold span."""
    predicted = answer_words(answer)
    best = 0.0
    for gold in golds:
        truth = normalise(gold).split()
        common = sum((Counter(predicted) & Counter(truth)).values())
        if common:
            precision, recall = common / len(predicted), common / len(truth)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def holds_gold(text: str, golds: Iterable[str]) -> bool:
    """True when a passage's text holds one of the gold spans (normalised)."""
    return contains_gold(text, golds)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one question got; `answer` is the reply with the refusal threshold at 0."""

    question_id: str
    document_id: str
    split: str
    answer: str
    confidence: float  # the answerer's; 1.0 when it gives none (any other model)
    latency_ms: float
    cpu_ms: float  # this process's CPU time for the request: what latency is on an idle machine
    gold_in_passages: bool
    contains_gold: bool
    f1: float
    words: int
    cited: int
    cited_with_gold: int
    error: str | None = None  # the error code when the pipeline refused the request

    @property
    def refused_outright(self) -> bool:
        """Refused whatever the threshold: nothing to quote, or the request failed."""
        return self.error is not None or is_no_answer(self.answer)

    def refused(self, threshold: float) -> bool:
        """True when an answerer with this refusal threshold would refuse."""
        return self.refused_outright or self.confidence < threshold


@dataclass(frozen=True, slots=True)
class AnswerScores:
    """Means over a set of questions at one refusal threshold."""

    questions: int
    contains_gold: float
    f1: float
    refusals: float
    wrong_refusals: float
    citation_precision: float
    words_mean: float
    words_median: float
    gold_in_passages: float
    latency_p50_ms: float
    latency_p95_ms: float
    cpu_p50_ms: float
    cpu_p95_ms: float


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n q / 100), at least the first
    return ordered[int(rank) - 1]


def score(outcomes: Sequence[Outcome], threshold: float) -> AnswerScores:
    """The scores of `outcomes` had the answerer refused below `threshold`."""
    n = len(outcomes)
    if n == 0:
        return AnswerScores(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    answered = [o for o in outcomes if not o.refused(threshold)]
    refused = [o for o in outcomes if o.refused(threshold)]
    cited = sum(o.cited for o in answered)
    words = [o.words for o in answered]
    latency, cpu = [o.latency_ms for o in outcomes], [o.cpu_ms for o in outcomes]
    return AnswerScores(
        questions=n,
        contains_gold=sum(o.contains_gold for o in answered) / n,
        f1=sum(o.f1 for o in answered) / n,
        refusals=len(refused) / n,
        wrong_refusals=sum(o.gold_in_passages for o in refused) / n,
        citation_precision=sum(o.cited_with_gold for o in answered) / cited if cited else 0.0,
        words_mean=statistics.fmean(words) if words else 0.0,
        words_median=statistics.median(words) if words else 0.0,
        gold_in_passages=sum(o.gold_in_passages for o in outcomes) / n,
        latency_p50_ms=percentile(latency, 50),
        latency_p95_ms=percentile(latency, 95),
        cpu_p50_ms=percentile(cpu, 50),
        cpu_p95_ms=percentile(cpu, 95),
    )


def curve(
    outcomes: Sequence[Outcome], thresholds: Iterable[float]
) -> list[tuple[float, AnswerScores]]:
    """The scores at each threshold: the trade-off between answering and refusing."""
    return [(t, score(outcomes, t)) for t in thresholds]


@dataclass
class AnswerRun:
    """Everything one benchmark run measured, per question."""

    outcomes: list[Outcome] = field(default_factory=list)
    threshold: float = 0.0  # the answerer's own refusal threshold
    ingested: int = 0  # documents added to the tenant by this run

    def to_json(self) -> dict[str, Any]:
        """Scores per split at the answerer's threshold, the curve per split, every outcome."""
        groups = self.by_split()
        return {
            "threshold": self.threshold,
            "ingested": self.ingested,
            "scores": {k: dataclasses.asdict(score(v, self.threshold)) for k, v in groups.items()},
            "curve": {
                k: [{"threshold": t, **dataclasses.asdict(s)} for t, s in curve(v, THRESHOLDS)]
                for k, v in groups.items()
            },
            "outcomes": [dataclasses.asdict(o) for o in self.outcomes],
        }

    def by_split(self) -> dict[str, list[Outcome]]:
        """All answerable questions, each half, then the off-topic ones (if any were asked)."""
        groups = {"all": [o for o in self.outcomes if o.split != OFF_TOPIC]}
        for name in (*SPLITS, OFF_TOPIC):
            groups[name] = [o for o in self.outcomes if o.split == name]
        if not groups[OFF_TOPIC]:
            del groups[OFF_TOPIC]
        return groups


def report(run: AnswerRun) -> str:
    """A plain-text report: scores per split at the answerer's threshold, then the curve."""
    lines = [
        f"refusal threshold {run.threshold:g}; {run.ingested} documents ingested by this run",
        f"{'split':<7}{'n':>5}{'gold':>7}{'F1':>7}{'refuse':>8}{'wrong':>7}{'cite':>7}"
        f"{'words':>7}{'med':>5}{'top5':>7}{'p50ms':>8}{'p95ms':>8}{'cpu50':>7}{'cpu95':>7}",
    ]
    for name, outcomes in run.by_split().items():
        s = score(outcomes, run.threshold)
        lines.append(
            f"{name:<7}{s.questions:>5}{s.contains_gold:>7.3f}{s.f1:>7.3f}{s.refusals:>8.3f}"
            f"{s.wrong_refusals:>7.3f}{s.citation_precision:>7.3f}{s.words_mean:>7.1f}"
            f"{s.words_median:>5.0f}{s.gold_in_passages:>7.3f}{s.latency_p50_ms:>8.1f}"
            f"{s.latency_p95_ms:>8.1f}{s.cpu_p50_ms:>7.1f}{s.cpu_p95_ms:>7.1f}"
        )
    lines += [
        "",
        "refusal threshold curve: gold / wrong refusals / refusals / F1 per half"
        + (f"; refusals of {OFF_TOPIC} questions" if OFF_TOPIC in run.by_split() else ""),
    ]
    groups = {k: v for k, v in run.by_split().items() if k != "all"}
    lines.append(f"{'t':>5}" + "".join(f"{name:>28}" for name in SPLITS) + f"{OFF_TOPIC:>11}")
    for t in THRESHOLDS:
        cells = []
        for name, outcomes in groups.items():
            s = score(outcomes, t)
            if name == OFF_TOPIC:
                cells.append(f"{s.refusals:>11.3f}")
            else:
                cells.append(
                    f"{s.contains_gold:>7.3f}{s.wrong_refusals:>7.3f}{s.refusals:>7.3f}{s.f1:>7.3f}"
                )
        lines.append(f"{t:>5.2f}" + "".join(cells))
    return "\n".join(lines)
