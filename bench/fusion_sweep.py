"""Fusion sweep on SciFact's train split: normalisation x BM25 weight x candidates x aggregation.

Each judged query's BM25 and vector candidate lists are fetched once from the tenant's own
indexes (at the deepest N), then every setting is fused with pipeline.fuse's normalisers and
ranked by document as Retriever.retrieve does, vectorised over the weights. `--check` first
confirms that the replay ranks every query as Retriever.retrieve does, and that the vectorised
path ranks as a plain fuse() call does on sampled settings. Documents are ranked by their best
chunk (the service), by the best chunk plus a share of the second's margin, or by fusing lists
already reduced to documents (see AGGS).

All figures are on the train split, which is also what the settings are tuned on. The 5-fold
report tunes on four fifths of the queries and scores the chosen setting on the fifth left out,
so the chosen setting's generalisation shows. Run from the project root after
`bench/scifact.py prepare`:

    .venv/bin/python bench/fusion_sweep.py --check
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scifact import FOLDER, ROOT, SCIFACT, open_tenant

from tenantrag.evaluation import Scores, load_qrels, load_queries, ndcg, score_run
from tenantrag.models import Classification, IndexHit, Principal
from tenantrag.retrieval import SearchParams
from tenantrag.retrieval.fusion import NORMALISERS, RRF_K, fuse
from tenantrag.services import Corpus

METHODS = ("zscore", "minmax", "rrf")
WEIGHTS = tuple(round(w / 10, 1) for w in range(11))
DEPTHS = (50, 100, 200)
# "best": each document by its best fused chunk (the service); "best+b": plus b x the second
# chunk's margin over the lowest fused score; "doc": each list reduced to documents (best chunk
# per document) before fusion, so one document's BM25 and vector evidence add up.
AGGS = ("best", "best+0.1", "best+0.2", "best+0.3", "doc")
FOLDS = 5
SEED = 20261126
RESULTS = ROOT / "bench" / "results"

Lists = dict[str, tuple[list[IndexHit], list[IndexHit]]]


@dataclass(frozen=True, slots=True, order=True)
class Setting:
    """One point of the sweep."""

    method: str
    bm25_weight: float
    candidates: int
    agg: str = "best"

    def label(self) -> str:
        """A short name such as `zscore 0.3/0.7 N=100 best`."""
        w = self.bm25_weight
        return f"{self.method} {w:.1f}/{1 - w:.1f} N={self.candidates} {self.agg}"


def gather(
    rag: Corpus,
    tenant_id: str,
    queries: Mapping[str, str],
    vectors: Mapping[str, object],
    depth: int,
) -> Lists:
    """Each query's BM25 and vector candidates from the tenant's indexes, `depth` deep."""
    top = Classification.RESTRICTED
    rag.indexes.sync.ensure_current(tenant_id)
    out: Lists = {}
    for q, text in queries.items():
        lexical = rag.indexes.keyword.search(tenant_id, text, limit=depth, max_classification=top)
        semantic = rag.indexes.vector.search(
            tenant_id, vectors[q], limit=depth, max_classification=top
        )
        out[q] = (lexical, semantic)
    return out


def rank_documents(
    fused: Sequence[tuple[int, float]], doc_of: Mapping[int, str], beta: float
) -> list[str]:
    """Documents best first: by best chunk, plus `beta` x the second chunk's margin when set."""
    if beta == 0:
        return list(dict.fromkeys(doc_of[r] for r, _ in fused))
    floor = min((s for _, s in fused), default=0.0)
    best: dict[str, list[float]] = {}
    for rowid, score in fused:
        scores = best.setdefault(doc_of[rowid], [])
        if len(scores) < 2:
            scores.append(score)
    combined = {d: s[0] + beta * ((s[1] if len(s) > 1 else floor) - floor) for d, s in best.items()}
    return sorted(combined, key=lambda d: -combined[d])


