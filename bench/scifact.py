"""BEIR SciFact through the API's code path: ingest it once, then score every retrieval variant.

`prepare` loads corpus.jsonl into tenant `scifact` of a data folder (default
.cache/bench/scifact) the way `tenantrag ingest` does: build_corpus with two onnxruntime threads,
batches of 64 documents through Ingestor.ingest. Every fourth batch's chunk texts are also
embedded by a bare OnnxEmbedder (same batch size and threads) just before that batch is ingested,
so both see the same machine load; the overhead compares those batches only. The READY marker
records the throughputs and the settings that built the folder. A folder whose READY marker
names the same settings is reused; anything else is rebuilt. The folder is left in place for
the load benchmarks.

`eval` runs tenantrag.evaluation.evaluate() for every variant and prints a table; `levers` scores
indexing alternatives (title boost, whole-abstract BM25, first-chunk vectors) on the train split
against the service's own lists. Run from the project root:

    .venv/bin/python bench/scifact.py prepare
    .venv/bin/python bench/scifact.py eval --split train
    .venv/bin/python bench/scifact.py levers --setting zscore:0.5:100:best
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
FOLDER = ROOT / ".cache" / "bench" / "scifact"
MODEL_DIR = ROOT / ".cache" / "models"
TENANT = "scifact"
READY = "READY"
BATCH_DOCS = 64  # the CLI's default --batch-size
THREADS = 2
RAW_EVERY = 4  # the bare embedder runs on every 4th batch: enough to compare, a quarter the time


def settings_for(folder: Path) -> Any:
    """The service's Settings over `folder`; other TENANTRAG_* variables still apply."""
    from tenantrag.settings import Settings

    model_dir = Path(os.environ.get("TENANTRAG_MODEL_DIR", MODEL_DIR))
    return Settings(data_dir=folder, model_dir=model_dir)


def build_key(settings: Any, corpus: Path) -> dict[str, Any]:
    """What decides the stored chunks and vectors: corpus, model and chunking."""
    from tenantrag.ingest import chunking

    overlap = inspect.signature(chunking.chunk_text).parameters["overlap_tokens"].default
    stat = corpus.stat()
    source = (ROOT / "src/tenantrag/ingest/chunking.py").read_bytes()
    return {
        "corpus": str(corpus),
        "corpus_bytes": stat.st_size,
        "model": settings.embedding.model,
        "max_tokens": settings.embedding.max_tokens,
        "overlap_tokens": overlap,
        "chunking_sha256": hashlib.sha256(source).hexdigest()[:16],
    }


def keyword_key() -> dict[str, Any]:
    """What decides the BM25 index built from the stored chunks."""
    from tenantrag.backends.keyword import tantivy as kw

    source = (ROOT / "src/tenantrag/backends/keyword/tantivy.py").read_bytes()
    return {
        "tantivy_sha256": hashlib.sha256(source).hexdigest()[:16],
        "field_boosts": kw.FIELD_BOOSTS,
        "analyzer": kw.ANALYZER,
    }


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The READY marker's content, or None when the folder is not complete."""
    try:
        return dict(json.loads((folder / READY).read_text()))
    except (OSError, ValueError):
        return None


