"""Distributed mode against embedded mode (issue 13 item 8), on this machine.

Four parts, each with its own PostgreSQL database (created and dropped here) and folders:

- ingest: the first --docs SciFact abstracts through the real `Ingestor` (chunking, the real
  embedding model on all cores, the store, the node's copy and indexes) into a SQLite store
  (embedded) and into PostgreSQL with a started follower (a node: the write is answered after
  the node's copy and indexes hold it), in --rounds alternating rounds so both see the same
  machine load. Also the store alone: the same documents with their vectors already made,
  `put_documents` one at a time, so the store's own cost is visible apart from the model.
- search: cache-miss `/api/search` latency from one client against two real `tenantrag serve`
  processes over the ingest's corpora, an embedded one and a PostgreSQL-backed one (which
  copies the database first), in alternating blocks of distinct SciFact claims.
- lag: a writer commits one small document at a time into PostgreSQL at --lag-rate per second
  for --lag-seconds; a real `tenantrag serve` follows the change log, and a poller reads its
  `/ready` (`replication.applied_seq`) every few milliseconds: lag = first time the node holds
  the write's seq minus the time the writer's commit returned.
- catchup: SciFact's corpus (--catchup-docs, default all 5,183 abstracts = 10,287 chunks)
  chunked by the real chunker, with SYNTHETIC unit vectors (embedding them all takes about 14
  minutes here; the follower copies vectors and FAISS builds its exact index in a time that
  does not depend on their values), written through the CLI's path (`build_corpus(...,
  follow=False)`); then a new `tenantrag serve` on an empty data folder: seconds until /ready
  answers 200, and the bytes its data folder holds per 1,000 chunks.

Run from the project root (needs PostgreSQL at 127.0.0.1:5432 with trust auth, as the tests):

    .venv/bin/python -m bench.distributed --out bench/results/distributed.json
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# ../shared from the main checkout; a worktree under /work/wt reads the same folder
SCIFACT = next(
    (
        p
        for p in (ROOT.parent / "shared" / "data" / "scifact", Path("/work/shared/data/scifact"))
        if (p / "corpus.jsonl").exists()
    ),
    ROOT.parent / "shared" / "data" / "scifact",
)
MODEL_DIR = ROOT / ".cache" / "models"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TENANT = "bench"
SECRET = secrets.token_urlsafe(48)
METRICS_TOKEN = secrets.token_urlsafe(24)  # distributed mode: serve needs one


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh PostgreSQL database at this release's schema, dropped afterwards."""
    import psycopg

    from tenantrag.backends.store import schema

    name = f"tenantrag_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        schema.upgrade(url)
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settings_for(data_dir: Path, database_url: str | None) -> Any:
    """Settings of a node over `data_dir` (and `database_url` in distributed mode)."""
    from tenantrag.settings import Settings

    return Settings(  # type: ignore[call-arg]
        data_dir=data_dir, model_dir=MODEL_DIR, database_url=database_url, _env_file=None
    )


def scifact(docs: int | None) -> list[Any]:
    """The first `docs` SciFact abstracts (all when None) as DocumentInputs."""
    from tenantrag.ingest.bulk import read_documents

    documents = list(read_documents(SCIFACT / "corpus.jsonl"))
    return documents if docs is None else documents[:docs]