def per_document(
    hits: Sequence[IndexHit], doc_of: Mapping[int, str], ids: dict[str, int]
) -> list[IndexHit]:
    """`hits` reduced to each document's best chunk, the document numbered by `ids`."""
    out = {}
    for h in hits:
        doc = ids.setdefault(doc_of[h.rowid], len(ids))
        if doc not in out:
            out[doc] = IndexHit(doc, h.score)
    return list(out.values())


def run_setting(lists: Lists, doc_of: Mapping[int, str], s: Setting) -> dict[str, list[str]]:
    """Each query's document ranking under setting `s` ("best": as the Retriever ranks)."""
    runs = {}
    vector_weight = round(1 - s.bm25_weight, 1)
    for q, (lexical, semantic) in lists.items():
        lexical, semantic = lexical[: s.candidates], semantic[: s.candidates]
        if s.agg == "doc":
            ids: dict[str, int] = {}
            lexical, semantic = (
                per_document(lexical, doc_of, ids),
                per_document(semantic, doc_of, ids),
            )
            names = {i: d for d, i in ids.items()}
            fused = fuse(
                lexical,
                semantic,
                bm25_weight=s.bm25_weight,
                vector_weight=vector_weight,
                method=s.method,
            )
            runs[q] = [names[f.rowid] for f in fused]
            continue
        fused = fuse(
            lexical,
            semantic,
            bm25_weight=s.bm25_weight,
            vector_weight=vector_weight,
            method=s.method,
            limit=s.candidates,
        )
        beta = float(s.agg.partition("+")[2] or 0)
        runs[q] = rank_documents([(f.rowid, f.score) for f in fused], doc_of, beta)
    return runs


