"""Index scale: one big tenant (FAISS and Tantivy) and a thousand small ones, on this machine.

Parts (each runs in its own process, so memory figures are its own):

- faiss: one tenant of --chunks synthetic vectors (clustered unit vectors, as embeddings are),
  built through FaissVectorIndex.apply; search p50/p95 and recall@10 against exact search for
  several IVF probe counts; snapshot write and load times.
- tantivy: the same number of synthetic chunks (words drawn with SciFact's word frequencies),
  searched with SciFact claims; build time and search p50/p95. Also a 15k-chunk tenant.
- tenants: 1,000 tenants of --small chunks each in a SQLite store; first query per tenant
  (IndexSync catches both indexes up from the store) and steady queries, and process RSS.

Run from the project root (it takes several minutes and a few GB of memory and disk):

    .venv/bin/python bench/index_scale.py --out /tmp/index_scale
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tenantrag.backends.keyword.tantivy import TantivyKeywordIndex
from tenantrag.backends.store.sqlite import NewDocument, SQLiteStore
from tenantrag.backends.sync import IndexSync
from tenantrag.backends.vector import faiss as faiss_index
from tenantrag.backends.vector.faiss import FaissVectorIndex
from tenantrag.models import Chunk, Classification, Tenant

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
DIMS = 384
R = TypeVar("R")
LEVEL_SHARES = [0.10, 0.70, 0.15, 0.05]  # public, internal, confidential, restricted


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p95 of `samples` (seconds), in milliseconds."""
    ordered = sorted(samples)
    at = {q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 for q in (0.5, 0.95)}
    return {"p50_ms": round(at[0.5], 3), "p95_ms": round(at[0.95], 3)}


def timed(call: Callable[[Any], R], inputs: Sequence[Any]) -> tuple[list[float], list[R]]:
    """The wall time and the result of `call` on each input, in order."""
    seconds, results = [], []
    for item in inputs:
        start = time.perf_counter()
        results.append(call(item))
        seconds.append(time.perf_counter() - start)
    return seconds, results


def rss_mb() -> float:
    """This process's resident memory now, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def clustered(rng: np.random.Generator, centers: np.ndarray, n: int) -> np.ndarray:
    """n unit vectors, each a random center plus noise of about the center's length."""
    noise = rng.standard_normal((n, DIMS), dtype=np.float32) * np.float32(1 / np.sqrt(DIMS))
    vectors = centers[rng.integers(len(centers), size=n)] + noise
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def levels(rng: np.random.Generator, n: int) -> np.ndarray:
    """A classification level per chunk, drawn with LEVEL_SHARES."""
    return rng.choice(len(LEVEL_SHARES), size=n, p=LEVEL_SHARES).astype(np.int8)


