"""The hot path in CPU time: server CPU seconds per request against E in CPU seconds.

bench/hot_path_ratios.py measures wall time, which a busy machine inflates for the server and
the floor alike but not by the same factor. This one measures what a change can be judged by
on a shared machine: the CPU time `tenantrag serve` (one worker, no Redis, 1,000 SciFact
documents) spends per request, one client sending questions no cache has seen, against the
CPU time of the floor E (one fp32 MiniLM query embedding on one onnxruntime thread). On a
quiet machine the wall ratios follow: with one client, a request's latency is its CPU time
plus the hand-offs; at saturation the model's share of the cores is at most E / (CPU per
search), since every search spends one E in the model.

    search CPU / E    goal of the wall ratio <= 1.5 (so: well under it)
    query CPU / E     (p95 wall goal <= 3)
    E / search CPU    the model's share when the cores are saturated, goal >= 60%

With `--profile` it also records the server with py-spy during the search phase (samples of
threads on the CPU only) and prints the busiest frames. Run from the project root:

    .venv/bin/python -m bench.hot_path_cpu [--requests 400] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
from bench.hot_path_ratios import default_precision, prepared, questions, serve, token
from bench.load_matrix import MODEL_DIR, TENANT, tree_cpu_s

ROOT = Path(__file__).resolve().parent.parent
PY_SPY = ROOT / ".venv" / "bin" / "py-spy"


class Floor:
    """The floor E, timed in blocks between the server's, so both see the same machine."""

    def __init__(self, texts: Iterator[str]) -> None:
        from tenantrag.backends.embedding.onnx import OnnxEmbedder, prepare_model

        self.model = OnnxEmbedder(prepare_model(MODEL_DIR), threads=1)
        self.texts = texts
        self.cpu: list[float] = []
        self.wall: list[float] = []
        for _ in range(20):
            self.model.embed([next(self.texts)])  # warm up

    def block(self, n: int) -> float:
        """Time `n` embeddings; the block's median CPU seconds per embedding."""
        cpu = []
        for _ in range(n):
            text = next(self.texts)
            c0, w0 = time.thread_time(), time.perf_counter()
            self.model.embed([text])
            cpu.append(time.thread_time() - c0)
            self.wall.append(time.perf_counter() - w0)
        self.cpu.extend(cpu)
        return statistics.median(cpu)


async def sequential(client: httpx.AsyncClient, path: str, texts: list[str]) -> None:
    """Send `texts` one at a time; every answer must be 200 (or a claim the screen blocks)."""
    for text in texts:
        response = await client.post(path, json={"query": text, "top_k": 5})
        if response.status_code == 400 and "prompt_injection" in response.text:
            print(f"blocked as an injection: {text[:60]!r}")
            continue
        response.raise_for_status()


def cpu_per_request(url: str, pid: int, path: str, texts: list[str]) -> float:
    """Server CPU seconds per request over `texts`, sent one at a time."""

    async def run() -> float:
        headers = {"Authorization": f"Bearer {token()}", "X-Tenant-ID": TENANT}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
            before = tree_cpu_s(pid)
            await sequential(client, path, texts)
            return (tree_cpu_s(pid) - before) / len(texts)

    return asyncio.run(run())


def top_frames(raw: Path, n: int = 40) -> str:
    """The frames seen in most samples (inclusive), and the leaves (exclusive)."""
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
        leaves[frames[-1]] += int(count)
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"{c / total:6.1%}  {f}" for f, c in inclusive.most_common(n)]
    lines += ["", "leaves:"]
    lines += [f"{c / total:6.1%}  {f}" for f, c in leaves.most_common(n)]
    return "\n".join(lines)


def main() -> None:
    """Prepare (once), serve, measure CPU per request and E in alternating rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=100, help="per endpoint and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--profile", action="store_true", help="py-spy one more search round")
    parser.add_argument("--endpoint", choices=["search", "query"], default="search")
    parser.add_argument("--query-precision", choices=["fp32", "int8"], default=default_precision())
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hot_cpu.json")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    source = prepared(args.docs)
    texts = questions()
    floor = Floor(f"{t} (floor)" for t in questions())
    rounds: list[dict[str, float]] = []
    profile = None
    with tempfile.TemporaryDirectory(prefix="tenantrag-cpu-") as tmp:
        data_dir = Path(tmp) / "data"
        shutil.copytree(source, data_dir, ignore=shutil.ignore_patterns("audit*", "*.log"))
        log = args.out.with_suffix(".server.log")
        with serve(data_dir, log, query_precision=args.query_precision) as (url, pid):
            warm = [next(texts) for _ in range(args.warmup)]
            cpu_per_request(url, pid, "/api/search", warm)
            cpu_per_request(url, pid, "/api/query", warm[: args.warmup // 2])
            for _ in range(args.rounds):
                e = floor.block(args.requests // 2)
                search = cpu_per_request(
                    url, pid, "/api/search", [next(texts) for _ in range(args.requests)]
                )
                query = cpu_per_request(
                    url, pid, "/api/query", [next(texts) for _ in range(args.requests)]
                )
                e = (e + floor.block(args.requests // 2)) / 2
                rounds.append({"e_cpu_s": e, "search_cpu_s": search, "query_cpu_s": query})
            if args.profile:
                profile = spy(
                    url,
                    pid,
                    f"/api/{args.endpoint}",
                    [next(texts) for _ in range(args.requests)],
                    args.out,
                )
    search_e = statistics.median(r["search_cpu_s"] / r["e_cpu_s"] for r in rounds)
    query_e = statistics.median(r["query_cpu_s"] / r["e_cpu_s"] for r in rounds)
    e_cpu = statistics.median(floor.cpu)
    result = {
        "e_cpu_s": e_cpu,
        "e_wall_s": statistics.median(floor.wall),
        "rounds": rounds,
        "ratios": {
            "search_cpu_over_e": search_e,
            "query_cpu_over_e": query_e,
            "model_share_bound": 1 / search_e,
        },
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"E: {e_cpu * 1000:.2f} ms CPU ({statistics.median(floor.wall) * 1000:.2f} ms wall)")
    for r in rounds:
        print(
            f"  round: E {r['e_cpu_s'] * 1000:.2f} ms, search {r['search_cpu_s'] * 1000:.2f} ms,"
            f" query {r['query_cpu_s'] * 1000:.2f} ms"
        )
    print(f"search: {search_e:.2f} E of CPU per request (median of rounds)")
    print(f"query:  {query_e:.2f} E of CPU per request")
    print(f"model share bound at saturation: {1 / search_e:.0%}")
    if profile:
        print(profile)


def spy(url: str, pid: int, path: str, texts: list[str], out: Path) -> str:
    """py-spy the server while it answers `texts`; its busiest frames."""
    raw = out.with_suffix(".profile.txt")
    command = [str(PY_SPY), "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
    recorder = subprocess.Popen(
        [*command, "--output", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)  # py-spy attaches
    cpu_per_request(url, pid, path, texts)
    recorder.send_signal(signal.SIGINT)
    recorder.wait(timeout=60)
    return top_frames(raw)


if __name__ == "__main__":
    main()