def components(
    lexical: Sequence[IndexHit], semantic: Sequence[IndexHit], method: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids and each list's per-id term (normalised score or RRF, floors filled) as fuse() uses."""
    ids = np.array(list(dict.fromkeys([h.rowid for h in lexical] + [h.rowid for h in semantic])))
    terms = []
    for hits in (lexical, semantic):
        if method == "rrf":
            ranks = {h.rowid: 1.0 / (RRF_K + r) for r, h in enumerate(hits, start=1)}
            terms.append(np.array([ranks.get(int(i), 0.0) for i in ids]))
            continue
        scores = NORMALISERS[method]([h.score for h in hits])
        normed = dict(zip((h.rowid for h in hits), scores, strict=True))
        floor = min(normed.values(), default=0.0)
        terms.append(np.array([normed.get(int(i), floor) for i in ids]))
    return ids, terms[0], terms[1]


def fast_runs(
    lists: Lists, doc_of: Mapping[int, str], method: str, n: int, agg: str
) -> dict[float, dict[str, list[str]]]:
    """run_setting for every BM25 weight at once, vectorised; `check` compares the two."""
    beta = float(agg.partition("+")[2] or 0)
    runs: dict[float, dict[str, list[str]]] = {w: {} for w in WEIGHTS}
    for q, (lexical, semantic) in lists.items():
        lexical, semantic = lexical[:n], semantic[:n]
        if agg == "doc":
            names: dict[str, int] = {}
            lexical, semantic = (
                per_document(lexical, doc_of, names),
                per_document(semantic, doc_of, names),
            )
            docs_of_ids = None
        ids, b, v = components(lexical, semantic, method)
        if agg != "doc":
            docs_of_ids = np.array([doc_of[int(i)] for i in ids], dtype=object)
        for w in WEIGHTS:
            combined = w * b + round(1 - w, 1) * v
            order = np.lexsort((ids, -combined))
            if docs_of_ids is None:  # ids are documents already
                inverse = {i: d for d, i in names.items()}
                runs[w][q] = [inverse[int(i)] for i in ids[order]]
                continue
            order = order[:n]
            docs, scores = docs_of_ids[order], combined[order]
            _, first = np.unique(docs, return_index=True)
            first.sort()
            if beta == 0:
                runs[w][q] = docs[first].tolist()
                continue
            floor = scores.min()
            rest = np.setdiff1d(np.arange(len(docs)), first)
            # Reversed, so that the first of a document's remaining chunks is the one kept.
            second = dict(zip(docs[rest][::-1], scores[rest][::-1], strict=True))
            total = np.array(
                [scores[i] + beta * (second.get(docs[i], floor) - floor) for i in first]
            )
            runs[w][q] = docs[first[np.lexsort((first, -total))]].tolist()
    return runs


def single_mode(
    lists: Lists, doc_of: Mapping[int, str], which: int, n: int
) -> dict[str, list[str]]:
    """Rankings from one retriever alone (0: BM25, 1: vector), `n` candidates deep."""
    return {
        q: list(dict.fromkeys(doc_of[h.rowid] for h in pair[which][:n]))
        for q, pair in lists.items()
    }


def check(
    rag: Corpus,
    tenant: object,
    lists: Lists,
    doc_of: Mapping[int, str],
    queries: Mapping[str, str],
    vectors: Mapping[str, object],
) -> int:
    """How many queries the replay ranks differently from Retriever.retrieve (N=100, tenant's)."""
    admin = Principal(tenant.id, "eval", frozenset({"query"}), Classification.RESTRICTED)  # type: ignore[attr-defined]
    s = Setting(tenant.fusion, tenant.bm25_weight, rag.retriever.candidates)
    replay = run_setting(lists, doc_of, s)
    differ = 0
    for q, text in queries.items():
        params = SearchParams(query=text, top_k=100, mode="hybrid", dedupe_documents=True)
        hits = rag.retriever.retrieve(tenant, admin, params, vectors[q])
        differ += [h.chunk.document_id for h in hits] != replay[q][:100]
    return differ


def fold_ids(qids: Iterable[str]) -> list[list[str]]:
    """The query ids in FOLDS folds, shuffled with a fixed seed."""
    order = sorted(qids)
    random.Random(SEED).shuffle(order)
    return [order[k::FOLDS] for k in range(FOLDS)]


def folds(
    per_query: Mapping[Setting, Mapping[str, float]], qids: Sequence[str], default: Setting
) -> list[dict[str, object]]:
    """Tune on four folds, score on the fifth: the chosen setting and its held-out nDCG@10."""
    rows = []
    for k, fold in enumerate(fold_ids(qids)):
        held = set(fold)
        tune = [q for q in qids if q not in held]
        best = max(
            per_query, key=lambda s: (statistics.fmean(per_query[s][q] for q in tune), s == default)
        )
        rows.append(
            {
                "fold": k + 1,
                "chosen": best.label(),
                "tune_ndcg": statistics.fmean(per_query[best][q] for q in tune),
                "held_ndcg": statistics.fmean(per_query[best][q] for q in held),
                "held_default": statistics.fmean(per_query[default][q] for q in held),
            }
        )
    return rows


def table(rows: Iterable[tuple[str, Scores]]) -> str:
    """A markdown table of scores."""
    lines = ["| setting | nDCG@10 | R@100 | P@5 | S@5 | MRR@10 |", "|---|---|---|---|---|---|"]
    for name, s in rows:
        lines.append(
            f"| {name} | {s.ndcg_at_10:.4f} | {s.recall_at_100:.4f} | {s.p_at_5:.4f} |"
            f" {s.success_at_5:.4f} | {s.mrr_at_10:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Gather candidates, check the replay, sweep, report the grid and the folds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--check", action="store_true", help="compare the replay to Retriever")
    args = parser.parse_args()
    _, rag, tenant = open_tenant(args.folder)
    qrels = load_qrels(SCIFACT, "train")
    queries = {q: t for q, t in load_queries(SCIFACT, "train").items() if q in qrels}
    started = time.perf_counter()
    vectors = {q: rag.embedder.embed([t])[0] for q, t in queries.items()}
    lists = gather(rag, tenant.id, queries, vectors, max(DEPTHS))
    rowids = {h.rowid for pair in lists.values() for hits in pair for h in hits}
    doc_of = {r: c.document_id for r, c in rag.retriever.store.fetch_chunks(sorted(rowids)).items()}
    print(
        f"{len(queries)} judged train queries, candidates in {time.perf_counter() - started:.0f}s"
    )
    if args.check:
        differ = check(rag, tenant, lists, doc_of, queries, vectors)
        print(f"replay vs Retriever.retrieve: {differ} of {len(queries)} rankings differ")
        samples = [
            ("zscore", 0.5, 100, "best"),
            ("minmax", 0.2, 50, "best+0.2"),
            ("rrf", 0.7, 200, "doc"),
            ("zscore", 0.3, 200, "doc"),
            ("minmax", 1.0, 100, "best"),
            ("rrf", 0.0, 50, "best+0.1"),
        ]
        for m, w, n, agg in samples:
            slow = run_setting(lists, doc_of, Setting(m, w, n, agg))
            quick = fast_runs(lists, doc_of, m, n, agg)[w]
            differ += sum(slow[q] != quick[q] for q in queries)
        print(f"vectorised sweep vs fuse(): {differ} rankings differ over {len(samples)} settings")
        if differ:
            sys.exit(1)
    grid = [Setting(m, w, n, b) for m, w, n, b in itertools.product(METHODS, WEIGHTS, DEPTHS, AGGS)]
    scores: dict[Setting, Scores] = {}
    per_query: dict[Setting, dict[str, float]] = {}
    for m, n, agg in itertools.product(METHODS, DEPTHS, AGGS):
        for w, runs in fast_runs(lists, doc_of, m, n, agg).items():
            scores[Setting(m, w, n, agg)] = score_run(runs, qrels)
            per_query[Setting(m, w, n, agg)] = {q: ndcg(r, qrels[q]) for q, r in runs.items()}
    default = Setting(tenant.fusion, tenant.bm25_weight, rag.retriever.candidates)
    ranked = sorted(grid, key=lambda s: -scores[s].ndcg_at_10)
    print(f"\nSweep ({len(grid)} settings, train split), best 15 by nDCG@10:\n")
    print(table((s.label(), scores[s]) for s in ranked[:15]))
    print("\nBest per normalisation and N (best chunk only), train split:\n")
    best_rows = []
    for m, n in itertools.product(METHODS, DEPTHS):
        cell = [s for s in grid if s.method == m and s.candidates == n and s.agg == "best"]
        best_rows.append(max(cell, key=lambda s: scores[s].ndcg_at_10))
    print(table((s.label(), scores[s]) for s in best_rows))
    print("\nnDCG@10 by BM25 weight (N=100, best chunk), train split:\n")
    print("| bm25 weight | " + " | ".join(METHODS) + " |\n|---|---|---|---|")
    for w in WEIGHTS:
        row = [scores[Setting(m, w, 100)].ndcg_at_10 for m in METHODS]
        print(f"| {w:.1f} | " + " | ".join(f"{x:.4f}" for x in row) + " |")
    print("\nSingle retrievers (train split):\n")
    print(
        table(
            [
                (f"{name} N={n}", score_run(single_mode(lists, doc_of, i, n), qrels))
                for i, name in enumerate(("bm25", "vector"))
                for n in DEPTHS
            ]
        )
    )
    rows = folds(per_query, list(queries), default)
    print(f"\n{FOLDS}-fold split of the train queries (tune on 4/5, score on 1/5):\n")
    print("| fold | chosen on 4/5 | nDCG@10 on 4/5 | nDCG@10 on 1/5 | default on 1/5 |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['fold']} | {r['chosen']} | {r['tune_ndcg']:.4f} | {r['held_ndcg']:.4f} |"
            f" {r['held_default']:.4f} |"
        )
    print(
        f"| mean | | | {statistics.fmean(r['held_ndcg'] for r in rows):.4f} |"  # type: ignore[misc]
        f" {statistics.fmean(r['held_default'] for r in rows):.4f} |"
    )  # type: ignore[misc]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {s.label(): vars_of(scores[s]) for s in grid}
    (RESULTS / "fusion_sweep.json").write_text(json.dumps({"grid": out, "folds": rows}, indent=1))


def vars_of(s: Scores) -> dict[str, float]:
    """A Scores as a plain dict."""
    return {k: getattr(s, k) for k in Scores.__slots__}  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
