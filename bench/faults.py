"""Faults at scale: the slow versions of tests/faults, against live `tenantrag serve` processes.

Scenarios (each on a fresh data folder; all traffic on 127.0.0.1; every loop bounded):

- redis: Redis SIGKILLed a third of the way through --requests mixed searches and queries, back
  on its port at two thirds. Error rate, answers served without rate limiting, seconds until the
  answer cache hits again.
- llm: the model answering 500, 429 or hanging, --llm-requests queries each, then recovering.
  Degraded answers, 5xx seen, upstream calls while the breaker is open, first good answer.
- kill9: --rounds rounds of ingest, SIGKILL at a random moment, restart. Acknowledged documents
  lost (must be 0), whether the batch in flight was all-or-nothing, SQLite integrity.
- disk: the data folder on a 64 MB tmpfs, filled while searches and ingests run. Statuses seen,
  recovery after space is freed, integrity.
- sigterm: --inflight queries waiting 3 s on the model when SIGTERM arrives. How many completed,
  the exit code, seconds to exit.

    .venv/bin/python -m bench.faults --out /tmp/faults.json            # all, about 10 minutes
    .venv/bin/python -m bench.faults --only redis,kill9
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from tests.faults.support import (
    RedisServer,
    Server,
    create_tenant,
    headers_for,
    kill9,
    start_server,
)

from tenantrag.testing import CHAT_PATH, Behaviour, Fail, Hang, OpenAIStandIn, Reply

DOCS = [
    {"id": f"d{i}", "text": f"Item {i}: the parking garage on level {i} opens at {i + 6} am."}
    for i in range(20)
]
QUESTIONS = [f"When does the garage on level {i} open?" for i in range(20)]
Report = dict[str, Any]


def chat_calls(api: OpenAIStandIn) -> int:
    """Chat completion requests the stand-in received."""
    return sum(r.path == CHAT_PATH for r in list(api.recorded))


def fresh_dir(name: str) -> Path:
    """A new folder under /tmp for one scenario."""
    return Path(tempfile.mkdtemp(prefix=f"tenantrag-{name}-"))


async def mixed_load(
    base_url: str,
    headers: dict[str, str],
    total: int,
    concurrency: int,
    progress: list[int],
    statuses: Counter[str],
    unlimited: list[int],
) -> None:
    """`total` searches and queries; counts statuses, and answers without RateLimit headers."""

    async def worker(start: int, http: httpx.AsyncClient) -> None:
        for n in range(start, total, concurrency):
            body = {"query": QUESTIONS[n % len(QUESTIONS)]}
            path = "/api/query" if n % 3 == 0 else "/api/search"
            try:
                r = await http.post(path, headers=headers, json=body)
                statuses[str(r.status_code)] += 1
                unlimited[0] += r.is_success and "ratelimit" not in r.headers
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
            progress[0] += 1

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await asyncio.gather(*(worker(i, http) for i in range(concurrency)))


def redis_outage(args: argparse.Namespace) -> Report:
    """Kill Redis under load and bring it back; errors, fail-open answers, cache recovery."""
    root = fresh_dir("redis")
    with RedisServer() as redis:
        server = start_server(
            root / "data",
            env={"TENANTRAG_REDIS_URL": redis.url()},
            workers=2,
            log=root / "server.log",
        )
        try:
            headers = headers_for(create_tenant(root / "data", rate_limit=10_000_000))
            httpx.post(
                f"{server.base_url}/api/documents",
                headers=headers,
                json={"documents": DOCS},
                timeout=120,
            ).raise_for_status()
            statuses: Counter[str] = Counter()
            progress, unlimited, marks = [0], [0], {}

            async def run() -> None:
                load = asyncio.create_task(
                    mixed_load(
                        server.base_url, headers, args.requests, 8, progress, statuses, unlimited
                    )
                )
                while progress[0] < args.requests // 3:  # noqa: ASYNC110  # a counter, polled
                    await asyncio.sleep(0.01)
                await asyncio.to_thread(redis.kill)
                marks["killed"] = time.monotonic()
                while progress[0] < 2 * args.requests // 3:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                await asyncio.to_thread(redis.start)
                marks["restarted"] = time.monotonic()
                await load

            asyncio.run(run())
            cache_back = _seconds_until(lambda: _cached(server.base_url, headers), 60)
            errors = sum(n for s, n in statuses.items() if not s.startswith("2"))
            return {
                "requests": args.requests,
                "statuses": dict(statuses),
                "error_rate": round(errors / args.requests, 5),
                "served_without_rate_limit": unlimited[0],
                "outage_s": round(marks["restarted"] - marks["killed"], 2),
                "cache_hits_again_after_s": cache_back,
            }
        finally:
            server.stop()


def _cached(base_url: str, headers: dict[str, str]) -> bool:
    body = {"query": "When does the garage on level 3 open? (after the outage)"}
    r = httpx.post(f"{base_url}/api/query", headers=headers, json=body, timeout=60)
    return bool(r.json().get("cached"))


def _seconds_until(predicate: Callable[[], bool], limit_s: float) -> float | None:
    """Seconds until `predicate()` holds (polled every 0.25 s), None after `limit_s`."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if predicate():
            return round(time.monotonic() - start, 2)
        time.sleep(0.25)
    return None


