"""Answer quality of /api/query's default (extractive) answerer on COVID-QA dev, with its curve.

Loads ../shared/data/qa/covid_qa_dev.json into tenant `covidqa` of a data folder (default
.cache/bench/covidqa; the articles are ingested once and reused), then runs the same code as
`tenantrag eval-answers`: every question through the /api/query stages in process, scored
SQuAD-style, for all articles and the two halves split by article (tune: the weights and the
refusal threshold were chosen on it; check: the other half, to see overfitting). The benign
questions of the prompt-injection set (label 0, ending in "?") are asked too, as off-topic
questions the articles do not answer: refusing them is right, and the curve shows both sides.
The held-out half of COVID-QA (../shared/heldout) is never read.

With --http the answerable questions are then asked again from outside, the way a client asks:
`tenantrag serve` (one worker) on a free local port, one client, POST /api/query with the
default top_k, the refusal threshold the server ships with. With --before REV the same is done
for that git revision's code (exported as bench/ab_compare.py does), passes alternating. With
--untitled the articles are posted without their titles (as a client posting only the text
does), into their own data folder (default .cache/bench/covidqa_untitled). Run from the project
root:

    .venv/bin/python -m bench.answers --http --out bench/results/answers.json
    .venv/bin/python -m bench.answers --http --before 1bb57ee --rounds 2
    .venv/bin/python -m bench.answers --untitled
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"  # --data: another checkout's layout (a worktree's)
DATASET = Path("qa") / "covid_qa_dev.json"
INJECTION = Path("prompt_injection") / "deepset_train.jsonl"
FOLDER = ROOT / ".cache" / "bench" / "covidqa"
MODEL_DIR = ROOT / ".cache" / "models"
TENANT = "covidqa"
SECRET = secrets.token_urlsafe(32)  # this run's own signing key, for its own server only


def off_topic_file(folder: Path, data: Path = SHARED) -> Path:
    """The benign questions of the injection set (label 0, ending in '?') as JSONL."""
    target = folder / "off_topic.jsonl"
    lines = (data / INJECTION).read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    questions = [r["text"] for r in rows if r["label"] == 0 and r["text"].strip().endswith("?")]
    target.write_text("".join(json.dumps({"text": q}) + "\n" for q in questions))
    return target


def run(
    folder: Path, data: Path = SHARED, clearance: str = "internal", *, untitled: bool = False
) -> Any:
    """The benchmark run over `folder` (the tenant is created and loaded when missing).

    `untitled`: the articles are posted without titles (`folder` must not hold them titled).
    """
    from tenantrag.backends.store.sqlite import SQLiteStore
    from tenantrag.evaluation_answers import load_off_topic, load_squad
    from tenantrag.evaluation_answers_run import evaluate_answers
    from tenantrag.models import Classification, Tenant
    from tenantrag.services import build_corpus
    from tenantrag.settings import Settings

    folder.mkdir(parents=True, exist_ok=True)
    model_dir = Path(os.environ.get("TENANTRAG_MODEL_DIR", MODEL_DIR))
    settings = Settings(data_dir=folder, model_dir=model_dir)
    store = SQLiteStore(settings.db_path)
    store.open()
    tenant = store.get_tenant(TENANT)
    if tenant is None:
        r = settings.retrieval
        tenant = store.create_tenant(
            Tenant(
                id=TENANT,
                bm25_weight=r.bm25_weight,
                vector_weight=r.vector_weight,
                fusion=r.fusion,
                rate_limit=100_000,
            )
        )
    corpus = build_corpus(settings, store)
    squad = load_squad(data / DATASET)
    if untitled:
        squad = [dataclasses.replace(a, title="") for a in squad]
    articles = [*squad, load_off_topic(off_topic_file(folder, data))]
    level = Classification.parse(clearance)
    return asyncio.run(evaluate_answers(settings, store, corpus, tenant, articles, clearance=level))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ask_served(
    folder: Path,
    passages: dict[str, bool],
    src: Path | None = None,
    data: Path = SHARED,
    clearance: str = "internal",
) -> list[dict[str, Any]]:
    """Ask every answerable question of a served /api/query, one client; one row each.

    The server is `tenantrag serve` (one worker) over `folder`, from the working tree or, with
    `src`, from that exported source tree. Whether a refusal was wrong uses the in-process
    run's passages for the same question (`passages`: question id -> gold in the top five).
    Each row also has the server's CPU time over the whole pass, divided by the requests.
    """
    import httpx

    from tenantrag.auth import issue_token
    from tenantrag.backends.llm.prompt import is_no_answer
    from tenantrag.evaluation_answers import contains_gold, load_squad, token_f1
    from tenantrag.models import Classification

    port = _free_port()
    env = os.environ | {
        "TENANTRAG_DATA_DIR": str(folder),
        "TENANTRAG_JWT_SECRET": SECRET,
        "TENANTRAG_LOG_LEVEL": "WARNING",
        "TENANTRAG_MODEL_DIR": str(MODEL_DIR),
    }
    env.pop("TENANTRAG_REDIS_URL", None)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    server = subprocess.Popen(
        [sys.executable, "-m", "tenantrag.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    token = issue_token(
        SECRET,
        tenant_id=TENANT,
        user_id="bench",
        permissions=["query"],
        clearance=Classification.parse(clearance),
    )
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": TENANT}
    rows: list[dict[str, Any]] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _wait_until_up(client)
            questions = [(a, q) for a in load_squad(data / DATASET) for q in a.questions]
            client.post("/api/query", headers=headers, json={"query": "warm up the model"})
            cpu_before = _cpu_s(server.pid)
            for article, question in questions:
                started = time.perf_counter()
                r = client.post("/api/query", headers=headers, json={"query": question.text})
                took = (time.perf_counter() - started) * 1000
                answer = r.json().get("answer", "") if r.status_code == 200 else ""
                refused = r.status_code != 200 or is_no_answer(answer)
                rows.append(
                    {
                        "id": question.id,
                        "split": article.split,
                        "status": r.status_code,
                        "ms": took,
                        "refused": refused,
                        "gold": not refused and contains_gold(answer, question.answers),
                        "f1": 0.0 if refused else token_f1(answer, question.answers),
                        "wrong_refusal": refused and passages.get(question.id, False),
                        "words": len(answer.split()),
                    }
                )
            cpu_ms = (_cpu_s(server.pid) - cpu_before) * 1000 / max(1, len(rows))
    finally:
        server.terminate()
        server.wait(timeout=30)
    for row in rows:
        row["server_cpu_ms"] = cpu_ms
    return rows


def _wait_until_up(client: Any) -> None:
    import httpx

    for _ in range(600):  # up to 60 s for the model and indexes to load
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not come up within 60 s")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Scores and client latency per split, from ask_served's rows."""
    out: dict[str, Any] = {}
    for name in ("all", "tune", "check"):
        chosen = [r for r in rows if name == "all" or r["split"] == name]
        n = len(chosen) or 1
        ms = sorted(r["ms"] for r in chosen)
        out[name] = {
            "questions": len(chosen),
            "contains_gold": sum(r["gold"] for r in chosen) / n,
            "f1": sum(r["f1"] for r in chosen) / n,
            "refusals": sum(r["refused"] for r in chosen) / n,
            "wrong_refusals": sum(r["wrong_refusal"] for r in chosen) / n,
            "words": statistics.fmean(r["words"] for r in chosen if not r["refused"]),
            "p50_ms": statistics.median(ms) if ms else 0.0,
            "p95_ms": ms[max(0, -(-len(ms) * 95 // 100) - 1)] if ms else 0.0,
            "server_cpu_ms": statistics.fmean(r["server_cpu_ms"] for r in chosen),
            "errors": sum(r["status"] != 200 for r in chosen),
        }
    return out


def over_http(
    folder: Path,
    run_result: Any,
    before: str | None,
    rounds: int,
    data: Path = SHARED,
    clearance: str = "internal",
) -> dict[str, dict[str, Any]]:
    """The served figures of this tree ('after') and, with `before`, of that git revision,
    alternating pass by pass so the machine's changing load hits both alike."""
    from bench.ab_compare import export

    passages = {o.question_id: o.gold_in_passages for o in run_result.outcomes}
    sides: dict[str, Path | None] = {"after": None}
    if before is not None:
        sides["before"] = export(before)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, src in sides.items():
            rows[name] += ask_served(folder, passages, src, data, clearance)
    return {name: summarise(side) for name, side in rows.items()}


def main() -> None:
    """Run, print the report, and write the scores, curve and outcomes as JSON."""
    from tenantrag.evaluation_answers import report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None, help=f"default {FOLDER}")
    parser.add_argument("--data", type=Path, default=SHARED, help="the shared data folder")
    # Articles whose text the PII screen flags are stored confidential (ingest/classify.py), so
    # an internal user cannot read them: --clearance confidential measures every article.
    parser.add_argument("--clearance", default="internal", help="the asking user's clearance")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--http", action="store_true", help="also ask through a served /api/query")
    parser.add_argument("--before", default=None, help="with --http: a git revision to compare")
    parser.add_argument("--rounds", type=int, default=1, help="with --http: passes per side")
    parser.add_argument(
        "--untitled", action="store_true", help="post the articles without their titles"
    )
    args = parser.parse_args()
    if args.folder is None:
        args.folder = FOLDER.with_name(FOLDER.name + "_untitled") if args.untitled else FOLDER
    load = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    result = run(args.folder, args.data, args.clearance, untitled=args.untitled)
    print(report(result))
    http = (
        over_http(args.folder, result, args.before, args.rounds, args.data, args.clearance)
        if args.http
        else None
    )
    for side, splits in (http or {}).items():
        print(f"\nthrough POST /api/query, {side} (one client, the server's own threshold):")
        print(
            f"{'split':<7}{'n':>5}{'gold':>7}{'F1':>7}{'refuse':>8}{'wrong':>7}{'words':>7}"
            f"{'p50ms':>8}{'p95ms':>8}{'cpu/req':>9}{'errors':>8}"
        )
        for name, s in splits.items():
            print(
                f"{name:<7}{s['questions']:>5}{s['contains_gold']:>7.3f}{s['f1']:>7.3f}"
                f"{s['refusals']:>8.3f}{s['wrong_refusals']:>7.3f}{s['words']:>7.1f}"
                f"{s['p50_ms']:>8.1f}{s['p95_ms']:>8.1f}{s['server_cpu_ms']:>9.1f}{s['errors']:>8}"
            )
    if args.out is not None:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        meta = {
            "command": " ".join([Path(sys.executable).name, "-m", "bench.answers", *sys.argv[1:]]),
            "started": started,
            "load_average_before": [round(x, 2) for x in load],
            "cores": os.cpu_count(),
            "commit": commit,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        body = {"meta": meta, **result.to_json(), "http": http}
        args.out.write_text(json.dumps(body, indent=1) + "\n")


if __name__ == "__main__":
    main()
