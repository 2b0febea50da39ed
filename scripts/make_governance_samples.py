"""Write the governance tests' small samples into tests/data/governance/ from ../shared/data.

The tests must run from a clone alone, so the few real texts they need are copied into the
repository; this script is how they were chosen, so anyone can check or remake them:

- benign_questions.jsonl: the first 60 benign rows of deepset's held-apart quarter (never trained
  on: bench/injection_cases.deepset_split, the split scripts/train_injection.py holds apart), and
  the 70 benign questions in 14 languages of bench/injection_cases.BENIGN_QUESTIONS;
- scifact_claims.jsonl: 120 of SciFact's training claims, a seeded sample (claims are never
  trained on);
- handbook_pages.jsonl: the 18F handbook pages that carry links, code and percent-encoded or
  numeric fragments (real markdown that looks most like an attack or like personal data), up to 24.

Usage: .venv/bin/python scripts/make_governance_samples.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.injection_cases import BENIGN_QUESTIONS, deepset_split  # noqa: E402

TARGET = ROOT / "tests" / "data" / "governance"


def write(name: str, rows: list[dict[str, str]]) -> None:
    """One JSON object a line."""
    TARGET.mkdir(parents=True, exist_ok=True)
    with (TARGET / name).open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{name}: {len(rows)} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    data = parser.parse_args().data
    rows = [json.loads(x) for x in (data / "prompt_injection/deepset_train.jsonl").open()]
    _, held = deepset_split(data)
    benign = [rows[i]["text"] for i in held if rows[i]["label"] == 0][:60]
    questions = [{"text": t, "source": "deepset held-apart"} for t in benign]
    questions += [
        {"text": t, "source": f"bench/injection_cases.py ({lang})"}
        for lang, texts in BENIGN_QUESTIONS.items()
        for t in texts
    ]
    write("benign_questions.jsonl", questions)
    claims = [json.loads(x)["text"] for x in (data / "scifact/queries_train.jsonl").open()]
    sample = random.Random(7).sample(claims, 120)
    write("scifact_claims.jsonl", [{"text": t, "source": "SciFact claims"} for t in sample])
    pages = [json.loads(x) for x in (data / "enterprise_docs/18f_handbook/corpus.jsonl").open()]
    marked = [
        p
        for p in sorted(pages, key=lambda p: p["_id"])
        if "](" in p["text"] and "`" in p["text"] and any(c.isdigit() for c in p["text"])
    ]
    write(
        "handbook_pages.jsonl",
        [{"text": p["text"], "source": f"18F handbook: {p['_id']}"} for p in marked[:24]],
    )


if __name__ == "__main__":
    main()
