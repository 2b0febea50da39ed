"""Background ingestion against the synchronous path, and another tenant's search meanwhile.

One embedded `tenantrag serve` (its in-process worker runs the jobs) over a fresh data folder:

1. idle: another tenant (`probe`, 50 abstracts) searches in a closed loop; its p95 is the base;
2. throughput: N SciFact abstracts in `--rounds` parts; each part is posted synchronously
   (POST /api/documents, batches of 64) into one tenant and queued as ONE job
   (`tenantrag ingest --async`, timed queued to finished) into another, the two alternating so
   the shared machine's drifting load falls on both; overhead = async time / sync time - 1;
3. queries first: `--probe-documents` more abstracts posted synchronously, then queued as a job,
   each while `probe` searches: its p95 during each against idle's (bar: at most 2x).

    .venv/bin/python -m bench.jobs --documents 1000 --out bench/results/jobs.json

Each path writes its own tenant, so both store the same documents from empty.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from tests.faults.support import ROOT, headers_for, start_server

from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import Tenant

# ../shared/data beside the project (a worktree's is two levels up).
SCIFACT = (
    next(
        (d for d in (ROOT.parent / "shared", ROOT.parents[1] / "shared") if d.exists()),
        ROOT.parent / "shared",
    )
    / "data"
    / "scifact"
)
BATCH = 64


def abstracts(n: int, skip: int = 0) -> list[dict[str, str]]:
    """The first `n` SciFact abstracts after `skip`, as the API takes them."""
    out: list[dict[str, str]] = []
    with (SCIFACT / "corpus.jsonl").open() as handle:
        for i, line in enumerate(handle):
            if i < skip:
                continue
            if len(out) == n:
                break
            row = json.loads(line)
            out.append({"id": str(row["_id"]), "title": row["title"], "text": row["text"]})
    return out


def queries(n: int) -> list[str]:
    with (SCIFACT / "queries_train.jsonl").open() as handle:
        return [json.loads(line)["text"] for _, line in zip(range(n), handle, strict=False)]


class Probe(threading.Thread):
    """Another tenant's searches in a closed loop with a short pause: latencies in seconds."""

    def __init__(self, base_url: str, headers: dict[str, str], texts: list[str]) -> None:
        super().__init__(daemon=True)
        self.base_url, self.headers, self.texts = base_url, headers, texts
        self.latencies: list[float] = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60) as http:
            n = 0
            while not self.stop.is_set():
                body = {"query": self.texts[n % len(self.texts)], "top_k": 10}
                started = time.perf_counter()
                r = http.post("/api/search", headers=self.headers, json=body)
                took = time.perf_counter() - started
                if r.status_code == 200:
                    self.latencies.append(took)
                else:
                    self.errors += 1
                n += 1
                self.stop.wait(0.2)


