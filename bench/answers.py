"""Answer quality of /api/query's default (extractive) answerer on COVID-QA dev, with its curve.

Loads ../shared/data/qa/covid_qa_dev.json into tenant `covidqa` of a data folder (default
.cache/bench/covidqa; the articles are ingested once and reused), then runs the same code as
`tenantrag eval-answers`: every question through the /api/query stages in process, scored
SQuAD-style, for all articles and the two halves split by article (tune: the weights and the
refusal threshold were chosen on it; check: the other half, to see overfitting). The benign
questions of the prompt-injection set (label 0, ending in "?") are asked too, as off-topic
questions the articles do not answer: refusing them is right, and the curve shows both sides.
The held-out half of COVID-QA (../shared/heldout) is never read. Run from the project root:

    .venv/bin/python -m bench.answers --out bench/results/answers.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
DATASET = SHARED / "qa" / "covid_qa_dev.json"
INJECTION = SHARED / "prompt_injection" / "deepset_train.jsonl"
FOLDER = ROOT / ".cache" / "bench" / "covidqa"
MODEL_DIR = ROOT / ".cache" / "models"
TENANT = "covidqa"


def off_topic_file(folder: Path) -> Path:
    """The benign questions of the injection set (label 0, ending in '?') as JSONL."""
    target = folder / "off_topic.jsonl"
    rows = [json.loads(line) for line in INJECTION.read_text().splitlines() if line.strip()]
    questions = [r["text"] for r in rows if r["label"] == 0 and r["text"].strip().endswith("?")]
    target.write_text("".join(json.dumps({"text": q}) + "\n" for q in questions))
    return target


def run(folder: Path) -> Any:
    """The benchmark run over `folder` (the tenant is created and loaded when missing)."""
    from tenantrag.backends.store.sqlite import SQLiteStore
    from tenantrag.evaluation_answers import evaluate_answers, load_off_topic, load_squad
    from tenantrag.models import Tenant
    from tenantrag.rag import build_rag
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
            Tenant(id=TENANT, bm25_weight=r.bm25_weight, vector_weight=r.vector_weight,
                   fusion=r.fusion, rate_limit=100_000)
        )  # fmt: skip
    rag = build_rag(settings, store)
    articles = [*load_squad(DATASET), load_off_topic(off_topic_file(folder))]
    return asyncio.run(evaluate_answers(settings, store, rag, tenant, articles))


def main() -> None:
    """Run, print the report, and write the scores, curve and outcomes as JSON."""
    from tenantrag.evaluation_answers import report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    load = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    result = run(args.folder)
    print(report(result))
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
        args.out.write_text(json.dumps({"meta": meta, **result.to_json()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