def part_faiss(args: argparse.Namespace) -> dict[str, object]:
    """Build one big tenant and measure latency and recall of the approximate index."""
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((2_000, DIMS), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    n, batch = args.chunks, 50_000
    vectors = np.empty((n, DIMS), dtype=np.float32)
    level = levels(rng, n)
    index = FaissVectorIndex(
        args.out / "faiss", dimensions=DIMS, approximate_threshold=args.threshold
    )
    start = time.perf_counter()
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        vectors[lo:hi] = clustered(rng, centers, hi - lo)
        chunks = [
            Chunk(
                "big",
                f"d{r // 10}",
                r % 10,
                "",
                classification=Classification(int(level[r])),
                rowid=r + 1,
            )
            for r in range(lo, hi)
        ]
        index.apply("big", chunks, vectors[lo:hi], replace_documents=[], seq=hi)
    build_s = time.perf_counter() - start
    queries = clustered(rng, centers, args.queries)
    result: dict[str, object] = {
        "exact_15k": exact_small(args.out / "faiss", rng, centers, args.queries),
        "chunks": n,
        "build_s": round(build_s, 1),
        "approximate_levels": [c.label for c in index.approximate_levels("big")],
        "rss_mb": round(rss_mb()),
    }
    for ceiling in (Classification.RESTRICTED, Classification.INTERNAL):
        mask = level <= int(ceiling)
        exact: list[np.ndarray] = []
        for lo in range(0, len(queries), 50):
            scores = vectors @ queries[lo : lo + 50].T
            scores[~mask] = -np.inf
            exact.extend(np.argpartition(-scores, 10, axis=0)[:10].T + 1)
        for label, probes in (("nlist/32", 32), ("nlist/16", 16), ("nlist/8", 8), ("nlist/4", 4)):
            faiss_index.nprobe_for = lambda nlist, d=probes: min(nlist, max(16, nlist // d))  # type: ignore[misc]

            def nearest(query: np.ndarray, ceiling: Classification = ceiling) -> set[int]:
                hits = index.search("big", query, limit=10, max_classification=ceiling)
                return {hit.rowid for hit in hits}

            samples, found = timed(nearest, list(queries))
            recall = np.mean(
                [len(f & set(e.tolist())) / 10 for f, e in zip(found, exact, strict=True)]
            )
            result[f"search_{ceiling.label}_{label}"] = {
                **percentiles(samples),
                "recall_at_10": round(float(recall), 4),
            }
    start = time.perf_counter()
    index.snapshot("big", force=True)
    result["snapshot_write_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    FaissVectorIndex(
        args.out / "faiss", dimensions=DIMS, approximate_threshold=args.threshold
    ).applied_seq("big")
    result["snapshot_load_s"] = round(time.perf_counter() - start, 1)
    return result


def exact_small(
    root: Path, rng: np.random.Generator, centers: np.ndarray, queries: int
) -> dict[str, float]:
    """Search p50/p95 on a 15k-chunk tenant (exact, below the threshold), all levels searched."""
    index = FaissVectorIndex(root, dimensions=DIMS)
    n = 15_000
    level = levels(rng, n)
    chunks = [
        Chunk(
            "small",
            f"d{r // 10}",
            r % 10,
            "",
            classification=Classification(int(level[r])),
            rowid=r + 1,
        )
        for r in range(n)
    ]
    index.apply("small", chunks, clustered(rng, centers, n), replace_documents=[], seq=1)

    def nearest(query: np.ndarray) -> object:
        return index.search("small", query, limit=50, max_classification=Classification.RESTRICTED)

    samples, _ = timed(nearest, list(clustered(rng, centers, queries)))
    return percentiles(samples)


def scifact_words() -> tuple[list[str], np.ndarray, list[str]]:
    """SciFact's vocabulary with word probabilities, and its training claims (the queries)."""
    counts: Counter[str] = Counter()
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            counts.update(
                re.findall(r"[a-z]{2,}", (record["title"] + " " + record["text"]).lower())
            )
    words = [w for w, _ in counts.most_common(30_000)]
    weights = np.array([counts[w] for w in words], dtype=np.float64)
    with (SCIFACT / "queries_train.jsonl").open(encoding="utf-8") as handle:
        claims = [json.loads(line)["text"] for line in handle]
    return words, weights / weights.sum(), claims


def keyword_tenant(
    index: TantivyKeywordIndex, tenant: str, n: int, rng: np.random.Generator
) -> float:
    """Fill `tenant` with n synthetic 120-word chunks; returns the build seconds."""
    words, weights, _ = scifact_words()
    vocabulary = np.array(words)
    level = levels(rng, n)
    start = time.perf_counter()
    for lo in range(0, n, 50_000):
        hi = min(n, lo + 50_000)
        drawn = vocabulary[rng.choice(len(words), size=(hi - lo, 128), p=weights)]
        chunks = [
            Chunk(
                tenant,
                f"d{r // 10}",
                r % 10,
                " ".join(drawn[r - lo, 8:]),
                title=" ".join(drawn[r - lo, :8]),
                classification=Classification(int(level[r])),
                rowid=r + 1,
            )
            for r in range(lo, hi)
        ]
        index.apply(tenant, chunks, replace_documents=[], seq=hi)
    return time.perf_counter() - start


def part_tantivy(args: argparse.Namespace) -> dict[str, object]:
    """Build a big and a 15k-chunk tenant and time searches with SciFact claims."""
    rng = np.random.default_rng(2)
    _, _, claims = scifact_words()
    index = TantivyKeywordIndex(args.out / "tantivy")
    result: dict[str, object] = {}
    for tenant, n in (("small", 15_000), ("big", args.chunks)):
        build_s = keyword_tenant(index, tenant, n, rng)

        def bm25(query: str, tenant: str = tenant) -> object:
            return index.search(
                tenant, query, limit=50, max_classification=Classification.RESTRICTED
            )

        samples, _ = timed(bm25, claims[: args.queries])
        result[tenant] = {"chunks": n, "build_s": round(build_s, 1), **percentiles(samples)}
    result["rss_mb"] = round(rss_mb())
    return result


def part_tenants(args: argparse.Namespace) -> dict[str, object]:
    """1,000 tenants in one store; first and steady query latency through IndexSync, and RSS."""
    rng = np.random.default_rng(3)
    words, weights, claims = scifact_words()
    vocabulary = np.array(words)
    store = SQLiteStore(args.out / "tenants" / "store.db")
    store.open()
    tenants = [f"t{i:04d}" for i in range(args.tenants)]
    start = time.perf_counter()
    for tenant in tenants:
        record = store.create_tenant(Tenant(id=tenant))
        docs = []
        for d in range(args.small // 10):
            drawn = vocabulary[rng.choice(len(words), size=(10, 100), p=weights)]
            chunks = [Chunk(tenant, f"doc{d}", p, " ".join(drawn[p])) for p in range(10)]
            embeddings = rng.standard_normal((10, DIMS), dtype=np.float32)
            docs.append(
                NewDocument(
                    id=f"doc{d}",
                    title=f"doc {d}",
                    chunks=chunks,
                    embeddings=embeddings,
                )
            )
        store.put_documents(record, docs)
    store_s = time.perf_counter() - start
    before = rss_mb()
    keyword = TantivyKeywordIndex(args.out / "tenants" / "indexes", max_open=args.max_open)
    vector = FaissVectorIndex(
        args.out / "tenants" / "indexes", dimensions=DIMS, max_open=args.max_open
    )
    sync = IndexSync(store, keyword, vector, lock_dir=store.path.parent / "locks")
    query_vector = rng.standard_normal(DIMS, dtype=np.float32)

    def query(tenant: str, text: str) -> None:
        sync.ensure_current(tenant)
        keyword.search(tenant, text, limit=50, max_classification=Classification.RESTRICTED)
        vector.search(tenant, query_vector, limit=50, max_classification=Classification.RESTRICTED)

    first, _ = timed(lambda i: query(tenants[i], claims[i % len(claims)]), range(len(tenants)))
    after_first = rss_mb()
    picks = rng.choice(len(tenants), size=2_000).tolist()
    steady, _ = timed(lambda i: query(tenants[i], claims[i % len(claims)]), picks)
    return {
        "tenants": len(tenants),
        "chunks_each": args.small,
        "max_open": args.max_open,
        "store_build_s": round(store_s, 1),
        "first_query": percentiles(first),
        "steady_query_random_tenant": percentiles(steady),
        "rss_mb_before_indexes": round(before),
        "rss_mb_after_all_tenants": round(after_first),
        "rss_mb_end": round(rss_mb()),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


PARTS = {"faiss": part_faiss, "tantivy": part_tantivy, "tenants": part_tenants}


def main() -> None:
    """Run the chosen parts, each in a fresh process, and print one JSON object per part."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all")
    parser.add_argument("--out", type=Path, default=Path("/tmp/index_scale"))
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--small", type=int, default=200, help="chunks per small tenant")
    parser.add_argument("--max-open", type=int, default=256)
    parser.add_argument("--threshold", type=int, default=200_000, help="approximate_threshold")
    args = parser.parse_args()
    if args.part != "all":
        shutil.rmtree(args.out / args.part, ignore_errors=True)
        print(json.dumps({args.part: PARTS[args.part](args)}), flush=True)
        return
    for part in PARTS:
        command = [sys.executable, __file__, *sys.argv[1:], "--part", part]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