def prepare(
    folder: Path, corpus: Path, *, rebuild: bool, raw_every: int = RAW_EVERY
) -> dict[str, Any]:
    """Ingest `corpus` into tenant `scifact` in `folder` unless a matching READY marker exists."""
    settings = settings_for(folder)
    key = build_key(settings, corpus)
    marker = read_marker(folder)
    if marker is not None and marker.get("build") == key and not rebuild:
        if marker.get("keyword") != keyword_key():
            # Only the BM25 side changed: rebuild it from the stored chunks, no re-embedding.
            from tenantrag.backends.store.sqlite import SQLiteStore
            from tenantrag.services import build_corpus

            store = SQLiteStore(settings.db_path)
            store.open()
            rag = build_corpus(settings, store)
            rag.indexes.keyword.drop(TENANT)
            rag.indexes.sync.ensure_current(TENANT)
            marker["keyword"] = keyword_key()
            marker["keyword_rebuilt_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            (folder / READY).write_text(json.dumps(marker, indent=2) + "\n")
            print(f"rebuilt the BM25 index of {folder}", file=sys.stderr)
        print(f"reusing {folder} (READY, built {marker['built_at']})", file=sys.stderr)
        return marker
    if folder.exists():
        print(f"rebuilding {folder}", file=sys.stderr)
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    result = _ingest(settings, corpus, raw_every)
    marker = {
        "build": key,
        "keyword": keyword_key(),
        "tenant": TENANT,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _git_commit(),
        "threads": THREADS,
        "batch_docs": BATCH_DOCS,
        "raw_every_batches": raw_every,
        "embed_batch_size": settings.embedding.batch_size,
        **result,
    }
    (folder / READY).write_text(json.dumps(marker, indent=2) + "\n")
    return marker


def _ingest(settings: Any, corpus: Path, raw_every: int) -> dict[str, Any]:
    """Ingest with the CLI's code path, timing it against the bare embedder batch by batch."""
    from tenantrag.backends.embedding.onnx import OnnxEmbedder, prepare_model
    from tenantrag.backends.store.sqlite import SQLiteStore
    from tenantrag.ingest.bulk import batches, count_documents, read_documents
    from tenantrag.ingest.chunking import chunk_text, embedding_text
    from tenantrag.models import Tenant
    from tenantrag.services import build_corpus

    store = SQLiteStore(settings.db_path)
    store.open()
    r = settings.retrieval
    tenant = store.create_tenant(
        Tenant(id=TENANT, bm25_weight=r.bm25_weight, vector_weight=r.vector_weight, fusion=r.fusion)
    )
    rag = build_corpus(settings, store, threads=THREADS)
    bare = OnnxEmbedder(
        prepare_model(settings.onnx_dir),
        max_tokens=settings.embedding.max_tokens,
        batch_size=settings.embedding.batch_size,
        threads=THREADS,
    )
    total = count_documents(corpus)
    docs = chunks = raw_chunks = 0
    wall = cpu = raw_wall = raw_cpu = 0.0
    bare.embed(["warm up"])
    rag.embedder.embed(["warm up"])
    sampled_wall = sampled_cpu = 0.0
    for n, batch in enumerate(batches(read_documents(corpus), BATCH_DOCS)):
        sampled = n % raw_every == 0
        if sampled:
            texts = [
                embedding_text(piece, (d.title or "").strip())
                for d in batch
                for piece in chunk_text(
                    d.text.replace("\x00", ""),
                    title=(d.title or "").strip(),
                    count_tokens=bare.count_tokens,
                    max_tokens=settings.embedding.max_tokens,
                )
            ]
            started, cpu_started = time.perf_counter(), time.process_time()
            bare.embed(texts)
            raw_wall += time.perf_counter() - started
            raw_cpu += time.process_time() - cpu_started
            raw_chunks += len(texts)
        started, cpu_started = time.perf_counter(), time.process_time()
        results = rag.ingestor.ingest(tenant, batch)
        took, took_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        wall, cpu = wall + took, cpu + took_cpu
        docs += len(batch)
        chunks += sum(x.chunks for x in results)
        if sampled:
            sampled_wall, sampled_cpu = sampled_wall + took, sampled_cpu + took_cpu
            if sum(x.chunks for x in results) != len(texts):
                raise RuntimeError("the bare pass and ingestion chunked a batch differently")
        print(f"{docs}/{total} docs, {chunks} chunks, {wall:.0f}s", file=sys.stderr, flush=True)
    return {
        "documents": docs,
        "chunks": chunks,
        "ingest_wall_s": round(wall, 1),
        "ingest_cpu_s": round(cpu, 1),
        "ingest_docs_per_s": round(docs / wall, 2),
        "ingest_chunks_per_s": round(chunks / wall, 2),
        "sampled_chunks": raw_chunks,
        "sampled_ingest_wall_s": round(sampled_wall, 1),
        "sampled_ingest_cpu_s": round(sampled_cpu, 1),
        "raw_embed_wall_s": round(raw_wall, 1),
        "raw_embed_cpu_s": round(raw_cpu, 1),
        "raw_chunks_per_s": round(raw_chunks / raw_wall, 2),
        "sampled_ingest_chunks_per_s": round(raw_chunks / sampled_wall, 2),
        "overhead_wall": round(sampled_wall / raw_wall - 1, 4),
        "overhead_cpu": round(sampled_cpu / raw_cpu - 1, 4),
    }


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip()
    except OSError:
        return "unknown"


def open_tenant(folder: Path) -> tuple[Any, Any, Any]:
    """(settings, rag, tenant) over a prepared folder; exits when it is not complete."""
    from tenantrag.backends.store.sqlite import SQLiteStore
    from tenantrag.services import build_corpus

    if read_marker(folder) is None:
        sys.exit(f"{folder} is not prepared: run `bench/scifact.py prepare` first")
    settings = settings_for(folder)
    store = SQLiteStore(settings.db_path)
    store.open()
    tenant = store.get_tenant(TENANT)
    return settings, build_corpus(settings, store), tenant


def run_eval(folder: Path, split: str, weights: tuple[float, float] | None) -> None:
    """Print evaluate()'s table for every mode and fusion on the tenant's (or given) weights."""
    from tenantrag.backends.embedding import build_query_embedder
    from tenantrag.evaluation import evaluate, load_qrels, load_queries

    settings, rag, tenant = open_tenant(folder)
    if weights is not None:
        tenant = dataclasses.replace(tenant, bm25_weight=weights[0], vector_weight=weights[1])
    queries, qrels = load_queries(SCIFACT, split), load_qrels(SCIFACT, split)
    # questions as the service embeds them: TENANTRAG_EMBEDDING__QUERY_PRECISION=int8 measures
    # the int8 query model against the same fp32 documents
    questions = build_query_embedder(
        settings.embedding, model_dir=settings.onnx_dir, documents=rag.embedder
    )
    started = time.perf_counter()
    results = evaluate(rag.retriever, tenant, queries, qrels, lambda t: questions.embed([t])[0])
    print(
        f"SciFact {split} split, weights bm25={tenant.bm25_weight} vector={tenant.vector_weight},"
        f" candidates={settings.retrieval.candidates}, questions by {questions.model_name}"
        f" ({time.perf_counter() - started:.0f}s)"
    )
    print(f"| {'variant':<14} | nDCG@10 | R@100  | P@5    | S@5    | MRR@10 | n   |")
    print("|----------------|---------|--------|--------|--------|--------|-----|")
    for name, s in results.items():
        print(
            f"| {name:<14} | {s.ndcg_at_10:.4f}  | {s.recall_at_100:.4f} | {s.p_at_5:.4f} |"
            f" {s.success_at_5:.4f} | {s.mrr_at_10:.4f} | {s.queries} |"
        )


def run_levers(folder: Path, settings: list[str]) -> None:
    """Indexing levers against the service's own lists, train split: title boost in BM25,
    BM25 over whole abstracts instead of chunks, and vectors of first chunks only (what
    embedding each abstract truncated at 256 word pieces gives), at the given fusion settings.
    """
    import tempfile

    import fusion_sweep as fs

    from tenantrag.backends.keyword import tantivy as kw
    from tenantrag.evaluation import load_qrels, load_queries, ndcg, score_run
    from tenantrag.ingest.bulk import read_documents
    from tenantrag.models import Chunk, Classification

    _, rag, tenant = open_tenant(folder)
    qrels = load_qrels(SCIFACT, "train")
    queries = {q: t for q, t in load_queries(SCIFACT, "train").items() if q in qrels}
    vectors = {q: rag.embedder.embed([t])[0] for q, t in queries.items()}
    depth, top = max(fs.DEPTHS), Classification.RESTRICTED
    base = fs.gather(rag, TENANT, queries, vectors, depth)
    doc_of: dict[int, str] = {}
    first: set[int] = set()
    for chunks, _ in rag.retriever.store.iter_chunks(TENANT):
        doc_of.update((c.rowid, c.document_id) for c in chunks)
        first.update(c.rowid for c in chunks if c.position == 0)
    service = dict(kw.FIELD_BOOSTS)
    variants = {f"service: chunks, title boost {service['title']:g}": base}
    for boost in sorted({0.25, 0.5, 1.0, 2.0, 3.0} - {service["title"]}):
        kw.FIELD_BOOSTS = {"title": boost}  # _user_query reads it at query time
        variants[f"title boost {boost:g}"] = {
            q: (
                rag.indexes.keyword.search(TENANT, t, limit=depth, max_classification=top),
                base[q][1],
            )
            for q, t in queries.items()
        }
    kw.FIELD_BOOSTS = service
    variants["vectors of first chunks only"] = {
        q: (
            base[q][0],
            [
                h
                for h in rag.indexes.vector.search(
                    TENANT, vectors[q], limit=len(doc_of), max_classification=top
                )
                if h.rowid in first
            ][:depth],
        )
        for q in queries
    }
    offset = max(doc_of) + 1  # whole abstracts get rowids past every chunk's
    with tempfile.TemporaryDirectory() as tmp:
        whole = kw.TantivyKeywordIndex(Path(tmp))
        docs = list(read_documents(SCIFACT / "corpus.jsonl"))
        rows = [
            Chunk(TENANT, d.id or "", 0, " ".join(d.text.split()), d.title or "", rowid=offset + i)
            for i, d in enumerate(docs)
        ]
        doc_of.update((c.rowid, c.document_id) for c in rows)
        whole.apply(TENANT, rows, replace_documents=[], seq=1)
        for boost in sorted({service["title"], 0.5, 1.0}):
            kw.FIELD_BOOSTS = {"title": boost}
            variants[f"BM25 over whole abstracts, title boost {boost:g}"] = {
                q: (whole.search(TENANT, t, limit=depth, max_classification=top), base[q][1])
                for q, t in queries.items()
            }
        kw.FIELD_BOOSTS = service
    parts = fs.fold_ids(queries)
    print("| variant | setting | nDCG@10 | fold min | fold max | R@100 | MRR@10 |")
    print("|---|---|---|---|---|---|---|")
    for name, lists in variants.items():
        named = [(f"bm25 N={depth // 2}", fs.single_mode(lists, doc_of, 0, depth // 2))]
        named.append((f"vector N={depth // 2}", fs.single_mode(lists, doc_of, 1, depth // 2)))
        for text in settings:
            method, weight, n, agg = text.split(":")
            setting = fs.Setting(method, float(weight), int(n), agg)
            named.append((setting.label(), fs.run_setting(lists, doc_of, setting)))
        for label, runs in named:
            sc = score_run(runs, qrels)
            per = [statistics.fmean(ndcg(runs[q], qrels[q]) for q in part) for part in parts]
            print(
                f"| {name} | {label} | {sc.ndcg_at_10:.4f} | {min(per):.4f} | {max(per):.4f} |"
                f" {sc.recall_at_100:.4f} | {sc.mrr_at_10:.4f} |"
            )


def main() -> None:
    """Parse the command line and run `prepare`, `eval` or `levers`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=FOLDER)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="ingest the corpus (reused when READY)")
    prep.add_argument("--corpus", type=Path, default=SCIFACT / "corpus.jsonl")
    prep.add_argument("--rebuild", action="store_true")
    prep.add_argument("--raw-every", type=int, default=RAW_EVERY, help="bare-embedder batches")
    ev = sub.add_parser("eval", help="score every variant")
    ev.add_argument("--split", default="train")
    ev.add_argument("--weights", type=float, nargs=2, metavar=("BM25", "VECTOR"))
    lev = sub.add_parser("levers", help="indexing levers on the train split")
    lev.add_argument(
        "--setting", action="append", help="method:bm25_weight:N:agg, e.g. zscore:0.5:100:best"
    )
    args = parser.parse_args()
    if args.command == "prepare":
        marker = prepare(args.folder, args.corpus, rebuild=args.rebuild, raw_every=args.raw_every)
        print(json.dumps(marker, indent=2))
    elif args.command == "levers":
        run_levers(args.folder, args.setting or ["zscore:0.5:100:best", "zscore:0.5:100:doc"])
    else:
        run_eval(args.folder, args.split, tuple(args.weights) if args.weights else None)


if __name__ == "__main__":
    main()
