"""The hot path against its floor: search p50, query p95 and the model's CPU share, as ratios.

From outside, as a client sees it: a real `tenantrag serve` (one worker, embedded mode, no
Redis) over 1,000 SciFact documents, driven over HTTP with questions no cache has seen. The
floor E is one fp32 MiniLM query embedding in onnxruntime on one thread, timed in this same
run (so a busy machine moves E and the latencies together; the ratios are what to compare).

    search p50 / E      /api/search, one client              goal <= 1.5
    query p95 / E       /api/query, one client               goal <= 3
    model share         searches/s x E / cores, 8 clients    goal >= 60%

E is timed before the server starts and again after it stops; the ratios use the median of
both (the two medians are printed: far apart, the machine's load moved during the run). A
question the injection screen refuses (400 `prompt_injection`, a few SciFact claims) is not
timed. Questions are embedded as the service's default does (int8) unless `--query-precision
fp32`; E stays the fp32 floor either way, so with int8 "model share" counts fp32-model
equivalents per second (searches/s x E / cores), not the int8 model's own share of the cores.

Run from the project root (`make bench` runs it too):

    .venv/bin/python -m bench.hot_path_ratios [--docs 1000] [--requests 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
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
PREPARED = ROOT / ".cache" / "bench" / "hot_path"
GOALS = {"search_p50": 1.5, "query_p95": 3.0, "model_share": 0.60}


def prepared(docs: int) -> Path:
    """A data folder with the first `docs` SciFact documents, made once and kept in .cache.

    Runs copy it (the server writes its audit log and ledger), so each starts from the same
    corpus and none pays for ingestion again.
    """
    folder = PREPARED / f"docs{docs}"
    if not (folder / "READY").exists():
        shutil.rmtree(folder, ignore_errors=True)
        prepare(folder / "data", docs)
        (folder / "READY").write_text(f"{SCIFACT}\n")
    return folder / "data"


def token() -> str:
    """An admin token of the bench tenant, signed with this run's secret."""
    from tenantrag.auth import issue_token
    from tenantrag.models import ROLES

    perms = {p.value for p in ROLES["admin"]}
    return issue_token(SECRET, tenant_id=TENANT, user_id="bench", permissions=perms, ttl_s=86_400)


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


def default_precision() -> str:
    """The query model the service uses unless told otherwise."""
    from tenantrag.settings import EmbeddingSettings

    return str(EmbeddingSettings().query_precision)


def floor_times(texts: list[str]) -> list[float]:
    """Seconds of each fp32 query embedding of `texts` on one onnxruntime thread."""
    from tenantrag.backends.embedding.onnx import OnnxEmbedder, prepare_model

    model = OnnxEmbedder(prepare_model(MODEL_DIR), threads=1)
    for text in texts[:20]:
        model.embed([text])  # warm up
    times = []
    for text in texts:
        started = time.perf_counter()
        model.embed([text])
        times.append(time.perf_counter() - started)
    return times


