"""Before and after: the same load scenarios against two versions of the code, interleaved.

The "before" side is a git revision exported with `git archive` into a temporary folder and
served with PYTHONPATH pointing at it (same .venv, same model, same data copy); the "after"
side is the working tree. Each round runs every scenario once per side, alternating, on a fresh
server each time (bench/load_matrix.py's `measure`), so drift in the machine's load hits both
sides alike. Reports server CPU per request (the figure least moved by contention) and the
latency percentiles. Run from the project root:

    .venv/bin/python -m bench.ab_compare --before 9253c62 --rounds 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.load_matrix import SOURCE, copy_data, measure

ROOT = Path(__file__).resolve().parent.parent


def export(revision: str) -> Path:
    """The `src` folder of `revision`, unpacked into a temporary directory."""
    target = Path(tempfile.mkdtemp(prefix="tenantrag-ab-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def main() -> None:
    """Run the rounds and print one JSON line per measurement, then a summary table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision of the 'before' side")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--endpoints", nargs="+", default=["search", "query"])
    parser.add_argument("--caches", nargs="+", default=["miss", "hit"])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ab.json")
    # measure() reads these from the load matrix's arguments
    parser.add_argument("--miss-requests", type=int, default=809)
    parser.add_argument("--hit-requests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.source / "tenantrag.db").exists():
        sys.exit(
            f"no data folder at {args.source}: run `.venv/bin/python bench/scifact.py prepare`"
        )
    before_src = export(args.before)
    data_dir, token = copy_data(args.source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.out.with_suffix(".server.log")
    rows: list[dict[str, object]] = []
    saved = os.environ.get("PYTHONPATH")
    try:
        for round_, (endpoint, cache) in itertools.product(
            range(args.rounds), itertools.product(args.endpoints, args.caches)
        ):
            for side in ("before", "after"):
                if side == "before":
                    os.environ["PYTHONPATH"] = str(before_src)
                elif saved is None:
                    os.environ.pop("PYTHONPATH", None)
                else:
                    os.environ["PYTHONPATH"] = saved
                row = measure(
                    data_dir,
                    token,
                    workers=args.workers,
                    endpoint=endpoint,
                    cache=cache,
                    clients=args.clients,
                    args=args,
                    log=log,
                )
                revision = args.before if side == "before" else "working tree"
                row |= {"side": side, "round": round_, "revision": revision}
                rows.append(row)
                print(json.dumps(row), flush=True)
                args.out.write_text(json.dumps({"measurements": rows}, indent=1) + "\n")
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
        shutil.rmtree(data_dir.parent, ignore_errors=True)
        shutil.rmtree(before_src.parent, ignore_errors=True)
    print("| endpoint | cache | side | server CPU ms/req (each round) | p50 ms | p95 ms | rps |")
    print("|---|---|---|---|---|---|---|")
    for endpoint, cache, side in itertools.product(
        args.endpoints, args.caches, ("before", "after")
    ):
        mine = [
            r for r in rows if (r["endpoint"], r["cache"], r["side"]) == (endpoint, cache, side)
        ]
        cells = [
            ", ".join(str(r[k]) for r in mine)
            for k in ("server_cpu_ms_per_request", "p50_ms", "p95_ms", "throughput_rps")
        ]
        print(f"| {endpoint} | {cache} | {side} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
