"""Retrieval quality on a BEIR-style dataset, per mode, through the same Retriever as the API.

Ranking is by document: each document scores its best chunk (the API's `dedupe_documents`).
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tenantrag.models import Classification, Principal, Tenant
from tenantrag.retrieval import Retriever, SearchParams

Embed = Callable[[str], object]


@dataclass(frozen=True, slots=True)
class Scores:
    """Mean quality over a query set."""

    ndcg_at_10: float
    recall_at_100: float
    p_at_5: float
    success_at_5: float
    mrr_at_10: float
    queries: int


def load_queries(folder: Path, split: str) -> dict[str, str]:
    """Query id -> text, from queries_<split>.jsonl or queries.jsonl."""
    path = folder / f"queries_{split}.jsonl"
    if not path.exists():
        path = folder / "queries.jsonl"
    with path.open() as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return {str(r["_id"]): str(r["text"]) for r in rows}


def load_qrels(folder: Path, split: str) -> dict[str, dict[str, int]]:
    """Query id -> {document id: relevance}, from qrels/<split>.tsv (BEIR format)."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with (folder / "qrels" / f"{split}.tsv").open() as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if int(row["score"]) > 0:
                qrels[row["query-id"]][row["corpus-id"]] = int(row["score"])
    return dict(qrels)


def ndcg(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain at k (graded relevance, log2 discount)."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def score_run(runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]) -> Scores:
    """Mean nDCG@10, Recall@100, P@5, Success@5 and MRR@10 over the judged queries."""
    judged = [q for q in runs if qrels.get(q)]
    if not judged:
        return Scores(0, 0, 0, 0, 0, 0)
    totals: defaultdict[str, float] = defaultdict(float)
    for q in judged:
        ranked, rel = runs[q], qrels[q]
        hits5 = sum(1 for d in ranked[:5] if d in rel)
        totals["ndcg"] += ndcg(ranked, rel)
        totals["recall"] += sum(1 for d in ranked[:100] if d in rel) / len(rel)
        totals["p5"] += hits5 / 5
        totals["s5"] += 1.0 if hits5 else 0.0
        first = next((i for i, d in enumerate(ranked[:10], start=1) if d in rel), None)
        totals["mrr"] += 1 / first if first else 0.0
    n = len(judged)
    return Scores(
        totals["ndcg"] / n,
        totals["recall"] / n,
        totals["p5"] / n,
        totals["s5"] / n,
        totals["mrr"] / n,
        n,
    )


def evaluate(
    retriever: Retriever,
    tenant: Tenant,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    embed: Callable[[str], object],
    *,
    variants: Iterable[tuple[str, str | None]] = (
        ("bm25", None),
        ("vector", None),
        ("hybrid", "zscore"),
        ("hybrid", "minmax"),
        ("hybrid", "rrf"),
    ),
) -> dict[str, Scores]:
    """Scores per variant ("bm25", "vector", "hybrid/zscore", ...) for the judged queries."""
    admin = Principal(tenant.id, "eval", frozenset({"query"}), Classification.RESTRICTED)
    judged = {q: t for q, t in queries.items() if q in qrels}
    vectors = {q: embed(t) for q, t in judged.items()}
    out: dict[str, Scores] = {}
    for mode, fusion in variants:
        runs: dict[str, list[str]] = {}
        for q, text in judged.items():
            params = SearchParams(
                query=text, top_k=100, mode=mode, dedupe_documents=True, fusion=fusion
            )
            hits = retriever.retrieve(tenant, admin, params, vectors[q])  # type: ignore[arg-type]
            runs[q] = [h.chunk.document_id for h in hits]
        name = mode if fusion is None else f"{mode}/{fusion}"
        out[name] = score_run(runs, qrels)
    return out