@contextlib.contextmanager
def serve(
    data_dir: Path, log: Path, *, query_precision: str | None = None
) -> Iterator[tuple[str, int]]:
    """`tenantrag serve` (one worker, no Redis) over `data_dir`: its URL and process id."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRAG_")}
    if query_precision is not None:
        env["TENANTRAG_EMBEDDING__QUERY_PRECISION"] = query_precision
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


class Connection:
    """One keep-alive HTTP/1.1 connection to the server, doing the least a client can per request.

    The figures are the server's, but the client shares the machine's two cores: httpx spent
    about 1.9 ms of CPU per request (a fifth of E), which counted in every latency and took
    cores from the server at saturation. This writes a prepared request and reads the status,
    the headers and a Content-Length body, nothing more.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """The status and body of one POST of a JSON body."""
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(request.encode() + body)
        status = int((await self.reader.readline()).split(b" ", 2)[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def timed(client: Connection, path: str, text: str) -> float | None:
    """Seconds for one request (which must succeed); None for a question the screen refused."""
    body = json.dumps({"query": text, "top_k": 5}).encode()
    started = time.perf_counter()
    status, answer = await client.post(path, body)
    elapsed = time.perf_counter() - started
    if status == 400 and b"prompt_injection" in answer:
        return None
    if status != 200:
        raise RuntimeError(f"{path} answered {status}: {answer[:200]!r}")
    return elapsed


async def one_client(client: Connection, path: str, texts: list[str]) -> list[float]:
    """Latencies of `texts`, one request at a time (refused questions left out)."""
    times = [await timed(client, path, text) for text in texts]
    return [t for t in times if t is not None]


async def saturate(connections: list[Connection], texts: Iterator[str], seconds: float) -> int:
    """Searches completed within `seconds` by one client per connection."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: Connection) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await timed(client, "/api/search", next(texts))
            done += 1

    await asyncio.gather(*(worker(c) for c in connections))
    return done


async def measure(url: str, pid: int, token: str, args: argparse.Namespace) -> dict[str, float]:
    """The three measurements against the running server."""
    texts = questions()
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": TENANT}
    connections = [Connection(url, headers) for _ in range(args.clients)]
    client = connections[0]
    try:
        await one_client(client, "/api/search", [next(texts) for _ in range(args.warmup)])
        await one_client(client, "/api/query", [next(texts) for _ in range(args.warmup)])
        search = await one_client(
            client, "/api/search", [next(texts) for _ in range(args.requests)]
        )
        query = await one_client(client, "/api/query", [next(texts) for _ in range(args.requests)])
        cpu_before, started = tree_cpu_s(pid), time.perf_counter()
        client_before = time.process_time()
        searches = await saturate(connections, texts, args.seconds)
        wall = time.perf_counter() - started
        server_cpu = tree_cpu_s(pid) - cpu_before
        client_cpu = time.process_time() - client_before
    finally:
        for connection in connections:
            await connection.close()
    return {
        "search_p50_s": statistics.median(search),
        "query_p95_s": statistics.quantiles(query, n=20)[-1],
        "searches_per_s": searches / wall,
        "server_cpu_cores": server_cpu / wall,
        "client_cpu_cores": client_cpu / wall,
        "server_cpu_per_search_s": server_cpu / max(1, searches),
        "client_cpu_per_search_s": client_cpu / max(1, searches),
    }


def main() -> None:
    """Prepare, time the floor, serve, measure, print the ratios (and JSON beside them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--query-precision", choices=["fp32", "int8"], default=default_precision())
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hot_path.json")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tenantrag-hot-") as tmp:
        data_dir = Path(tmp) / "data"
        shutil.copytree(prepared(args.docs), data_dir, ignore=shutil.ignore_patterns("audit*"))
        floor_texts = [f"{t} (floor)" for t, _ in zip(questions(), range(200), strict=False)]
        before = floor_times(floor_texts)
        log = args.out.with_suffix(".server.log")
        with serve(data_dir, log, query_precision=args.query_precision) as (url, pid):
            m = asyncio.run(measure(url, pid, token(), args))
        after = floor_times(floor_texts)
    e = statistics.median(before + after)
    e_before, e_after = statistics.median(before), statistics.median(after)
    cores = os.cpu_count() or 1
    ratios = {
        "search_p50": m["search_p50_s"] / e,
        "query_p95": m["query_p95_s"] / e,
        "model_share": m["searches_per_s"] * e / cores,
    }
    result = {
        "floor_e_s": e,
        "floor_e_before_s": e_before,
        "floor_e_after_s": e_after,
        "query_precision": args.query_precision,
        "cores": cores,
        "load_average": os.getloadavg(),
        **m,
        "ratios": ratios,
        "goals": GOALS,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"floor E (fp32 MiniLM, 1 onnxruntime thread): {e * 1000:.2f} ms"
        f" (before {e_before * 1000:.2f}, after {e_after * 1000:.2f});"
        f" questions embedded in {args.query_precision}"
    )
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
    print(
        f"  CPU per search: server {m['server_cpu_per_search_s'] * 1000:.2f} ms, this client"
        f" {m['client_cpu_per_search_s'] * 1000:.2f} ms ({m['client_cpu_cores']:.2f} cores);"
        f" load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
