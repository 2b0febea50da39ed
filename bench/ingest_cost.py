"""What storing sentence vectors costs ingestion: throughput, CPU and bytes, off against on.

The extractive answerer reads each chunk's sentence vectors from the store (migration 0007)
instead of embedding sentences while a question waits. Ingestion pays instead: every sentence
of every chunk is embedded once more, whole. This ingests the same SciFact abstracts into fresh
data folders with `TENANTRAG_EMBEDDING__SENTENCE_VECTORS` off and on (alternating, `--rounds`
times each) and prints documents/s, chunks/s, the process's CPU seconds per document and the
counted bytes per chunk. Run from the project root (`make bench` runs it too):

    .venv/bin/python -m bench.ingest_cost [--docs 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
MODEL_DIR = ROOT / ".cache" / "model"


def ingest_once(docs: int, sentence_vectors: bool) -> dict[str, float]:
    """Ingest the first `docs` SciFact abstracts into a fresh folder; the figures."""
    from tenantrag.backends.store import build_store
    from tenantrag.ingest.bulk import batches, read_documents
    from tenantrag.models import Tenant
    from tenantrag.observability.audit import scrub_record
    from tenantrag.services import build_corpus
    from tenantrag.settings import EmbeddingSettings, Settings

    documents = list(read_documents(SCIFACT / "corpus.jsonl"))[:docs]
    with tempfile.TemporaryDirectory(prefix="ingest-cost-") as folder:
        settings = Settings(  # type: ignore[call-arg]
            data_dir=Path(folder),
            model_dir=MODEL_DIR,
            embedding=EmbeddingSettings(sentence_vectors=sentence_vectors),
            _env_file=None,
        )
        store = build_store(settings, audit_scrub=scrub_record)
        store.open()
        tenant = store.create_tenant(Tenant("bench", storage_quota_bytes=10**12))
        corpus = build_corpus(settings, store, threads=1)
        # The model's first runs, not timed (their bytes are counted below).
        warm = sum(r.chunks for r in corpus.ingestor.ingest(tenant, documents[:2]))
        cpu, wall = time.process_time(), time.perf_counter()
        chunks = 0
        for batch in batches(iter(documents[2:]), 64):
            chunks += sum(r.chunks for r in corpus.ingestor.ingest(tenant, batch))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        used = store.usage("bench").bytes
        store.close()
    n = docs - 2
    return {
        "docs_per_s": n / wall,
        "chunks_per_s": chunks / wall,
        "cpu_ms_per_doc": 1000 * cpu / n,
        "bytes_per_chunk": used / max(chunks + warm, 1),
    }


def main() -> None:
    """Alternate off and on; print the medians and the change."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for name in ("off", "on"):
            runs[name].append(ingest_once(args.docs, name == "on"))
            print(name, json.dumps({k: round(v, 2) for k, v in runs[name][-1].items()}), flush=True)
    result = {
        name: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        for name, rows in runs.items()
    }
    print(f"{'':>6} {'docs/s':>8} {'chunks/s':>9} {'CPU ms/doc':>11} {'bytes/chunk':>12}")
    for name, row in result.items():
        print(
            f"{name:>6} {row['docs_per_s']:8.2f} {row['chunks_per_s']:9.2f}"
            f" {row['cpu_ms_per_doc']:11.1f} {row['bytes_per_chunk']:12.0f}"
        )
    load = os.getloadavg()
    print(f"{args.docs} documents, {args.rounds} rounds; load average {load[0]:.1f}")
    if args.out:
        args.out.write_text(json.dumps({"docs": args.docs, **result, "load": load}, indent=2))


if __name__ == "__main__":
    main()
