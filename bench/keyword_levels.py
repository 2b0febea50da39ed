"""What the per-level Tantivy indexes cost: disk and write time against one index for all levels.

The chunks are SciFact's as the service stores them (10,287 chunks from `bench/scifact.py
prepare`, read from .cache/bench/scifact), or, when that folder is absent, each abstract of
../shared/data/scifact/corpus.jsonl as one chunk. Each scenario gives the chunks
classifications drawn with a fixed seed from a distribution, applies them to a fresh
TantivyKeywordIndex in batches of 64 documents (as ingestion does), and reports the bytes of
each level folder and the apply time. The baseline is the same chunks, batches and
documents all at one level: one index, which is what the single index of older versions held.
Times on a shared machine are indicative only; the disk figures are exact. Run:

    .venv/bin/python bench/keyword_levels.py [--json bench/results/keyword_levels.json]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / ".cache" / "bench" / "scifact" / "tenantrag.db"
CORPUS = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
TENANT = "scifact"
BATCH_DOCUMENTS = 64
SCENARIOS: dict[str, tuple[float, float, float, float]] = {
    # share of public, internal, confidential, restricted documents
    "one level (all internal, the default)": (0.0, 1.0, 0.0, 0.0),
    "typical mix 10/70/15/5": (0.10, 0.70, 0.15, 0.05),
    "even 25/25/25/25": (0.25, 0.25, 0.25, 0.25),
    "worst: 94% public, 2% each above": (0.94, 0.02, 0.02, 0.02),
}


def load_chunks() -> list[Any]:
    """SciFact's chunks from the prepared store, else one chunk per abstract."""
    from tenantrag.models import Chunk

    if STORE.exists():
        from tenantrag.backends.store.sqlite import SQLiteStore

        store = SQLiteStore(STORE)
        store.open()
        documents, _ = store.changed_documents(TENANT, 0)
        chunks, _ = store.chunks_of_documents(TENANT, documents)
        store.close()
        print(f"{len(chunks)} chunks of {len(documents)} documents from {STORE}")
        return list(chunks)
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    print(f"{len(rows)} abstracts from {CORPUS}, one chunk each")
    return [
        Chunk(TENANT, str(r["_id"]), 0, r["text"], title=r.get("title", ""), rowid=i + 1)
        for i, r in enumerate(rows)
    ]


def classify(chunks: list[Any], shares: tuple[float, ...], seed: int = 7) -> list[Any]:
    """The chunks with each document's classification drawn from `shares`."""
    from tenantrag.models import Classification

    rng = random.Random(seed)  # noqa: S311  # a reproducible draw, not a secret
    levels: dict[str, Classification] = {}
    out = []
    for chunk in chunks:
        if chunk.document_id not in levels:
            levels[chunk.document_id] = Classification(rng.choices(range(4), weights=shares)[0])
        out.append(replace(chunk, classification=levels[chunk.document_id]))
    return out


def run(chunks: list[Any]) -> dict[str, Any]:
    """Apply `chunks` in document batches to a fresh index; bytes per level and seconds."""
    from tenantrag.backends.keyword.tantivy import TantivyKeywordIndex

    folder = Path(tempfile.mkdtemp(prefix="keyword-levels-"))
    try:
        index = TantivyKeywordIndex(folder)
        by_document: dict[str, list[Any]] = {}
        for chunk in chunks:
            by_document.setdefault(chunk.document_id, []).append(chunk)
        documents = list(by_document)
        started = time.perf_counter()
        for seq, start in enumerate(range(0, len(documents), BATCH_DOCUMENTS), start=1):
            part = documents[start : start + BATCH_DOCUMENTS]
            batch = [c for d in part for c in by_document[d]]
            index.apply(TENANT, batch, replace_documents=part, seq=seq)
        took = time.perf_counter() - started
        levels = folder / TENANT / "bm25-levels"
        sizes = {
            p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            for p in sorted(levels.iterdir())
            if p.is_dir()
        }
        return {"seconds": round(took, 2), "bytes": sizes, "total_bytes": sum(sizes.values())}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    """Every scenario against the one-index baseline; a table, and JSON if asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    chunks = load_chunks()
    baseline = run(classify(chunks, (0.0, 0.0, 0.0, 1.0)))
    print(f"baseline (one index): {baseline['total_bytes'] / 1e6:.1f} MB, {baseline['seconds']} s")
    print(
        "| scenario | level folders (MB: public/internal/confidential/restricted) | disk × | "
        "writes × (chunk copies) | apply time × |"
    )
    print("|---|---|---|---|---|")
    results: dict[str, Any] = {"baseline": baseline, "scenarios": {}}
    for name, shares in SCENARIOS.items():
        labelled = classify(chunks, shares)
        measured = run(labelled)
        present = {int(level) for level in measured["bytes"]}
        copies = sum(
            sum(1 for level in present if level >= c.classification) for c in labelled
        )  # each chunk is written to every materialized level at or above its own
        ratio_disk = measured["total_bytes"] / baseline["total_bytes"]
        ratio_time = measured["seconds"] / baseline["seconds"]
        sizes = "/".join(
            f"{measured['bytes'].get(str(lv), 0) / 1e6:.1f}"
            if str(lv) in measured["bytes"]
            else "-"
            for lv in range(4)
        )
        print(
            f"| {name} | {sizes} | {ratio_disk:.2f} | {copies / len(labelled):.2f} | "
            f"{ratio_time:.2f} |"
        )
        results["scenarios"][name] = measured | {
            "disk_ratio": round(ratio_disk, 3),
            "chunk_writes_per_chunk": round(copies / len(labelled), 3),
            "time_ratio": round(ratio_time, 3),
        }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