def a_tenant() -> Any:
    """The bench tenant: no limit or budget a bench reaches."""
    from tenantrag.models import Tenant

    return Tenant(
        TENANT, rate_limit=10**9, monthly_token_budget=10**12, monthly_cost_budget_usd=1e9
    )


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99, mean and max of `samples` (seconds) in milliseconds."""
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "n": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "mean_ms": round(1000 * statistics.fmean(ordered), 2),
        "max_ms": round(1000 * ordered[-1], 2),
    }


# -- ingest ----------------------------------------------------------------------------------


def ingest_once(backend: str, docs: list[Any], folder: Path, url: str | None) -> dict[str, Any]:
    """Ingest `docs` in batches of 16 as a node would; wall and CPU seconds."""
    from tenantrag.backends.store import build_store
    from tenantrag.ingest.bulk import batches
    from tenantrag.observability.audit import scrub_record
    from tenantrag.services import build_corpus

    settings = settings_for(folder, url)
    folder.mkdir(parents=True, exist_ok=True)
    store = build_store(settings, audit_scrub=scrub_record)
    store.open()
    tenant = store.create_tenant(a_tenant())
    corpus = build_corpus(settings, store, threads=os.cpu_count() or 1)
    if corpus.follower is not None:
        corpus.follower.start()
        corpus.follower.catch_up()
    corpus.embedder.embed(["warm up"])
    chunks = 0
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches(iter(docs), 16):
        chunks += sum(r.chunks for r in corpus.ingestor.ingest(tenant, batch))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if corpus.follower is not None:
        corpus.follower.stop()
        corpus.follower.replica.close()
    store.close()
    return {
        "backend": backend,
        "documents": len(docs),
        "chunks": chunks,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "chunks_per_s": round(chunks / wall, 2),
        "load_average": os.getloadavg()[0],
    }


def store_writes(url: str | None, folder: Path, n: int, dims: int = 384) -> dict[str, Any]:
    """`put_documents` of `n` one-chunk documents with ready vectors, one per transaction."""
    from tenantrag.backends.store import NewDocument, build_store
    from tenantrag.models import Chunk
    from tenantrag.observability.audit import scrub_record

    folder.mkdir(parents=True, exist_ok=True)
    store = build_store(settings_for(folder, url), audit_scrub=scrub_record)
    store.open()
    tenant = store.create_tenant(a_tenant())
    rng = np.random.default_rng(7)
    docs = scifact(n)
    times = []
    for i, doc in enumerate(docs):
        vector = rng.standard_normal((1, dims)).astype(np.float32)
        vector /= np.linalg.norm(vector)
        chunk = Chunk(TENANT, f"w{i}", 0, doc.text[:1500], title=doc.title or "")
        started = time.perf_counter()
        store.put_documents(tenant, [NewDocument(f"w{i}", doc.title or "", [chunk], vector)])
        times.append(time.perf_counter() - started)
    store.close()
    return {"writes_per_s": round(len(times) / sum(times), 1), **percentiles(times)}


def run_ingest(args: argparse.Namespace, work: Path, urls: list[str]) -> dict[str, Any]:
    """Alternating rounds of embedded and PostgreSQL ingestion, then store-only writes."""
    docs = scifact(args.docs)
    if not docs:
        raise SystemExit(f"no SciFact documents under {SCIFACT}")
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = ["sqlite", "postgres"] if r % 2 == 0 else ["postgres", "sqlite"]
        for backend in order:
            folder = work / f"ingest-{backend}-{r}"
            url = urls[r] if backend == "postgres" else None
            rounds.append(ingest_once(backend, docs, folder, url))
            print(json.dumps(rounds[-1]), flush=True)
    summary: dict[str, Any] = {"rounds": rounds}
    for backend in ("sqlite", "postgres"):
        mine = [x for x in rounds if x["backend"] == backend]
        chunks = sum(x["chunks"] for x in mine)
        summary[backend] = {
            "chunks_per_s": round(chunks / sum(x["wall_s"] for x in mine), 2),
            "cpu_s_per_chunk": round(sum(x["cpu_s"] for x in mine) / chunks, 4),
        }
    summary["postgres_vs_sqlite"] = round(
        summary["postgres"]["chunks_per_s"] / summary["sqlite"]["chunks_per_s"], 3
    )
    with database() as url:
        summary["store_only"] = {
            "sqlite": store_writes(None, work / "writes-sqlite", args.writes),
            "postgres": store_writes(url, work / "writes-pg", args.writes),
        }
    return summary


# -- serving nodes -------------------------------------------------------------------------------


@contextlib.contextmanager
def serve(data_dir: Path, log: Path, database_url: str | None) -> Iterator[tuple[str, float]]:
    """`tenantrag serve` (one worker, no Redis): its URL and the seconds until /ready was 200."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRAG_")}
    env |= {
        "TENANTRAG_DATA_DIR": str(data_dir),
        "TENANTRAG_MODEL_DIR": str(MODEL_DIR),
        "TENANTRAG_JWT_SECRET": SECRET,
        "TENANTRAG_METRICS_TOKEN": METRICS_TOKEN,
        "TENANTRAG_LOG_LEVEL": "WARNING",
    }
    if database_url:
        env["TENANTRAG_DATABASE_URL"] = database_url
    command = [str(ROOT / ".venv" / "bin" / "tenantrag"), "serve", "--port", str(port)]
    started = time.perf_counter()
    with log.open("ab") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the server was not ready in 30 minutes; see {log}")
        yield url, time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=60)


