"""Load scenarios: search and query x 1, 8, 32 clients x cache miss and hit x 1 and 2 workers.

Copies the SciFact data folder (bench/scifact.py prepare) to a temporary directory, so the
original is never modified, raises the tenant's rate limit there, and for every scenario starts
a fresh `tenantrag serve` on 127.0.0.1 (empty in-process caches; Redis db 12 flushed), warms it
up on abstract titles (never measured), measures with bench/load.py's generator in this
process, and stops it. Cache miss: distinct SciFact train claims, each sent once. Cache hit:
one claim, sent first during warm-up, then repeated. After the closed-loop scenarios come
open-loop ones (`--rates` for cache misses, `--hit-rates` for /api/query answer-cache hits):
requests arriving at a fixed mean rate over `--open-clients` connections, latency counted from
each arrival. Besides latency it records the server's
CPU time per request (all its processes) and the load average, because this 2-core machine
is shared. Run from the project root:

    .venv/bin/python -m bench.load_matrix --out bench/results/load.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import httpx
from bench.load import claims, run_scenario, titles

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / ".cache" / "bench" / "scifact"
MODEL_DIR = ROOT / ".cache" / "models"
TENANT = "scifact"
SECRET = secrets.token_urlsafe(48)  # per run: the servers are throwaway, on 127.0.0.1
REDIS_URL = "redis://127.0.0.1:6379/12"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` and every live descendant."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            child, parent = int(stat.parent.name), int(fields[1])
            children.setdefault(parent, []).append(child)
            cpu[child] = (int(fields[11]) + int(fields[12])) / TICKS
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += cpu.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total


def server_env(data_dir: Path, *, redis: bool = True) -> dict[str, str]:
    """The environment of a bench server over `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRAG_")}
    env |= {
        "TENANTRAG_DATA_DIR": str(data_dir),
        "TENANTRAG_MODEL_DIR": str(MODEL_DIR),
        "TENANTRAG_JWT_SECRET": SECRET,
        "TENANTRAG_METRICS_TOKEN": "bench-metrics-token-0123456789",  # distributed mode needs one
    }
    if redis:
        env["TENANTRAG_REDIS_URL"] = REDIS_URL
    return env


def copy_data(source: Path, rate_limit: int = 10_000_000) -> tuple[Path, str]:
    """A private copy of `source` whose tenant allows `rate_limit`/min (and budgets no bench
    reaches), and an admin token."""
    from tenantrag.auth import issue_token
    from tenantrag.backends.store.sqlite import SQLiteStore
    from tenantrag.models import ROLES

    target = Path(tempfile.mkdtemp(prefix="tenantrag-load-")) / "data"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("READY", "*.log", "audit*"))
    store = SQLiteStore(target / "tenantrag.db")
    store.open()
    # A bench must measure the service, not run into the tenant's monthly budgets: the copy
    # carries the ledger of its ingestion, and each scenario adds to it.
    store.update_tenant(
        TENANT, rate_limit=rate_limit, monthly_token_budget=10**12, monthly_cost_budget_usd=1e9
    )
    store.close()
    perms = {p.value for p in ROLES["admin"]}
    token = issue_token(SECRET, tenant_id=TENANT, user_id="bench", permissions=perms, ttl_s=86_400)
    return target, token


@contextlib.contextmanager
def server(data_dir: Path, workers: int, log: Path) -> Iterator[tuple[str, int]]:
    """A running `tenantrag serve` over `data_dir`: yields its base URL and process id."""
    port = free_port()
    command = [
        str(ROOT / ".venv" / "bin" / "tenantrag"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with log.open("ab") as sink:
        proc = subprocess.Popen(command, env=server_env(data_dir), stdout=sink, stderr=sink)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/ready", timeout=1.0).status_code == 200:
                    break
            time.sleep(0.3)
        else:
            raise RuntimeError(f"the server did not become ready in 120 s; see {log}")
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def flush_redis() -> None:
    """Empty the bench's Redis database (answer cache and rate-limit windows)."""
    subprocess.run(
        ["redis-cli", "-n", REDIS_URL.rsplit("/", 1)[1], "FLUSHDB"], check=True, capture_output=True
    )


def measure(
    data_dir: Path,
    token: str,
    *,
    workers: int,
    endpoint: str,
    cache: str,
    clients: int,
    args: argparse.Namespace,
    log: Path,
    rate: float | None = None,
) -> dict[str, object]:
    """One scenario on a fresh server (closed loop, or open loop at `rate` per second); its
    summary plus CPU per request and load average."""
    flush_redis()
    distinct = claims(seed=args.seed)
    queries = distinct if cache == "miss" else distinct[:1]
    limit = min(args.miss_requests, len(distinct)) if cache == "miss" else args.hit_requests
    warmup = titles(args.warmup, skip=clients) + ([] if cache == "miss" else queries)
    with server(data_dir, workers, log) as (base, pid):
        load_before = os.getloadavg()[0]
        asyncio.run(
            run_scenario(
                base,
                token,
                TENANT,
                endpoint=endpoint,
                queries=warmup,
                concurrency=clients,
                max_requests=len(warmup),
                max_seconds=args.seconds,
            )
        )
        cpu_before = tree_cpu_s(pid)
        result = asyncio.run(
            run_scenario(
                base,
                token,
                TENANT,
                endpoint=endpoint,
                queries=queries,
                concurrency=clients,
                max_requests=limit,
                max_seconds=args.seconds,
                rate=rate,
            )
        )
        cpu = tree_cpu_s(pid) - cpu_before
    return {
        "workers": workers,
        "endpoint": endpoint,
        "cache": cache,
        "clients": clients,
        "arrival": "closed" if rate is None else f"{rate:g}/s",
        **asdict(result),
        "server_cpu_ms_per_request": round(cpu * 1000 / max(1, result.requests), 2),
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def table(rows: list[dict[str, object]]) -> str:
    """The rows as a markdown table."""
    head = (
        "| workers | endpoint | cache | clients | arrival | requests | rps | p50 ms | p95 ms "
        "| p99 ms | errors | server CPU ms/req | load avg |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r['workers']} | {r['endpoint']} | {r['cache']} | {r['clients']}"
            f" | {r.get('arrival', 'closed')} | {r['requests']}"
            f" | {r['throughput_rps']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']}"
            f" | {r['error_rate']:.2%} | {r['server_cpu_ms_per_request']}"
            f" | {r['load_average_1m_before']} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the matrix (or the part named on the command line) and write JSON and a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load.json")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--endpoints", nargs="+", default=["search", "query"])
    parser.add_argument("--caches", nargs="+", default=["miss", "hit"])
    parser.add_argument(
        "--clients",
        type=int,
        nargs="*",
        default=[1, 8, 32],
        help="closed-loop client counts (none: skip the closed loop)",
    )
    parser.add_argument("--miss-requests", type=int, default=809, help="at most the 809 claims")
    parser.add_argument("--hit-requests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="cap per scenario")
    parser.add_argument("--warmup", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rates",
        type=float,
        nargs="*",
        default=[50.0, 100.0, 150.0],
        help="open-loop cache-miss arrival rates per second (none: skip)",
    )
    parser.add_argument(
        "--hit-rates",
        type=float,
        nargs="*",
        default=[100.0, 200.0, 400.0],
        help="open-loop cache-hit arrival rates per second, /api/query only (none: skip)",
    )
    parser.add_argument(
        "--open-clients",
        type=int,
        default=8,
        help="connections the open-loop scenarios may use at once",
    )
    args = parser.parse_args()
    if not (args.source / "tenantrag.db").exists():
        sys.exit(
            f"no data folder at {args.source}: run `.venv/bin/python bench/scifact.py prepare`"
        )
    data_dir, token = copy_data(args.source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.out.with_suffix(".server.log")
    # (workers, endpoint, cache, clients, open-loop rate or None), in the order they run
    plan: list[tuple[int, str, str, int, float | None]] = [
        (w, e, c, n, None)
        for w, e, c, n in itertools.product(args.workers, args.endpoints, args.caches, args.clients)
    ]
    plan += [
        (w, e, "miss", args.open_clients, r)
        for w, e, r in itertools.product(args.workers, args.endpoints, args.rates)
    ]
    if "query" in args.endpoints:
        plan += [
            (w, "query", "hit", args.open_clients, r)
            for w, r in itertools.product(args.workers, args.hit_rates)
        ]
    rows = []
    try:
        for workers, endpoint, cache, clients, rate in plan:
            row = measure(
                data_dir,
                token,
                workers=workers,
                endpoint=endpoint,
                cache=cache,
                clients=clients,
                args=args,
                log=log,
                rate=rate,
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
            args.out.write_text(json.dumps({"scenarios": rows}, indent=1) + "\n")
    finally:
        shutil.rmtree(data_dir.parent, ignore_errors=True)
    print(table(rows))


if __name__ == "__main__":
    main()
