"""The hot path against its floor: search p50, query p95 and the model's CPU share, as ratios.

From outside, as a client sees it: a real `tenantrag serve` (one worker, embedded mode, no
Redis) over 1,000 SciFact documents, driven over HTTP with questions no cache has seen. The
floor E is one fp32 MiniLM query embedding in onnxruntime on one thread, timed in this same
run (so a busy machine moves E and the latencies together; the ratios are what to compare).

    search p50 / E      /api/search, one client              goal <= 1.5
    query p95 / E       /api/query, one client               goal <= 3
    model share         searches/s x E / cores, 8 clients    goal >= 60%

Run from the project root (`make bench` runs it too):

    .venv/bin/python -m bench.hot_path_ratios [--docs 1000] [--requests 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from bench.load_matrix import MODEL_DIR, SECRET, TENANT, free_port, tree_cpu_s

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
GOALS = {"search_p50": 1.5, "query_p95": 3.0, "model_share": 0.60}


def prepare(data_dir: Path, docs: int) -> str:
    """Load the first `docs` SciFact documents into a fresh data folder; an admin token."""
    from tenantrag.auth import issue_token
    from tenantrag.backends.store import build_store
    from tenantrag.ingest.bulk import batches, read_documents
    from tenantrag.models import ROLES, Tenant
    from tenantrag.observability.audit import scrub_record
    from tenantrag.services import build_corpus
    from tenantrag.settings import Settings

    settings = Settings(data_dir=data_dir, model_dir=MODEL_DIR, _env_file=None)  # type: ignore[call-arg]
    store = build_store(settings, audit_scrub=scrub_record)
    store.open()
    tenant = store.create_tenant(
        Tenant(TENANT, rate_limit=10**9, monthly_token_budget=10**12, monthly_cost_budget_usd=1e9)
    )
    corpus = build_corpus(settings, store, threads=os.cpu_count() or 1)
    documents = list(read_documents(SCIFACT / "corpus.jsonl"))[:docs]
    for batch in batches(iter(documents), 64):
        corpus.ingestor.ingest(tenant, batch)
    store.close()
    perms = {p.value for p in ROLES["admin"]}
    return issue_token(SECRET, tenant_id=TENANT, user_id="bench", permissions=perms, ttl_s=86_400)


def questions() -> Iterator[str]:
    """SciFact claims, then the same claims numbered: every text is new to every cache."""
    claims = [
        json.loads(line)["text"]
        for line in (SCIFACT / "queries_train.jsonl").read_text().splitlines()
        if line
    ]
    yield from claims
    for round_ in range(1, 100):
        for claim in claims:
            yield f"{claim} (variant {round_})"


def floor_e(texts: list[str]) -> float:
    """Median seconds of one fp32 query embedding on one onnxruntime thread."""
    from tenantrag.backends.embedding.onnx import OnnxEmbedder, prepare_model

    model = OnnxEmbedder(prepare_model(MODEL_DIR), threads=1)
    for text in texts[:20]:
        model.embed([text])  # warm up
    times = []
    for text in texts:
        started = time.perf_counter()
        model.embed([text])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@contextlib.contextmanager
def serve(data_dir: Path, log: Path) -> Iterator[tuple[str, int]]:
    """`tenantrag serve` (one worker, no Redis) over `data_dir`: its URL and process id."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRAG_")}
    env |= {
        "TENANTRAG_DATA_DIR": str(data_dir),
        "TENANTRAG_MODEL_DIR": str(MODEL_DIR),
        "TENANTRAG_JWT_SECRET": SECRET,
        "TENANTRAG_LOG_LEVEL": "WARNING",
    }
    command = [str(ROOT / ".venv" / "bin" / "tenantrag"), "serve", "--port", str(port)]
    with log.open("ab") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the server did not start; see {log}")
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)


async def timed(client: httpx.AsyncClient, path: str, text: str) -> float:
    """Seconds for one request (which must succeed)."""
    started = time.perf_counter()
    response = await client.post(path, json={"query": text, "top_k": 5})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


async def one_client(client: httpx.AsyncClient, path: str, texts: list[str]) -> list[float]:
    """Latencies of `texts`, one request at a time."""
    return [await timed(client, path, text) for text in texts]


async def saturate(
    client: httpx.AsyncClient, texts: Iterator[str], clients: int, seconds: float
) -> int:
    """Searches completed by `clients` concurrent clients within `seconds`."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await timed(client, "/api/search", next(texts))
            done += 1

    await asyncio.gather(*(worker() for _ in range(clients)))
    return done


async def measure(url: str, pid: int, token: str, args: argparse.Namespace) -> dict[str, float]:
    """The three measurements against the running server."""
    texts = questions()
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": TENANT}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=60, limits=limits
    ) as client:
        await one_client(client, "/api/search", [next(texts) for _ in range(args.warmup)])
        await one_client(client, "/api/query", [next(texts) for _ in range(args.warmup)])
        search = await one_client(
            client, "/api/search", [next(texts) for _ in range(args.requests)]
        )
        query = await one_client(client, "/api/query", [next(texts) for _ in range(args.requests)])
        cpu_before, started = tree_cpu_s(pid), time.perf_counter()
        searches = await saturate(client, texts, args.clients, args.seconds)
        wall = time.perf_counter() - started
        server_cpu = tree_cpu_s(pid) - cpu_before
    return {
        "search_p50_s": statistics.median(search),
        "query_p95_s": statistics.quantiles(query, n=20)[-1],
        "searches_per_s": searches / wall,
        "server_cpu_cores": server_cpu / wall,
    }


def main() -> None:
    """Prepare, time the floor, serve, measure, print the ratios (and JSON beside them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hot_path.json")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tenantrag-hot-") as tmp:
        data_dir = Path(tmp) / "data"
        token = prepare(data_dir, args.docs)
        floor_texts = [f"{t} (floor)" for t, _ in zip(questions(), range(200), strict=False)]
        e = floor_e(floor_texts)
        with serve(data_dir, args.out.with_suffix(".server.log")) as (url, pid):
            m = asyncio.run(measure(url, pid, token, args))
    cores = os.cpu_count() or 1
    ratios = {
        "search_p50": m["search_p50_s"] / e,
        "query_p95": m["query_p95_s"] / e,
        "model_share": m["searches_per_s"] * e / cores,
    }
    result = {"floor_e_s": e, "cores": cores, **m, "ratios": ratios, "goals": GOALS}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"floor E (fp32 MiniLM, 1 onnxruntime thread): {e * 1000:.2f} ms")
    print(
        f"search p50, 1 client: {m['search_p50_s'] * 1000:.2f} ms = {ratios['search_p50']:.2f} E"
        f" (goal <= {GOALS['search_p50']} E)"
    )
    print(
        f"query p95, 1 client: {m['query_p95_s'] * 1000:.2f} ms = {ratios['query_p95']:.2f} E"
        f" (goal <= {GOALS['query_p95']} E)"
    )
    print(
        f"8 clients: {m['searches_per_s']:.1f} searches/s, server {m['server_cpu_cores']:.2f}"
        f" cores; model share {ratios['model_share']:.0%} of {cores} (goal >= 60%)"
    )


if __name__ == "__main__":
    main()
