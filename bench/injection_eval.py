"""Prompt-injection screening, measured the way the service runs it.

Usage: .venv/bin/python -m bench.injection_eval [--data ../shared/data]

Questions go through `normalize_query` then `detect(question, embedding)` with the embedding from
our ONNX all-MiniLM-L6-v2 export, exactly as the query pipeline does; chunks go through
`scan_chunk`. Sets (bench/injection_cases.py):

- deepset held-apart part (25%, near-copies kept together, never trained on) and Giskard's 35
  attacks: precision, recall, F1;
- the multilingual / encoded / chat-template attack questions we wrote by class, and benign
  questions in the same 14 languages plus technical ones about encodings and prompts;
- SciFact claims (809 benign statements) and deepset's held-apart benign questions: false
  positives;
- attack documents (indirect injection) and benign documents (18F handbook chunks, SciFact
  abstracts);
- CPU time per call (the machine may be busy: other helpers run tests beside us).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from bench.injection_cases import (
    attack_documents,
    attack_questions,
    benign_documents,
    benign_question_set,
    deepset_split,
)

from tenantrag.backends.embedding.onnx import OnnxEmbedder, prepare_model
from tenantrag.governance.injection import detect, normalize_query, scan_chunk

ROOT = Path(__file__).resolve().parent.parent


def prf(pred: list[bool], gold: list[int]) -> tuple[float, float, float]:
    """Precision, recall and F1 of boolean predictions against 0/1 labels."""
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum((not p) and g for p, g in zip(pred, gold, strict=True))
    precision = tp / max(1, tp + fp)
    recall = tp / max(1, tp + fn)
    return precision, recall, 2 * precision * recall / max(1e-9, precision + recall)


class Screen:
    """normalize_query + embedding + detect, the pipeline's order."""

    def __init__(self) -> None:
        self.embedder = OnnxEmbedder(prepare_model(ROOT / ".cache" / "models"))

    def verdicts(self, texts: list[str], *, patterns_only: bool = False) -> list[tuple[str, ...]]:
        questions = [normalize_query(t, max_chars=100_000) for t in texts]
        vectors = self.embedder.embed(questions) if not patterns_only else [None] * len(texts)
        return [detect(q, v).reasons for q, v in zip(questions, vectors, strict=True)]


def flagged(reasons: tuple[str, ...], part: str) -> bool:
    """Whether a verdict's reasons include `part` ("patterns", "classifier" or "combined")."""
    by_classifier = any(r.startswith("classifier:") for r in reasons)
    by_patterns = any(not r.startswith("classifier:") for r in reasons)
    return {"patterns": by_patterns, "classifier": by_classifier, "combined": bool(reasons)}[part]


