"""Soak: mixed traffic against a live server for a long time; does memory or fd use creep?

A `tenantrag serve --workers 2` over a fresh data folder and a private Redis takes searches,
queries (some streamed, many repeated, so the answer cache is used), ingests (ids drawn from a
small pool per tenant, so documents are replaced as well as added) and deletes across 20 tenants
of SciFact abstracts, at a steady rate. Every `--sample-s` seconds it records the resident
memory and open file descriptors of the server and each worker (from /proc), and the requests,
errors and latency of the window. At the end it says whether RSS stayed within 10 % of its
value at the end of warm-up and whether the fd count grew.

    .venv/bin/python -m bench.soak --minutes 30 --out /tmp/soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.faults.support import (
    RedisServer,
    create_tenant,
    headers_for,
    open_fds,
    pids_of,
    process_tree,
    rss_bytes,
    start_server,
)

SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "scifact"
OPERATIONS = {"search": 0.45, "query": 0.30, "ingest": 0.15, "delete": 0.10}


@dataclass
class Sample:
    """One reading of the server and of the traffic since the previous reading."""

    t_s: float
    rss_mb: float
    rss_by_pid_mb: dict[int, float]
    fds: int
    fds_by_kind: dict[str, int]  # by what they point at: a file's name, socket, pipe, other
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    load_1m: float
    memory_pressure: float  # /proc/pressure/memory "full avg10": share of time all tasks stalled


@dataclass
class Traffic:
    """Counters the workers share (one event loop, so no locks)."""

    requests: int = 0
    errors: int = 0  # 5xx answers and failed connections: the server's fault
    rejected: int = 0  # other unexpected answers (4xx): the traffic's or a policy's
    by_status: dict[str, int] = field(default_factory=dict)
    by_op: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def note(self, op: str, status: str, seconds: float, ok: bool, detail: str = "") -> None:
        """Count one request."""
        self.requests += 1
        self.by_op[op] = self.by_op.get(op, 0) + 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        self.latencies.append(seconds)
        if not ok:
            if status.isdigit() and int(status) < 500:
                self.rejected += 1
            else:
                self.errors += 1
            if len(self.error_samples) < 20:
                self.error_samples.append(f"{op} {status} {detail[:200]}")


def load_corpus(limit: int) -> list[dict[str, str]]:
    """The first `limit` SciFact abstracts as {"title", "text"}."""
    docs = []
    with (SCIFACT / "corpus.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            docs.append({"title": row["title"], "text": row["text"]})
            if len(docs) >= limit:
                break
    return docs


def load_claims(limit: int) -> list[str]:
    """The first `limit` SciFact training claims."""
    with (SCIFACT / "queries_train.jsonl").open() as f:
        return [json.loads(line)["text"] for _, line in zip(range(limit), f, strict=False)]


class Soak:
    """The traffic generator and sampler for one run."""

    def __init__(self, args: argparse.Namespace, base_url: str, tenants: list[str]) -> None:
        self.args, self.base_url = args, base_url
        self.headers = {t: headers_for(t) for t in tenants}
        self.live: dict[str, set[str]] = {t: set() for t in tenants}
        self.corpus = load_corpus(2000)
        self.claims = load_claims(200)
        self.traffic = Traffic()
        self.rng = random.Random(args.seed)

    async def seed(self, http: httpx.AsyncClient) -> None:
        """Give each tenant `--seed-docs` documents before the clock starts."""
        for tenant in self.headers:
            docs = [self._doc(i) for i in range(self.args.seed_docs)]
            r = await http.post(
                "/api/documents", headers=self.headers[tenant], json={"documents": docs}
            )
            r.raise_for_status()
            self.live[tenant] |= {d["id"] for d in docs}

    def _doc(self, slot: int) -> dict[str, str]:
        source = self.rng.choice(self.corpus)
        return {"id": f"doc-{slot}", "title": source["title"], "text": source["text"]}

    async def one(self, http: httpx.AsyncClient) -> None:
        """One request of a random kind for a random tenant."""
        tenant = self.rng.choice(list(self.headers))
        headers = self.headers[tenant]
        op = self.rng.choices(list(OPERATIONS), weights=list(OPERATIONS.values()))[0]
        if op == "delete" and not self.live[tenant]:
            op = "ingest"
        started = time.perf_counter()
        expected = {"search": 200, "query": 200, "ingest": 201, "delete": 204}[op]
        try:
            if op == "search":
                mode = self.rng.choice(["hybrid", "bm25", "vector"])
                body: dict[str, Any] = {"query": self.rng.choice(self.claims), "mode": mode}
                r = await http.post("/api/search", headers=headers, json=body)
            elif op == "query":
                # 40 questions per tenant: repeats hit the answer cache, as real traffic does.
                body = {
                    "query": self.rng.choice(self.claims[:40]),
                    "stream": self.rng.random() < 0.1,
                }
                r = await http.post("/api/query", headers=headers, json=body)
            elif op == "ingest":
                docs = [
                    self._doc(self.rng.randrange(self.args.id_pool))
                    for _ in range(self.rng.randint(1, 3))
                ]
                docs = list({d["id"]: d for d in docs}.values())
                r = await http.post("/api/documents", headers=headers, json={"documents": docs})
                if r.status_code == 201:
                    self.live[tenant] |= {d["id"] for d in docs}
            else:
                doc_id = self.rng.choice(sorted(self.live[tenant]))
                self.live[tenant].discard(doc_id)  # before the await: no second delete of it
                r = await http.delete(f"/api/documents/{doc_id}", headers=headers)
        except httpx.HTTPError as exc:
            seconds = time.perf_counter() - started
            self.traffic.note(op, type(exc).__name__, seconds, False, str(exc))
            return
        seconds = time.perf_counter() - started
        ok = r.status_code == expected
        self.traffic.note(op, str(r.status_code), seconds, ok, "" if ok else r.text)

    async def drive(self, http: httpx.AsyncClient, until: float) -> None:
        """Send requests at `--rate` per second (spread over the workers) until `until`."""
        interval = self.args.concurrency / self.args.rate
        while time.monotonic() < until:
            started = time.monotonic()
            await self.one(http)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


def sample(server_pid: int, began: float, traffic: Traffic, seen: list[int]) -> Sample:
    """Read the server's memory and fds and the traffic of the window since the last sample."""

    pids = process_tree(server_pid)
    by_pid = {p: rss_bytes(p) / 2**20 for p in pids}
    window = traffic.latencies[seen[1] :]
    requests, errors = traffic.requests - seen[0], traffic.errors - seen[2]
    seen[:] = [traffic.requests, len(traffic.latencies), traffic.errors]
    ordered = sorted(window) or [0.0]
    return Sample(
        t_s=round(time.monotonic() - began, 1),
        rss_mb=round(sum(by_pid.values()), 1),
        rss_by_pid_mb={p: round(v, 1) for p, v in by_pid.items()},
        fds=sum(open_fds(p) for p in pids),
        fds_by_kind=fd_kinds(pids),
        requests=requests,
        errors=errors,
        p50_ms=round(ordered[len(ordered) // 2] * 1000, 1),
        p95_ms=round(ordered[int(len(ordered) * 0.95)] * 1000, 1),
        load_1m=round(os.getloadavg()[0], 2),
        memory_pressure=memory_pressure(),
    )


def fd_kinds(pids: list[int]) -> dict[str, int]:
    """The processes' descriptors counted by target: the file's name, or socket, pipe, other."""
    kinds: dict[str, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            kind = (
                target.split(":")[0]
                if target.startswith(("socket:", "pipe:"))
                else (Path(target).name if target.startswith("/") else "other")
            )
            kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:12])


def memory_pressure() -> float:
    """The machine's memory stall share over the last 10 s (PSI), or -1 where unavailable."""
    try:
        full = Path("/proc/pressure/memory").read_text().splitlines()[1]
        return float(full.split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return -1.0


def worker_restarts(samples: list[Sample]) -> int:
    """How many worker pids appeared after the first sample: each is a worker that was replaced."""
    first = set(samples[0].rss_by_pid_mb)
    later = {p for s in samples[1:] for p in s.rss_by_pid_mb}
    return len(later - first)


def verdict(samples: list[Sample], warmup_fraction: float) -> dict[str, Any]:
    """Whether RSS stayed within 10 % of its post-warm-up value and the fd count stayed flat."""
    # A replaced worker starts cold: measure from the last change of the process set on.
    settled = max(
        (
            i
            for i in range(1, len(samples))
            if set(samples[i].rss_by_pid_mb) != set(samples[i - 1].rss_by_pid_mb)
        ),
        default=0,
    )
    warmup = max(1, round((len(samples) - settled) * warmup_fraction))
    start = min(len(samples) - 1, settled + warmup)
    base, after = samples[start], samples[start:]
    rss_growth = (max(s.rss_mb for s in after) - base.rss_mb) / base.rss_mb
    end_growth = (after[-1].rss_mb - base.rss_mb) / base.rss_mb
    quarter = max(1, len(after) // 4)
    early_fds = max(s.fds for s in after[:quarter])
    late_fds = max(s.fds for s in after[-quarter:])
    return {
        "worker_restarts": worker_restarts(samples),
        "measured_from_s": base.t_s,
        "rss_baseline_mb": base.rss_mb,
        "rss_max_after_warmup_mb": max(s.rss_mb for s in after),
        "rss_end_mb": after[-1].rss_mb,
        "rss_max_growth": round(rss_growth, 4),
        "rss_end_growth": round(end_growth, 4),
        "rss_flat_within_10pct": rss_growth <= 0.10,
        "fds_first_quarter_max": early_fds,
        "fds_last_quarter_max": late_fds,
        "fds_min": min(s.fds for s in after),
        "fds_max": max(s.fds for s in after),
        "fds_not_growing": late_fds <= early_fds,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start Redis and the server, seed the tenants, drive and sample, stop; the report."""
    root = Path(tempfile.mkdtemp(prefix="tenantrag-soak-"))
    with RedisServer() as redis:
        env = {"TENANTRAG_REDIS_URL": redis.url(0)}
        server = start_server(root / "data", env=env, workers=args.workers, log=root / "server.log")
        try:
            tenants = [create_tenant(root / "data", prefix="soak") for _ in range(args.tenants)]
            soak = Soak(args, server.base_url, tenants)
            limits = httpx.Limits(max_connections=args.concurrency * 2)
            async with httpx.AsyncClient(
                base_url=server.base_url, timeout=60, limits=limits
            ) as http:
                await soak.seed(http)
                began = time.monotonic()
                until = began + args.minutes * 60
                samples: list[Sample] = []
                seen = [0, 0, 0]

                async def sampler() -> None:
                    while True:
                        samples.append(sample(server.process.pid, began, soak.traffic, seen))
                        line = asdict(samples[-1]) | {"rss_by_pid_mb": None, "fds_by_kind": None}
                        print(json.dumps(line), flush=True)
                        if time.monotonic() >= until:
                            return
                        await asyncio.sleep(min(args.sample_s, max(0.0, until - time.monotonic())))

                async with asyncio.TaskGroup() as tg:
                    tg.create_task(sampler())
                    for _ in range(args.concurrency):
                        tg.create_task(soak.drive(http, until))
            pids = pids_of(server)
        finally:
            server.stop()
            exit_code = server.process.returncode
    t = soak.traffic
    return {
        "command": "python -m bench.soak "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "server_pids": pids,
        "exit_code": exit_code,
        "requests": t.requests,
        "errors": t.errors,
        "error_rate": round(t.errors / max(1, t.requests), 5),
        "rejected_4xx": t.rejected,
        "by_status": t.by_status,
        "by_op": t.by_op,
        "error_samples": t.error_samples,
        "latency_p50_ms": round(statistics.median(t.latencies) * 1000, 1) if t.latencies else 0,
        "verdict": verdict(samples, args.warmup_fraction),
        "samples": [asdict(s) for s in samples],
    }


def main() -> None:
    """Parse the flags, run the soak, print and save the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=15.0, help="requests per second in all")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--seed-docs", type=int, default=20)
    parser.add_argument("--id-pool", type=int, default=60, help="document ids per tenant")
    parser.add_argument("--warmup-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("/tmp/tenantrag-soak.json"))
    args = parser.parse_args()
    report = asyncio.run(run(args))
    args.out.write_text(json.dumps(report, indent=2))
    summary = {k: v for k, v in report.items() if k != "samples"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
