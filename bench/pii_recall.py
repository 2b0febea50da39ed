"""PII recall per kind on the generated set, false redactions on PII-free text, raw-value survival.

Usage: .venv/bin/python -m bench.pii_recall [--data ../shared/data] [--show-errors]

The set is bench/pii_cases.py: a `dev` part the detector was tuned on and a `heldout` part that
was only ever scored (disjoint regions, locales, templates, seeds, and a few formats only it
has). For every labelled value:

- found: a span of the same kind covers it (typed recall, the figure the bars are about);
- redacted: some span covers it, of any kind (what a reader of the redacted text sees);
- survives: the raw value is still in `redact(text).text`.

False redactions: the share of PII-free texts (SciFact abstracts, 18F handbook chunks, generated
dates, versions, ISBNs, amounts, code and tables) that `redact` changes. SciFact and the handbook
hold a few real contact details (authors' emails, the GSA's phone numbers): spans that are plain
email addresses or US-layout phone numbers ("(877) 709-5797") are counted apart, not as false.
`--show-errors` lists the dev part's misses and every false redaction; the held-out part's
misses are never listed, so that nobody tunes on them.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench.pii_cases import KINDS, PARTS, corpus_clean, generated_clean, positive_cases

from tenantrag.governance.pii import find_pii, redact

ROOT = Path(__file__).resolve().parent.parent
PLAIN_EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(?:\.[\w-]+)+$")
NANP_PHONE = re.compile(r"^(?:\(\d{3}\)\s*|\d{3}-)\d{3}-\d{4}$")  # "(877) 709-5797": real numbers
BARS = {"phone": 0.95, "email": 0.98, "ssn": 0.98, "ip": 0.98, "credit_card": 0.98, "iban": 0.98}


def score_part(part: str, *, show_errors: bool) -> dict[str, float]:
    """Print typed recall, any-kind recall and survivals per kind; return typed recall."""
    cases = positive_cases(part)
    found: Counter[str] = Counter()
    redacted: Counter[str] = Counter()
    total: Counter[str] = Counter()
    survived: Counter[str] = Counter()
    by_source: dict[str, Counter[str]] = defaultdict(Counter)
    for case in cases:
        v = case.value
        spans = find_pii(case.text)
        covering = [s for s in spans if s.start <= v.start and s.end >= v.end]
        hit = any(s.type.value == v.kind for s in covering)
        total[v.kind] += 1
        found[v.kind] += hit
        redacted[v.kind] += bool(covering)
        survived[v.kind] += case.raw in redact(case.text).text
        by_source[v.source]["n"] += 1
        by_source[v.source]["hit"] += hit
        if show_errors and part == "dev" and not hit:
            got = [(case.text[s.start : s.end], s.type.value) for s in spans]
            print(f"  miss {v.source}: {case.text!r} -> {got}")
    print(f"\n== {part}: {len(cases)} labelled values ==")
    print(f"{'kind':12} {'n':>5} {'recall':>7} {'any-kind':>8} {'survive':>7}  bar")
    recall = {}
    for kind in KINDS:
        n = total[kind]
        recall[kind] = found[kind] / max(1, n)
        flag = "ok" if recall[kind] >= BARS[kind] else "BELOW"
        print(
            f"{kind:12} {n:5} {recall[kind]:7.3f} {redacted[kind] / max(1, n):8.3f}"
            f" {survived[kind]:7}  >= {BARS[kind]} {flag}"
        )
    weak = sorted(
        (c["hit"] / c["n"], src, c["n"]) for src, c in by_source.items() if c["hit"] < c["n"]
    )
    print("  sources below 1.0 (recall, source, n):")
    for r, src, n in weak[:25]:
        print(f"    {r:.2f} {src} ({n})")
    return recall


def clean_rates(data: Path, part: str, *, show_errors: bool) -> float:
    """Print and return the share of PII-free texts that redact() changes."""
    seed = 11 if part == "dev" else 12
    sets = {**corpus_clean(data, part), "generated": generated_clean(seed)}
    changed_all = texts_all = 0
    print(f"\n== {part}: PII-free text ==")
    for name, texts in sets.items():
        changed = 0
        confirmed: list[str] = []
        for text in texts:
            spans = find_pii(text)
            false = [s for s in spans if not _confirmed(text[s.start : s.end])]
            confirmed += [text[s.start : s.end] for s in spans if s not in false]
            if false:
                changed += 1
                if show_errors:
                    for s in false:
                        ctx = text[max(0, s.start - 30) : s.end + 15]
                        print(f"    false {name} {s.type.value}: {ctx!r}")
        changed_all += changed
        texts_all += len(texts)
        print(
            f"  {name:10} {changed:4}/{len(texts):5} changed = {changed / len(texts):.4f}"
            f"  (plain emails and US-layout phones found, not counted: {len(confirmed)})"
        )
    rate = changed_all / texts_all
    print(f"  all        {changed_all:4}/{texts_all:5} changed = {rate:.4f}  (bar <= 0.05)")
    return rate


def _confirmed(value: str) -> bool:
    """A plain email address or a phone number in US layout: real contact details, not errors."""
    return PLAIN_EMAIL.match(value) is not None or NANP_PHONE.match(value) is not None


def timing(data: Path) -> None:
    """CPU µs per redact() call on a typical question and on 1,000-character chunks."""
    questions = [
        f"What is the per diem for trip {i} to Denver in May, and who approves it?"
        for i in range(2000)
    ]
    chunks = [c for c in corpus_clean(data, "dev")["handbook"] if len(c) == 1000][:400]
    abstracts = [a[:1000] for a in corpus_clean(data, "dev")["scifact"] if len(a) >= 1000][:400]
    print("\n== speed (CPU time; the machine may be busy) ==")
    for name, texts in (
        ("question", questions),
        ("1,000-char handbook chunk", chunks),
        ("1,000-char SciFact abstract", abstracts),
    ):
        start = time.process_time()
        for text in texts:
            redact(text)
        print(f"  redact({name}): {(time.process_time() - start) / len(texts) * 1e6:.1f} µs")


def main() -> None:
    """Score both parts, the PII-free texts and the speed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--show-errors", action="store_true")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    for part in args.parts:
        score_part(part, show_errors=args.show_errors)
        clean_rates(args.data, part, show_errors=args.show_errors and part == "dev")
    if not args.no_timing:
        timing(args.data)


if __name__ == "__main__":
    main()