def headers() -> dict[str, str]:
    """An admin token of the bench tenant."""
    from tenantrag.auth import issue_token
    from tenantrag.models import ROLES

    perms = {p.value for p in ROLES["admin"]}
    token = issue_token(SECRET, tenant_id=TENANT, user_id="bench", permissions=perms, ttl_s=86_400)
    return {"Authorization": f"Bearer {token}", "X-Tenant-ID": TENANT}


def claims() -> list[str]:
    """SciFact train claims: each sent once, so no cache has seen it."""
    lines = (SCIFACT / "queries_train.jsonl").read_text().splitlines()
    return [json.loads(line)["text"] for line in lines if line]


def run_search(args: argparse.Namespace, work: Path, pg_url: str) -> dict[str, Any]:
    """Alternating blocks of searches against an embedded and a PostgreSQL-backed node."""
    auth = headers()
    texts = iter(claims())
    samples: dict[str, list[float]] = {"embedded": [], "postgres": []}
    with (
        serve(work / "ingest-sqlite-0", work / "serve-embedded.log", None) as (embedded, _),
        serve(work / "search-pg-node", work / "serve-pg.log", pg_url) as (pg, _),
        httpx.Client(timeout=30) as http,
    ):
        nodes = {"embedded": embedded, "postgres": pg}
        for node in nodes.values():  # warm-up, not measured
            for _ in range(10):
                body = {"query": "warm up the model", "mode": "hybrid"}
                http.post(f"{node}/api/search", headers=auth, json=body).raise_for_status()
        block = 25
        for b in range(2 * args.searches // block):
            name = ("embedded", "postgres")[b % 2]
            for _ in range(block):
                body = {"query": next(texts), "mode": "hybrid", "top_k": 10}
                started = time.perf_counter()
                r = http.post(f"{nodes[name]}/api/search", headers=auth, json=body)
                samples[name].append(time.perf_counter() - started)
                r.raise_for_status()
    return {name: percentiles(s) for name, s in samples.items()} | {
        "load_average": os.getloadavg()[0]
    }


# -- lag ---------------------------------------------------------------------------------------


def run_lag(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Commit small documents at a steady rate; time until a serving node holds each one."""
    from tenantrag.backends.store import NewDocument, build_store
    from tenantrag.models import Chunk
    from tenantrag.observability.audit import scrub_record

    with database() as url:
        store = build_store(settings_for(work / "lag-writer", url), audit_scrub=scrub_record)
        (work / "lag-writer").mkdir(parents=True, exist_ok=True)
        store.open()
        tenant = store.create_tenant(a_tenant())
        seen: list[tuple[float, int]] = []  # (time, applied seq) as the poller saw them
        stop = threading.Event()
        with serve(work / "lag-node", work / "serve-lag.log", url) as (node, empty_ready_s):

            def poll() -> None:
                with httpx.Client(timeout=10) as http:
                    while not stop.is_set():
                        body = http.get(f"{node}/ready").json()
                        seen.append((time.perf_counter(), int(body["replication"]["applied_seq"])))
                        time.sleep(0.002)

            poller = threading.Thread(target=poll)
            poller.start()
            rng = np.random.default_rng(11)
            commits: list[tuple[float, int]] = []
            period = 1.0 / args.lag_rate
            begin = time.perf_counter()
            n = 0
            while time.perf_counter() - begin < args.lag_seconds:
                vector = rng.standard_normal((1, 384)).astype(np.float32)
                vector /= np.linalg.norm(vector)
                chunk = Chunk(TENANT, f"lag{n}", 0, f"Sustained write number {n} of the bench.")
                seq = store.put_documents(tenant, [NewDocument(f"lag{n}", "", [chunk], vector)])
                commits.append((time.perf_counter(), seq))
                n += 1
                time.sleep(max(0.0, begin + n * period - time.perf_counter()))
            time.sleep(3)
            stop.set()
            poller.join()
        store.close()
    times = [t for t, _ in seen]
    lags = []
    for committed, seq in commits:
        i = bisect.bisect_left(times, committed)  # the first look after the commit returned
        while i < len(seen) and seen[i][1] < seq:
            i += 1
        if i < len(seen):
            lags.append(seen[i][0] - committed)
    polls = [b - a for a, b in zip(times, times[1:], strict=False)]
    return {
        "writes": len(commits),
        "held_by_the_node": len(lags),
        "rate_per_s": round(len(commits) / args.lag_seconds, 2),
        "lag": percentiles(lags),
        "poll_interval_ms_p50": round(1000 * statistics.median(polls), 2),
        # the same start on an empty database: process, model and schema, no data to copy
        "node_ready_on_empty_database_s": round(empty_ready_s, 1),
        "load_average": os.getloadavg()[0],
    }


# -- catch-up ----------------------------------------------------------------------------------


class SyntheticVectors:
    """The real tokenizer (so chunks are the real chunks) with random unit vectors."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.model_name = real.model_name
        self.dimensions = real.dimensions
        self.rng = np.random.default_rng(5)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Random unit vectors, one per text."""
        vectors = self.rng.standard_normal((len(texts), self.dimensions)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def count_tokens(self, text: str) -> int:
        """The real model's count."""
        return int(self.real.count_tokens(text))


def folder_bytes(folder: Path) -> dict[str, int]:
    """Bytes on disk under `folder`, by top-level entry."""
    sizes: dict[str, int] = {}
    for entry in folder.iterdir():
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        sizes[entry.name] = sum(p.stat().st_size for p in files)
    return sizes


def run_catchup(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Load SciFact (synthetic vectors) into PostgreSQL, then time a new node to /ready."""
    from tenantrag.backends.embedding import build_embedder
    from tenantrag.backends.store import build_store
    from tenantrag.ingest.bulk import batches
    from tenantrag.observability.audit import scrub_record
    from tenantrag.services import build_corpus

    docs = scifact(None if args.catchup_docs == 0 else args.catchup_docs)
    with database() as url:
        settings = settings_for(work / "catchup-loader", url)
        (work / "catchup-loader").mkdir(parents=True, exist_ok=True)
        store = build_store(settings, audit_scrub=scrub_record)
        store.open()
        tenant = store.create_tenant(a_tenant())
        real = build_embedder(settings.embedding, model_dir=settings.onnx_dir, threads=1)
        corpus = build_corpus(settings, store, SyntheticVectors(real), follow=False)
        chunks = 0
        started = time.perf_counter()
        for batch in batches(iter(docs), 64):
            chunks += sum(r.chunks for r in corpus.ingestor.ingest(tenant, batch))
        load_s = time.perf_counter() - started
        store.close()
        print(f"loaded {len(docs)} documents, {chunks} chunks in {load_s:.0f} s", flush=True)
        node_dir = work / "catchup-node"
        with serve(node_dir, work / "serve-catchup.log", url) as (_, ready_s):
            pass
        sizes = folder_bytes(node_dir)
    derived = {k: v for k, v in sizes.items() if k not in {"models", "locks"}}
    total = sum(derived.values())
    return {
        "documents": len(docs),
        "chunks": chunks,
        "load_into_postgres_s": round(load_s, 1),
        "new_node_ready_s": round(ready_s, 1),
        "node_data_bytes": sizes,
        "derived_bytes_per_1000_chunks": round(1000 * total / chunks),
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    """Run the chosen parts; print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["ingest", "search", "lag", "catchup"])
    parser.add_argument("--docs", type=int, default=60, help="SciFact abstracts per ingest round")
    parser.add_argument("--rounds", type=int, default=2, help="ingest rounds per backend")
    parser.add_argument("--writes", type=int, default=200, help="store-only writes per backend")
    parser.add_argument("--searches", type=int, default=200, help="searches per node")
    parser.add_argument("--lag-rate", type=float, default=10.0, help="writes per second")
    parser.add_argument("--lag-seconds", type=float, default=60.0)
    parser.add_argument("--catchup-docs", type=int, default=0, help="0: all 5,183 abstracts")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tenantrag-distributed-"))
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "load_average_start": os.getloadavg(),
    }
    try:
        with contextlib.ExitStack() as stack:
            urls = [stack.enter_context(database()) for _ in range(args.rounds)]
            if "ingest" in args.parts or "search" in args.parts:
                result["ingest"] = run_ingest(args, work, urls)
                print(json.dumps(result["ingest"], indent=2), flush=True)
            if "search" in args.parts:
                result["search"] = run_search(args, work, urls[0])
                print(json.dumps(result["search"], indent=2), flush=True)
        if "lag" in args.parts:
            result["lag"] = run_lag(args, work)
            print(json.dumps(result["lag"], indent=2), flush=True)
        if "catchup" in args.parts:
            result["catchup"] = run_catchup(args, work)
            print(json.dumps(result["catchup"], indent=2), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_average_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
