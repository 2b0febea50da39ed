"""Load generator: concurrent clients against a running tenantrag, bounded in requests and time.

Runs in its own process (asyncio + httpx), talks to 127.0.0.1 only, never sends more than
`--requests` requests and stops sending at `--seconds`; an answer still missing after the
request timeout (30 s, closed loop) or 10 s after the last arrival (open loop) is counted as an
error, so every run ends. Two ways to send:

- closed loop (the default): each client sends its next request as soon as its previous answer
  arrives, so throughput is what the server sustains at that concurrency, and by Little's law the
  mean latency is clients / throughput;
- open loop (`--rate R`): requests arrive at R per second (Poisson, seeded) whatever the server
  does, over at most `--concurrency` connections, and each latency is counted from the request's
  scheduled arrival, so time spent queued behind a slow server is measured, not hidden
  (no coordinated omission).

Example, against a server started with `tenantrag serve --port 8765`:

    .venv/bin/python -m bench.load --port 8765 --tenant scifact --token "$TOKEN" \\
        --endpoint search --concurrency 8 --requests 800 --seconds 30 --queries distinct

The scenario matrix (endpoints x concurrency x cache x workers, servers started and stopped
for you) is bench/load_matrix.py.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
PATHS = {"search": "/api/search", "query": "/api/query"}


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's way)."""
    if not samples:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Sample:
    """One request: when it started (s since the run began), how long it took (s), its status."""

    started: float
    seconds: float
    status: int  # 0 when the request failed before any response (connection error, timeout)
    error: str = ""  # the exception's class name when status is 0
    # open loop: seconds from the scheduled arrival until the request went out (the generator's
    # own lag and any wait for a free connection); part of `seconds`, 0 in the closed loop
    send_lag: float = 0.0


@dataclass
class Summary:
    """What one scenario measured."""

    requests: int
    errors: int
    error_rate: float
    wall_s: float
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    exceptions: dict[str, int] = field(default_factory=dict)
    send_lag_p50_ms: float = 0.0  # open loop: how late requests went out (see Sample)
    send_lag_p95_ms: float = 0.0


def summarize(samples: Sequence[Sample], wall_s: float) -> Summary:
    """Throughput, latency percentiles and error rate; any status other than 200 is an error."""
    ms = [s.seconds * 1000 for s in samples]
    lags = [s.send_lag * 1000 for s in samples]
    errors = sum(1 for s in samples if s.status != 200)
    n = len(samples)
    return Summary(
        requests=n,
        errors=errors,
        error_rate=errors / n if n else 0.0,
        wall_s=round(wall_s, 3),
        throughput_rps=round(n / wall_s, 1) if wall_s > 0 else 0.0,
        p50_ms=round(percentile(ms, 50), 2),
        p95_ms=round(percentile(ms, 95), 2),
        p99_ms=round(percentile(ms, 99), 2),
        mean_ms=round(sum(ms) / n, 2) if n else math.nan,
        max_ms=round(max(ms), 2) if n else math.nan,
        statuses=dict(Counter(str(s.status) for s in samples)),
        exceptions=dict(Counter(s.error for s in samples if s.error)),
        send_lag_p50_ms=round(percentile(lags, 50), 2) if n else 0.0,
        send_lag_p95_ms=round(percentile(lags, 95), 2) if n else 0.0,
    )


class Budget:
    """Hands out request slots until `max_requests` are taken or `max_seconds` have passed."""

    def __init__(self, max_requests: int, max_seconds: float) -> None:
        if max_requests < 1 or max_seconds <= 0:
            raise ValueError("max_requests must be at least 1 and max_seconds positive")
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.taken = 0
        self.started = time.perf_counter()

    def take(self, now: float | None = None) -> int | None:
        """The next request's index, or None when the budget is spent."""
        now = time.perf_counter() if now is None else now
        if self.taken >= self.max_requests or now - self.started >= self.max_seconds:
            return None
        self.taken += 1
        return self.taken - 1


def check_local(base_url: str) -> None:
    """Refuse any target but this machine: the generator is a bench tool, not a weapon."""
    host = httpx.URL(base_url).host
    if host not in LOCAL_HOSTS:
        raise ValueError(f"load tests only target 127.0.0.1, not {host!r}")


async def send(client: httpx.AsyncClient, path: str, body: dict[str, object]) -> tuple[int, str]:
    """POST `body` and read the whole answer: (status, "") or (0, the exception's class name)."""
    try:
        response = await client.post(path, json=body)
        await response.aread()
    except httpx.HTTPError as exc:
        return 0, type(exc).__name__
    return response.status_code, ""


async def drive(
    client: httpx.AsyncClient,
    path: str,
    bodies: Sequence[dict[str, object]],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
) -> tuple[list[Sample], float]:
    """Run `concurrency` closed-loop clients; request i sends bodies[i % len(bodies)]."""
    budget = Budget(max_requests, max_seconds)
    samples: list[Sample] = []

    async def one_client() -> None:
        while (i := budget.take()) is not None:
            started = time.perf_counter()
            status, error = await send(client, path, bodies[i % len(bodies)])
            done = time.perf_counter()
            samples.append(Sample(started - budget.started, done - started, status, error))

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return samples, time.perf_counter() - budget.started


