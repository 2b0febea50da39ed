"""Where a request's time goes: py-spy samples of one worker under 8-client load, by component.

Starts `tenantrag serve --workers 1` over a copy of the SciFact data folder (as
bench/load_matrix.py does), warms it up, drives it with bench/load.py in a separate process
(8 clients, distinct claims) and records the server with py-spy for `--duration` seconds.
Each sample is put in the first component (in COMPONENTS order) with a frame on its stack,
so time the audit log spends in json.dumps counts as audit, not JSON. Samples of threads
waiting (a worker thread idle on its queue, the event loop in select) are shown apart. With
`--gil`, only samples holding the GIL count: Python CPU time, which leaves out onnxruntime
and FAISS (they release the GIL). Run from the project root:

    .venv/bin/python -m bench.profile_hot_path --endpoint search --duration 20
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
from bench.load_matrix import copy_data, flush_redis, server

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / ".cache" / "bench" / "scifact"
PY_SPY = ROOT / ".venv" / "bin" / "py-spy"

WAITING = "waiting (idle threads, event loop in select)"
# Leaf frames of a thread that waits: a lock or queue, the event loop's select, a sleep.
IDLE_LEAVES = (
    "threading.py:",
    "Runner.run (asyncio/runners.py",
    "queue.py:",
    "_worker (concurrent",
    "_sync_loop (tenantrag",
    "CostRecorder._run (tenantrag",
    "base_events.py",
)
# (component, substrings of a frame that place a sample there); the first match wins.
COMPONENTS: list[tuple[str, tuple[str, ...]]] = [
    ("embedding (onnxruntime)", ("OnnxEmbedder", "onnxruntime")),
    ("keyword index (tantivy)", ("TantivyKeywordIndex", "tantivy.py")),
    ("vector index (faiss)", ("FaissVectorIndex", "faiss/")),
    ("index sync check", ("IndexSync",)),
    ("SQLite store (chunks, tenant, seq)", ("SQLiteStore",)),
    ("cost recorder and ledger", ("CostRecorder", "SQLiteLedger", "metering.py")),
    ("audit log", ("AuditLog", "observability/audit.py", "audit_event", "audit_query")),
    ("fusion", ("retrieval/fusion.py",)),
    ("governance (PII, injection)", ("governance/",)),
    (
        "answer generation (extractive)",
        ("backends/llm/", "pipeline/generate.py", "pipeline/postprocess.py"),
    ),
    (
        "answer cache and rate limit (Redis)",
        ("redis/", "limits/", "backends/cache/", "backends/ratelimit.py"),
    ),
    ("logging (structlog)", ("structlog/", "logging/__init__.py")),
    ("tracing and metrics", ("opentelemetry/", "prometheus_client/", "tracing.py")),
    (
        "response serialisation (pydantic, JSON)",
        ("serialize_response", "pydantic", "json/", "responses.py", "jsonable_encoder"),
    ),
    ("thread hand-offs", ("run_in_threadpool", "to_thread", "anyio/", "queue.py")),
    ("our middleware", ("tenantrag/middleware/",)),
    ("FastAPI, Starlette, uvicorn", ("fastapi/", "starlette/", "uvicorn/", "httptools", "h11")),
]


def component(stack: list[str]) -> str:
    """The component a sample's stack (root first) belongs to."""
    if any(leaf in stack[-1] for leaf in IDLE_LEAVES):
        return WAITING
    for name, needles in COMPONENTS:
        if any(needle in frame for frame in stack for needle in needles):
            return name
    return "other"


def breakdown(raw: Path) -> tuple[Counter[str], int]:
    """Samples per component in a py-spy raw (collapsed stacks) file, and the total."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[component(stack.split(";"))] += int(n)
    return counts, sum(counts.values())


def report(counts: Counter[str], total: int) -> str:
    """A markdown table: share of all samples and of the non-waiting ones."""
    busy = total - sum(n for name, n in counts.items() if name == WAITING)
    lines = ["| component | samples | share | share of busy |", "|---|---|---|---|"]
    for name, n in counts.most_common():
        of_busy = "" if name == WAITING else f"{n / max(1, busy):.1%}"
        lines.append(f"| {name} | {n} | {n / max(1, total):.1%} | {of_busy} |")
    return "\n".join(lines)


def main() -> None:
    """Profile one endpoint under load; write the raw stacks and the table to --out-dir."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--endpoint", choices=["search", "query"], default="search")
    parser.add_argument("--queries", choices=["distinct", "repeat"], default="distinct")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if not PY_SPY.exists():
        sys.exit(f"py-spy is not installed at {PY_SPY}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    name = f"profile_{args.endpoint}_{args.queries}{'_gil' if args.gil else ''}"
    raw = args.out_dir / f"{name}.txt"
    data_dir, token = copy_data(args.source)
    flush_redis()
    try:
        with server(data_dir, 1, args.out_dir / f"{name}.server.log") as (base, pid):
            port = httpx.URL(base).port
            load = [
                sys.executable,
                "-m",
                "bench.load",
                "--port",
                str(port),
                "--token",
                token,
                "--endpoint",
                args.endpoint,
                "--queries",
                args.queries,
                "--concurrency",
                str(args.clients),
                "--requests",
                "100000",
                "--seconds",
                str(args.duration + 8),
                "--warmup",
                "64",
            ]
            driver = subprocess.Popen(load, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            time.sleep(5)  # past the warm-up
            spy = [
                str(PY_SPY),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(args.duration),
                "--format",
                "raw",
                "--output",
                str(raw),
                "--nonblocking",
            ]
            subprocess.run(spy + (["--gil"] if args.gil else []), check=True, capture_output=True)
            summary, _ = driver.communicate(timeout=args.duration + 120)
    finally:
        shutil.rmtree(data_dir.parent, ignore_errors=True)
    counts, total = breakdown(raw)
    text = (
        f"{name}: {total} samples over {args.duration} s; load during it: {summary.strip()}\n\n"
        + report(counts, total)
    )
    (args.out_dir / f"{name}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