def llm_outage(args: argparse.Namespace) -> Report:
    """Each fault for --llm-requests queries, then recovery; degraded answers and breaker calls."""
    report: Report = {}
    faults: dict[str, Behaviour] = {
        "500": Fail(500),
        "429": Fail(429, retry_after=1),
        "hang": Hang(5),
    }
    for name, fault in faults.items():
        root = fresh_dir(f"llm-{name}")
        with OpenAIStandIn(default=fault) as api:
            env = {
                "TENANTRAG_LLM__PROVIDER": "openai",
                "TENANTRAG_LLM__BASE_URL": api.base_url,
                "TENANTRAG_LLM__MODEL": "gpt-4o-mini",
                "TENANTRAG_LLM__TIMEOUT_S": "1",
                "TENANTRAG_LLM__BREAKER_RESET_S": "5",
                "TENANTRAG_LLM__BACKOFF_INITIAL_S": "0.1",
                "TENANTRAG_LLM__BACKOFF_MAX_S": "1",
            }
            server = start_server(root / "data", env=env, log=root / "server.log")
            try:
                report[name] = _llm_phases(server.base_url, api, root, args.llm_requests)
            finally:
                server.stop()
    return report


def _llm_phases(base_url: str, api: OpenAIStandIn, root: Path, n: int) -> Report:
    headers = headers_for(create_tenant(root / "data"))
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as http:
        http.post("/api/documents", json={"documents": DOCS}).raise_for_status()
        statuses, degraded, latencies = Counter[int](), 0, []
        for i in range(n):
            started = time.perf_counter()
            r = http.post("/api/query", json={"query": f"{QUESTIONS[i % 20]} ({i})"})
            latencies.append(time.perf_counter() - started)
            statuses[r.status_code] += 1
            degraded += r.status_code == 200 and r.json()["degraded"]
        calls_during = chat_calls(api)
        api.default = Reply()

        def good_answer() -> bool:
            body = {"query": f"When does level 1 open, at {time.time()}?"}
            return not http.post("/api/query", json=body).json()["degraded"]

        recovered = _seconds_until(good_answer, 60)
    latencies.sort()
    return {
        "queries": n,
        "statuses": dict(statuses),
        "degraded": degraded,
        "upstream_calls_during_outage": calls_during,
        "p50_ms": round(latencies[n // 2] * 1000, 1),
        "first_good_answer_after_s": recovered,
    }


def kill9_ingest(args: argparse.Namespace) -> Report:
    """Rounds of ingest cut by SIGKILL at a random moment; acknowledged documents lost."""
    root, rng = fresh_dir("kill9"), random.Random(9)
    data = root / "data"
    data.mkdir(parents=True)
    tenant = create_tenant(data)
    headers, acked, rounds = headers_for(tenant), list[str](), list[Report]()
    for round_no in range(args.rounds):
        started = time.monotonic()
        server = start_server(data, log=root / f"server-{round_no}.log")
        ready_s = round(time.monotonic() - started, 2)
        cut = _ingest_until_killed(server, headers, round_no, acked, rng.uniform(1.0, 6.0))
        rounds.append({"ready_s": ready_s, "acked_total": len(acked), "cut_batch": cut})
    server = start_server(data, log=root / "server-final.log")
    try:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
            lost = [d for d in acked if http.get(f"/api/documents/{d}").status_code != 200]
            unsearchable = [
                d for d in rng.sample(acked, min(200, len(acked))) if not _found(http, d)
            ]
            present = {
                b: sum(http.get(f"/api/documents/{b}d{i}").is_success for i in range(4))
                for b in {str(r["cut_batch"]) for r in rounds}
            }
            partial = [b for b, n in present.items() if 0 < n < 4]
    finally:
        server.stop()
    with sqlite3.connect(data / "tenantrag.db") as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    return {
        "rounds": rounds,
        "acknowledged": len(acked),
        "lost": len(lost),
        "unsearchable_of_200_sampled": len(unsearchable),
        "partial_batches": partial,
        "sqlite_integrity": integrity,
    }


def _ingest_until_killed(
    server: Server, headers: dict[str, str], r: int, acked: list[str], kill_after_s: float
) -> str:
    """Post batches of four from a thread; SIGKILL after `kill_after_s`. The batch in flight."""
    stop, in_flight = threading.Event(), [""]

    def ingest() -> None:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
            for b in range(10_000):
                if stop.is_set():
                    return
                docs = [
                    {
                        "id": f"r{r}b{b}d{i}",
                        "text": f"Round {r} batch {b} note {i}: token{r}x{b}x{i} was filed.",
                    }
                    for i in range(4)
                ]
                in_flight[0] = f"r{r}b{b}"
                try:
                    resp = http.post("/api/documents", json={"documents": docs})
                except httpx.HTTPError:
                    return
                if resp.status_code != 201:
                    return
                acked.extend(d["id"] for d in docs)

    thread = threading.Thread(target=ingest)
    thread.start()
    time.sleep(kill_after_s)
    kill9(server)
    stop.set()
    thread.join(timeout=60)
    return in_flight[0]


def _found(http: httpx.Client, doc_id: str) -> bool:
    r, b, i = doc_id[1:].replace("b", " ").replace("d", " ").split()
    body = {"query": f"token{r}x{b}x{i}", "mode": "bm25", "top_k": 1}
    hits = http.post("/api/search", json=body).json()["results"]
    return bool(hits) and hits[0]["document_id"] == doc_id


def disk_full(args: argparse.Namespace) -> Report:
    """Fill the data folder's tmpfs under load; what clients saw, and recovery afterwards."""
    root = fresh_dir("disk")
    mount = root / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    try:
        server = start_server(mount / "data", log=root / "server.log")
        try:
            headers = headers_for(create_tenant(mount / "data"))
            statuses: Counter[str] = Counter()
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
                http.post("/api/documents", json={"documents": DOCS}).raise_for_status()
                filler = mount / "filler"
                with filler.open("wb") as f, _suppress_enospc():
                    while True:
                        f.write(b"\0" * 65536)
                for i in range(args.disk_requests):
                    kind = ("search", "query", "ingest")[i % 3]
                    if kind == "ingest":
                        doc = {"id": f"full{i}", "text": f"Written while the disk was full {i}."}
                        r = http.post("/api/documents", json={"documents": [doc]})
                    else:
                        r = http.post(f"/api/{kind}", json={"query": QUESTIONS[i % 20]})
                    statuses[f"{kind} {r.status_code}"] += 1
                filler.unlink()
                doc = {"id": "after", "text": "Written after space was freed."}
                after = http.post("/api/documents", json={"documents": [doc]}).status_code
                intact = all(http.get(f"/api/documents/{d['id']}").status_code == 200 for d in DOCS)
        finally:
            server.stop()
        with sqlite3.connect(mount / "data" / "tenantrag.db") as db:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    return {
        "statuses_while_full": dict(statuses),
        "ingest_after_freeing": after,
        "earlier_documents_intact": intact,
        "sqlite_integrity": integrity,
    }


class _suppress_enospc:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        return isinstance(exc, OSError)


def sigterm_drain(args: argparse.Namespace) -> Report:
    """SIGTERM with --inflight slow queries running: completed, exit code, seconds to exit."""
    root = fresh_dir("sigterm")
    with RedisServer() as redis, OpenAIStandIn(default=Hang(3.0)) as api:
        env = {
            "TENANTRAG_LLM__PROVIDER": "openai",
            "TENANTRAG_LLM__BASE_URL": api.base_url,
            "TENANTRAG_LLM__MODEL": "gpt-4o-mini",
            "TENANTRAG_LLM__TIMEOUT_S": "10",
            "TENANTRAG_REDIS_URL": redis.url(),
        }
        server = start_server(root / "data", env=env, workers=2, log=root / "server.log")
        headers = headers_for(create_tenant(root / "data"))
        httpx.post(
            f"{server.base_url}/api/documents",
            headers=headers,
            json={"documents": DOCS},
            timeout=120,
        ).raise_for_status()
        outcomes: Counter[str] = Counter()

        def ask(i: int) -> None:
            try:
                r = httpx.post(
                    f"{server.base_url}/api/query",
                    headers=headers,
                    json={"query": f"{QUESTIONS[i % 20]} #{i}"},
                    timeout=60,
                )
                outcomes[str(r.status_code)] += 1
            except httpx.HTTPError as exc:
                outcomes[type(exc).__name__] += 1

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(args.inflight)]
        for t in threads:
            t.start()
        _seconds_until(lambda: chat_calls(api) >= args.inflight, 60)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=60)
        exit_s = time.monotonic() - started
        for t in threads:
            t.join(timeout=60)
    return {
        "in_flight": args.inflight,
        "reached_the_model": chat_calls(api),
        "outcomes": dict(outcomes),
        "exit_code": code,
        "seconds_to_exit": round(exit_s, 2),
    }


SCENARIOS = {
    "redis": redis_outage,
    "llm": llm_outage,
    "kill9": kill9_ingest,
    "disk": disk_full,
    "sigterm": sigterm_drain,
}


def main() -> None:
    """Run the chosen scenarios; print and save their reports."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--llm-requests", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--disk-requests", type=int, default=150)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("/tmp/tenantrag-faults.json"))
    args = parser.parse_args()
    reports: Report = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count()}
    for name in args.only.split(","):
        started = time.monotonic()
        reports[name] = SCENARIOS[name](args)
        reports[name]["seconds"] = round(time.monotonic() - started, 1)
        reports[name]["load_1m_after"] = round(os.getloadavg()[0], 2)
        print(json.dumps({name: reports[name]}), flush=True)
    args.out.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