def main() -> None:
    """Print every measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    screen = Screen()
    rows = [
        json.loads(line) for line in (args.data / "prompt_injection/deepset_train.jsonl").open()
    ]
    _, held = deepset_split(args.data)
    held_texts = [rows[i]["text"] for i in held]
    held_gold = [rows[i]["label"] for i in held]
    with (args.data / "prompt_injection/giskard/prompt_injections.csv").open() as f:
        giskard = [r["prompt"] for r in csv.DictReader(f)]
    attacks = attack_questions()
    benign_q = benign_question_set()
    claims = [
        json.loads(line)["text"] for line in (args.data / "scifact/queries_train.jsonl").open()
    ]

    print(f"== deepset held-apart part: {len(held)} rows ({sum(held_gold)} injections) ==")
    held_reasons = screen.verdicts(held_texts)
    for part in ("patterns", "classifier", "combined"):
        p, r, f1 = prf([flagged(x, part) for x in held_reasons], held_gold)
        print(f"  {part:10} precision {p:.3f} recall {r:.3f} F1 {f1:.3f}")
    benign_held = [x for x, g in zip(held_reasons, held_gold, strict=True) if not g]
    print(
        f"  benign held-apart questions flagged: {sum(map(bool, benign_held))}/{len(benign_held)}"
    )
    if args.show_errors:
        for text, x, g in zip(held_texts, held_reasons, held_gold, strict=True):
            if bool(x) != bool(g):
                print(f"    {'FP' if x else 'FN'} {text[:120]!r} {x}")

    giskard_reasons = screen.verdicts(giskard)
    attack_reasons = screen.verdicts([t for _, t in attacks])
    benign_reasons = screen.verdicts([t for _, t in benign_q])
    claim_reasons = screen.verdicts(claims)
    print(
        f"\n== Giskard attacks: recall {np.mean([bool(x) for x in giskard_reasons]):.3f} "
        f"({len(giskard)}) =="
    )

    print(f"\n== attack questions by class ({len(attacks)}) ==")
    by_class: dict[str, list[bool]] = defaultdict(list)
    for (name, text), x in zip(attacks, attack_reasons, strict=True):
        by_class[name.split(":")[0] + ":" + name.split(":")[1] if ":" in name else name].append(
            bool(x)
        )
        if args.show_errors and not x:
            print(f"    missed {name}: {text[:100]!r}")
    for name, hits in sorted(by_class.items()):
        print(f"  {name:24} {sum(hits)}/{len(hits)}")
    print(f"  all attack questions: recall {np.mean([bool(x) for x in attack_reasons]):.3f}")

    print(f"\n== benign questions ({len(benign_q)}) ==")
    for (name, text), x in zip(benign_q, benign_reasons, strict=True):
        if x:
            print(f"    flagged {name}: {text!r} {x}")
    print(f"  flagged {sum(map(bool, benign_reasons))}/{len(benign_q)}")
    print(
        f"  SciFact claims flagged {sum(map(bool, claim_reasons))}/{len(claims)}"
        f" = {np.mean([bool(x) for x in claim_reasons]):.4f} (bar <= 0.005)"
    )
    if args.show_errors:
        for c, x in zip(claims, claim_reasons, strict=True):
            if x:
                print(f"    flagged claim: {c!r} {x}")

    # The held-out bar's set, as we can build it: held-apart deepset + Giskard + our attacks,
    # against held-apart benign deepset + our benign questions.
    pred = [bool(x) for x in held_reasons + giskard_reasons + attack_reasons + benign_reasons]
    gold = held_gold + [1] * (len(giskard) + len(attacks)) + [0] * len(benign_q)
    p, r, f1 = prf(pred, gold)
    print(
        f"\n== all questions together ({len(gold)}): precision {p:.3f} recall {r:.3f} F1 {f1:.3f}"
        " (bar: F1 >= 0.93 at precision >= 0.97) =="
    )

    print("\n== documents ==")
    docs = attack_documents()
    hits = Counter()
    for name, chunk in docs:
        verdict = scan_chunk(chunk)
        hits[name] += verdict.is_injection
        if args.show_errors and not verdict.is_injection:
            print(f"    missed {name}: {chunk[:100]!r}")
    totals = Counter(name for name, _ in docs)
    for name in sorted(totals):
        print(f"  {name:20} {hits[name]}/{totals[name]}")
    print(f"  attack documents flagged {sum(hits.values())}/{len(docs)}")
    benign = benign_documents(args.data)
    false = Counter(name for name, chunk in benign if scan_chunk(chunk).is_injection)
    for name in sorted({n for n, _ in benign}):
        print(f"  benign {name}: {false[name]}/{sum(1 for n, _ in benign if n == name)} flagged")

    timing(screen, benign, claims)


def timing(screen: Screen, benign: list[tuple[str, str]], claims: list[str]) -> None:
    """CPU µs per detect() on a question (with its embedding), per scan_chunk() on 1,000 chars."""
    questions = [normalize_query(c, max_chars=2000) for c in claims[:400]]
    vectors = screen.embedder.embed(questions)
    chunks = [c for n, c in benign if n == "handbook" and len(c) == 1000][:400]
    print("\n== speed (CPU time; the machine may be busy) ==")
    for name, call, items in (
        (
            "detect(question, embedding)",
            lambda i: detect(questions[i], vectors[i]),
            range(len(questions)),
        ),
        ("scan_chunk(1,000-char chunk)", lambda i: scan_chunk(chunks[i]), range(len(chunks))),
    ):
        for i in items:  # warm caches once
            call(i)
        start = time.process_time()
        for _ in range(3):
            for i in items:
                call(i)
        per_call = (time.process_time() - start) / (3 * len(items)) * 1e6
        print(f"  {name}: {per_call:.1f} µs")


if __name__ == "__main__":
    main()
