"""The extractive answerer alone, replayed over recorded passages: fast what-if runs for tuning.

`record` asks every COVID-QA dev question (and the off-topic ones) through /api/query's stages
once, as bench/answers.py does, and keeps what the answerer was given: the passages (top_k of
them, 10 by default, so reading more than five can be tried) and the question's vector as the
pipeline computed it (the int8 query encoder). `replay` then runs answerer variants over those
recordings, in seconds rather than minutes, and prints contains-gold, refusals, wrong refusals
and words per half, plus where the misses come from (`--why`): the gold not in the passages
read (retrieval), the gold in a passage but no picked sentence holds it (selection), a picked
sentence holds it but the answer's text does not (the short answer cut it).

Only the tune half should steer choices; the check half is the honest estimate. Run from the
project root (bench/answers.py must have loaded the tenant first):

    .venv/bin/python -m bench.answer_replay record --data ../shared/data
    .venv/bin/python -m bench.answer_replay replay --why
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench.answers import DATASET, FOLDER, MODEL_DIR, SHARED, TENANT, off_topic_file

RECORDING = FOLDER / "replay.pickle"


@dataclass(frozen=True)
class Recorded:
    """One question as the answerer saw it."""

    id: str
    split: str
    question: str
    golds: tuple[str, ...]
    blocks: tuple[Any, ...]  # ContextBlock, best first
    vector: np.ndarray | None  # the pipeline's query vector


def record(folder: Path, data: Path, top_k: int, clearance: str = "internal") -> list[Recorded]:
    """Every question through the /api/query stages with `top_k` passages, recorded."""
    from tenantrag.backends.llm import ContextBlock
    from tenantrag.backends.llm.extractive import ExtractiveLLM, Reply
    from tenantrag.backends.store.sqlite import SQLiteStore
    from tenantrag.evaluation_answers import load_off_topic, load_squad
    from tenantrag.evaluation_answers_run import ask_all, evaluation_service, question_embeddings
    from tenantrag.models import Classification
    from tenantrag.observability.audit import Auditor
    from tenantrag.services import build_corpus
    from tenantrag.settings import Settings

    seen: list[tuple[str, tuple[ContextBlock, ...], np.ndarray | None]] = []

    class Recorder(ExtractiveLLM):
        def reply(
            self, question: str, blocks: Sequence[ContextBlock], *, tenant: str = ""
        ) -> Reply:
            vector = self.query_vector(tenant, question) if self.query_vector else None
            seen.append((question, tuple(blocks), vector))
            return super().reply(question, blocks, tenant=tenant)

    model_dir = Path(os.environ.get("TENANTRAG_MODEL_DIR", MODEL_DIR))
    settings = Settings(data_dir=folder, model_dir=model_dir)
    store = SQLiteStore(settings.db_path)
    store.open()
    tenant = store.get_tenant(TENANT)
    if tenant is None:
        sys.exit("no covidqa tenant: run `python -m bench.answers` once first")
    corpus = build_corpus(settings, store)
    articles = [*load_squad(data / DATASET), load_off_topic(off_topic_file(folder, data))]
    auditor = Auditor(store)
    embeddings = question_embeddings(settings, corpus)  # the server's (int8 by default)
    answerer = Recorder(
        count_tokens=embeddings.count_tokens,
        embed=embeddings.embed,
        query_vector=embeddings.lookup,
        min_confidence=0.0,
    )
    service = evaluation_service(settings, corpus, auditor, answerer, embeddings)
    try:
        level = Classification.parse(clearance)
        asyncio.run(ask_all(service, tenant, articles, top_k=top_k, clearance=level))
    finally:
        auditor.close()
    # The pipeline collapses a question's whitespace; a question asked twice is answered twice.
    by_text: dict[str, list[tuple[tuple[ContextBlock, ...], np.ndarray | None]]] = {}
    for q, b, v in seen:
        by_text.setdefault(" ".join(q.split()), []).append((b, v))
    out = []
    for article in articles:
        for q in article.questions:
            queue = by_text.get(" ".join(q.text.split()), [])
            blocks, vector = queue.pop(0) if queue else ((), None)
            out.append(
                Recorded(q.id, article.split, " ".join(q.text.split()), q.answers, blocks, vector)
            )
    return out


def load(path: Path = RECORDING) -> list[Recorded]:
    """The recorded questions."""
    with path.open("rb") as f:
        # Our own recording, written by `record` into the bench folder: trusted input.
        return [Recorded(**row) for row in pickle.load(f)]  # noqa: S301


def question_embedder(folder: Path = FOLDER) -> Callable[[Sequence[str]], np.ndarray]:
    """The questions' model as the server builds it (its settings, int8 by default): the one
    the served answerer embeds sentences with when a chunk has no stored vectors."""
    from tenantrag.backends.embedding import build_query_embedder
    from tenantrag.backends.embedding.onnx import OnnxEmbedder, prepare_model
    from tenantrag.settings import Settings

    model_dir = Path(os.environ.get("TENANTRAG_MODEL_DIR", MODEL_DIR))
    settings = Settings(data_dir=folder, model_dir=model_dir)
    documents = OnnxEmbedder(prepare_model(settings.onnx_dir))
    return build_query_embedder(
        settings.embedding, model_dir=settings.onnx_dir, documents=documents
    ).embed


@dataclass
class Result:
    """One replayed answer."""

    rec: Recorded
    answer: str
    confidence: float
    refused: bool
    gold: bool
    gold_read: bool  # a gold span in the passages the answerer read (its max_blocks)
    gold_top5: bool
    words: int
    why: str


def replay(
    recs: Sequence[Recorded], answerer: Any, *, top: int = 5, why: bool = False
) -> list[Result]:
    """Answer every recorded question with `answerer` over its first `top` passages."""
    from tenantrag.backends.llm.prompt import is_no_answer
    from tenantrag.evaluation_answers import answer_words, contains_gold, holds_gold

    known = {r.question: r.vector for r in recs}
    answerer.query_vector = lambda tenant, q: known.get(q)
    out = []
    for r in recs:
        blocks = r.blocks[:top]
        reply = answerer.reply(r.question, blocks, tenant=TENANT)
        text = reply.text
        refused = is_no_answer(text)
        gold = not refused and contains_gold(text, r.golds)
        read = blocks[: answerer.max_blocks]
        gold_read = any(holds_gold(b.text, r.golds) for b in read)
        gold_top5 = any(holds_gold(b.text, r.golds) for b in r.blocks[:5])
        reason = ""
        if why and r.golds and not gold:
            reason = _why(answerer, r, read, reply, gold_read)
        out.append(
            Result(
                r,
                text,
                reply.confidence,
                refused,
                gold,
                gold_read,
                gold_top5,
                len(answer_words(text)),
                reason,
            )
        )
    return out


def _why(answerer: Any, r: Recorded, read: Sequence[Any], reply: Any, gold_read: bool) -> str:
    from tenantrag.backends.llm.extractive import unwrap
    from tenantrag.backends.llm.sentences import sentences
    from tenantrag.evaluation_answers import contains_gold

    if not gold_read:
        return "retrieval"
    if not reply.short:
        return "refused"
    quotable = [s.text for b in read for s in sentences(unwrap(b))]
    if not any(contains_gold(s, r.golds) for s in quotable):
        return "unquotable"  # spans sentences, or lost in cleaning/splitting
    ranked = answerer.rank(r.question, read, tenant=TENANT)
    found, score, _ = ranked
    order = list(np.argsort(-score, kind="stable"))
    ranks = [k for k, i in enumerate(order) if contains_gold(found[i].sentence.text, r.golds)]
    first = ranks[0]
    if first == 0:
        return "short-cut"  # the best sentence holds it; the short answer dropped it
    if first < 3:
        return "rank2-3"
    if first < 10:
        return "rank4-10"
    return "rank>10"


def summary(results: Sequence[Result], threshold: float) -> dict[str, dict[str, float]]:
    """Scores per split at `threshold`."""
    out = {}
    for name in ("all", "tune", "check", "off-topic"):
        chosen = [
            x
            for x in results
            if (name == "all" and x.rec.split != "off-topic") or x.rec.split == name
        ]
        if not chosen:
            continue
        n = len(chosen)
        refused = [x.refused or x.confidence < threshold for x in chosen]
        given = [x.words for x, no in zip(chosen, refused, strict=True) if not no]
        out[name] = {
            "n": n,
            "gold": sum(x.gold and not no for x, no in zip(chosen, refused, strict=True)) / n,
            "refused": sum(refused) / n,
            "wrong": sum(x.gold_top5 and no for x, no in zip(chosen, refused, strict=True)) / n,
            "top5": sum(x.gold_top5 for x in chosen) / n,
            "read": sum(x.gold_read for x in chosen) / n,
            "words": statistics.fmean(given) if given else 0.0,
            "median": statistics.median(given) if given else 0.0,
        }
    return out


def show(label: str, results: Sequence[Result], threshold: float) -> None:
    """One line per split."""
    s = summary(results, threshold)
    cells = []
    for name, v in s.items():
        if name == "off-topic":
            cells.append(f"off {v['refused']:.3f}")
        else:
            cells.append(
                f"{name} {v['gold']:.3f} r{v['refused']:.3f} w{v['wrong']:.3f} {v['words']:.0f}w"
            )
    print(f"{label:<28} t={threshold:.2f} | " + " | ".join(cells), flush=True)


def main() -> None:
    """record, or replay the shipped answerer with --why."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("record", "replay"))
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--why", action="store_true")
    parser.add_argument("--clearance", default="internal", help="record: the asking user's")
    parser.add_argument("--recording", default=RECORDING.name, help="the file in --folder")
    args = parser.parse_args()
    if args.what == "record":
        recs = record(args.folder, args.data, args.top_k, args.clearance)
        with (args.folder / args.recording).open("wb") as f:
            pickle.dump([vars(r) for r in recs], f)  # plain dicts: loadable from any module
        print(f"recorded {len(recs)} questions")
        return
    from tenantrag.backends.llm.extractive import ExtractiveLLM

    recs = load(args.folder / args.recording)
    answerer = ExtractiveLLM(embed=question_embedder(args.folder), min_confidence=0.0)
    results = replay(recs, answerer, why=args.why)
    for t in (0.0, answerer.min_confidence, 0.25):
        show("shipped", results, t)
    if args.why:
        for split in ("tune", "check"):
            chosen = [x for x in results if x.rec.split == split]
            counts: dict[str, int] = {}
            for x in chosen:
                if x.why:
                    counts[x.why] = counts.get(x.why, 0) + 1
            print(split, {k: f"{v / len(chosen):.3f}" for k, v in sorted(counts.items())})


if __name__ == "__main__":
    main()