async def drive_open(
    client: httpx.AsyncClient,
    path: str,
    bodies: Sequence[dict[str, object]],
    *,
    rate: float,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    seed: int = 0,
    drain_s: float = 10.0,
) -> tuple[list[Sample], float]:
    """Requests arriving at `rate` per second (Poisson), at most `concurrency` in flight; each
    latency runs from its scheduled arrival, including any wait for a free connection.

    Arrivals stop at `max_seconds` (or `max_requests`); requests still unanswered `drain_s`
    later are cancelled and counted as errors ("Unfinished"), so an overloaded server cannot
    keep the run going.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    budget = Budget(max_requests, max_seconds)
    samples: list[Sample] = []
    slots = asyncio.Semaphore(concurrency)
    gaps = random.Random(seed)

    async def one(i: int, scheduled: float) -> None:
        async with slots:
            sent = time.perf_counter()
            status, error = await send(client, path, bodies[i % len(bodies)])
        done = time.perf_counter()
        samples.append(
            Sample(scheduled - budget.started, done - scheduled, status, error, sent - scheduled)
        )

    tasks: dict[asyncio.Task[None], float] = {}  # in flight -> its scheduled arrival
    scheduled = budget.started
    while True:
        scheduled += gaps.expovariate(rate)
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if (i := budget.take(scheduled)) is None:
            break
        tasks[asyncio.create_task(one(i, scheduled))] = scheduled
    if tasks:
        _, unfinished = await asyncio.wait(tasks, timeout=drain_s)
        given_up = time.perf_counter()
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        samples.extend(
            Sample(tasks[t] - budget.started, given_up - tasks[t], 0, "Unfinished")
            for t in unfinished
        )
    return samples, time.perf_counter() - budget.started


def claims(limit: int | None = None, *, seed: int = 0) -> list[str]:
    """SciFact train claims (distinct texts), shuffled with `seed`."""
    with (SCIFACT / "queries_train.jsonl").open(encoding="utf-8") as handle:
        texts = list(dict.fromkeys(json.loads(line)["text"] for line in handle))
    random.Random(seed).shuffle(texts)
    return texts[:limit]


def titles(limit: int, *, skip: int = 0) -> list[str]:
    """SciFact abstract titles: warm-up queries that never collide with the claims."""
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as handle:
        rows = itertools.islice(handle, skip, skip + limit)
        return [json.loads(line)["title"] for line in rows]


def make_client(base_url: str, token: str, tenant: str, concurrency: int) -> httpx.AsyncClient:
    """A keep-alive client with one connection per simulated user."""
    check_local(base_url)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant},
        limits=limits,
        timeout=httpx.Timeout(30.0),
    )


async def run_scenario(
    base_url: str,
    token: str,
    tenant: str,
    *,
    endpoint: str,
    queries: Sequence[str],
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    warmup: Sequence[str] = (),
    rate: float | None = None,
    seed: int = 0,
) -> Summary:
    """Warm up on `warmup` (not measured, closed loop), then measure `endpoint` over `queries`:
    closed loop, or open loop at `rate` requests per second when given."""
    path = PATHS[endpoint]
    async with make_client(base_url, token, tenant, concurrency) as client:
        if warmup:
            await drive(
                client,
                path,
                [{"query": q} for q in warmup],
                concurrency=concurrency,
                max_requests=len(warmup),
                max_seconds=max_seconds,
            )
        bodies = [{"query": q} for q in queries]
        if rate is None:
            samples, wall = await drive(
                client,
                path,
                bodies,
                concurrency=concurrency,
                max_requests=max_requests,
                max_seconds=max_seconds,
            )
        else:
            samples, wall = await drive_open(
                client,
                path,
                bodies,
                rate=rate,
                concurrency=concurrency,
                max_requests=max_requests,
                max_seconds=max_seconds,
                seed=seed,
            )
    return summarize(samples, wall)


def main() -> None:
    """One scenario against a running server; prints its summary as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tenant", default="scifact")
    parser.add_argument("--token", default=os.environ.get("TENANTRAG_BENCH_TOKEN", ""))
    parser.add_argument("--endpoint", choices=sorted(PATHS), default="search")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: requests per second (default: closed loop)",
    )
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--queries",
        choices=["distinct", "repeat"],
        default="distinct",
        help="distinct texts (claims, then titles) or one claim repeated",
    )
    parser.add_argument("--warmup", type=int, default=50, help="distinct title queries first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    texts = claims(seed=args.seed)
    # distinct: the claims, then abstract titles past the warm-up ones, so a long run (a
    # profile) does not wrap around into cache hits after 809 requests
    queries = texts + titles(10_000, skip=args.warmup) if args.queries == "distinct" else texts[:1]
    summary = asyncio.run(
        run_scenario(
            f"http://127.0.0.1:{args.port}",
            args.token,
            args.tenant,
            endpoint=args.endpoint,
            queries=queries,
            concurrency=args.concurrency,
            max_requests=args.requests,
            max_seconds=args.seconds,
            warmup=titles(args.warmup),
            rate=args.rate,
            seed=args.seed,
        )
    )
    print(json.dumps(asdict(summary)))


if __name__ == "__main__":
    main()