def p(values: list[float], q: float) -> float:
    """The q-quantile (0..1) in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def probe_for(seconds: float, base_url: str, headers: dict[str, str], texts: list[str]) -> Probe:
    probe = Probe(base_url, headers, texts)
    probe.start()
    time.sleep(seconds)
    probe.stop.set()
    probe.join()
    return probe


def ingest_sync(http: httpx.Client, headers: dict[str, str], docs: list[dict[str, str]]) -> float:
    started = time.perf_counter()
    for start in range(0, len(docs), BATCH):
        r = http.post(
            "/api/documents", headers=headers, json={"documents": docs[start : start + BATCH]}
        )
        r.raise_for_status()
    return time.perf_counter() - started


def job_seconds(job: dict[str, Any]) -> float:
    """The job's own time, queued to finished (the CLI's start-up left out)."""
    return float(job["finished_at"]) - float(job["created_at"])


def ingest_async(
    http: httpx.Client,
    headers: dict[str, str],
    tenant: str,
    docs: list[dict[str, str]],
    env: dict[str, str],
) -> tuple[float, dict[str, Any]]:
    """Queue `docs` as one job with the CLI, then poll until it is over; (seconds, the job)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        path.write_text(
            "".join(
                json.dumps({"_id": d["id"], "title": d["title"], "text": d["text"]}) + "\n"
                for d in docs
            )
        )
        started = time.perf_counter()
        queued = subprocess.run(
            [
                sys.executable,
                "-m",
                "tenantrag.cli",
                "ingest",
                "--async",
                "--no-follow",
                "--tenant",
                tenant,
                str(path),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    job_id = queued.stdout.split()[1]
    while True:
        job = http.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["status"] not in ("queued", "running"):
            return time.perf_counter() - started, job
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4, help="sync/async alternations")
    parser.add_argument("--probe-documents", type=int, default=250)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--nice", type=int, default=10, help="TENANTRAG_JOBS__NICE for serve")
    parser.add_argument("--batch", type=int, default=8, help="TENANTRAG_JOBS__BATCH for serve")
    args = parser.parse_args()
    n = args.documents
    load_before = os.getloadavg()
    data = Path(tempfile.mkdtemp(prefix="tenantrag-jobs-bench-")) / "data"
    store = SQLiteStore(data / "tenantrag.db")
    store.open()
    for tenant in ("probe", "sync-t", "async-t", "sync-p", "async-p", "burst"):
        store.create_tenant(Tenant(id=tenant, rate_limit=1_000_000))
    store.close()
    server = start_server(
        data,
        env={
            "TENANTRAG_JOBS__IN_PROCESS": "true",
            "TENANTRAG_JOBS__NICE": str(args.nice),
            "TENANTRAG_JOBS__BATCH": str(args.batch),
        },
    )
    env = {
        **os.environ,
        "TENANTRAG_DATA_DIR": str(data),
        "TENANTRAG_MODEL_DIR": str(ROOT / ".cache" / "models"),
        "TENANTRAG_LOG_LEVEL": "WARNING",
    }
    env.pop("TENANTRAG_DATABASE_URL", None)
    results: dict[str, Any] = {
        "documents": n,
        "sync_batch": BATCH,
        "job_batch": args.batch,
        "nice": args.nice,
    }
    try:
        texts = queries(200)
        probe_h = headers_for("probe")
        with httpx.Client(base_url=server.base_url, timeout=600) as http:
            docs = abstracts(n)
            ingest_sync(http, probe_h, abstracts(50, skip=n))
            http.post("/api/search", headers=probe_h, json={"query": "warm up"})
            idle = probe_for(args.idle_s, server.base_url, probe_h, texts)
            results["idle"] = {
                "searches": len(idle.latencies),
                "p50_ms": p(idle.latencies, 0.5),
                "p95_ms": p(idle.latencies, 0.95),
            }
            print("idle", results["idle"], flush=True)

            # Throughput: sync chunks and async jobs alternate, so the machine's drifting load
            # (it is shared) falls on both paths alike.
            size = n // args.rounds
            sync_s = async_s = wall_s = 0.0
            jobs = []
            for r in range(args.rounds):
                part = docs[r * size : (r + 1) * size]
                order = ["sync", "async"] if r % 2 == 0 else ["async", "sync"]
                for path in order:
                    if path == "sync":
                        sync_s += ingest_sync(http, headers_for("sync-t"), part)
                    else:
                        wall, job = ingest_async(http, headers_for("async-t"), "async-t", part, env)
                        wall_s += wall
                        async_s += job_seconds(job)
                        jobs.append({k: job[k] for k in ("status", "done", "failed")})
                print(f"round {r}: sync {sync_s:.1f} s, async {async_s:.1f} s", flush=True)
            done = size * args.rounds
            results["sync"] = {"documents": done, "seconds": sync_s, "docs_per_s": done / sync_s}
            results["async"] = {
                "documents": done,
                "seconds": async_s,
                "wall_seconds_with_cli": wall_s,
                "docs_per_s": done / async_s,
                "jobs": jobs,
            }
            results["async_overhead"] = async_s / sync_s - 1
            print("sync", results["sync"], flush=True)
            print(
                "async", results["async"], f"overhead {results['async_overhead']:+.1%}", flush=True
            )

            # Another tenant's searches while a job runs, and (for comparison) while the same
            # documents are posted synchronously.
            probe_docs = abstracts(args.probe_documents, skip=n + 50)
            for path in ("sync", "async"):
                probe = Probe(server.base_url, probe_h, texts)
                probe.start()
                if path == "sync":
                    took = ingest_sync(http, headers_for("sync-p"), probe_docs)
                    state = "succeeded"
                else:
                    _, job = ingest_async(http, headers_for("async-p"), "async-p", probe_docs, env)
                    took, state = job_seconds(job), job["status"]
                probe.stop.set()
                probe.join()
                results[f"{path}_with_probe"] = {
                    "documents": len(probe_docs),
                    "seconds": took,
                    "status": state,
                    "searches": len(probe.latencies),
                    "search_errors": probe.errors,
                    "p50_ms": p(probe.latencies, 0.5),
                    "p95_ms": p(probe.latencies, 0.95),
                    "p95_ratio_to_idle": p(probe.latencies, 0.95) / results["idle"]["p95_ms"],
                }
                print(f"{path}+probe", results[f"{path}_with_probe"], flush=True)
            # The bar's burst: 2,000 documents posted with async=true in batches of 250 answer
            # 202 at once (then cancelled: their ingestion was measured above).
            burst = abstracts(2000)
            h = headers_for("burst")
            answers, queued = [], []
            for start in range(0, len(burst), 250):
                body = {"documents": burst[start : start + 250]}
                began = time.perf_counter()
                answer = http.post("/api/documents", params={"async": "true"}, headers=h, json=body)
                answers.append(time.perf_counter() - began)
                assert answer.status_code == 202, answer.text
                queued.append(answer.json()["job_id"])
            for job_id in queued:
                http.delete(f"/api/jobs/{job_id}", headers=h).raise_for_status()
            results["burst_202"] = {
                "documents": len(burst),
                "requests": len(answers),
                "max_ms": 1000 * max(answers),
                "mean_ms": 1000 * sum(answers) / len(answers),
            }
            print("burst", results["burst_202"], flush=True)
    finally:
        server.stop()
    results["load_average_before"] = load_before
    results["load_average_after"] = os.getloadavg()
    results["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    results["cores"] = os.cpu_count()
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
