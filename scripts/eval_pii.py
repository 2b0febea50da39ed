"""Measure PII detection on the Presidio test vectors, wrongful redactions on PII-free text, speed.

Usage: .venv/bin/python scripts/eval_pii.py [--data ../shared/data] [--show-errors]

Scoring, per kind: a predicted span is a true positive when it equals an expected span of the
same kind (rows without spans compare counts). A prediction of a kind in a row labelled with
another kind is a false positive. URL rows are negatives for us: we do not redact URLs (a
document's links are not personal data and answers need them). Rows whose `extra.leniency`
asks for another phone-matcher leniency than ours (VALID = 1) test a setting, not the detector:
they are scored separately.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from tenantrag.governance.pii import PiiType, find_pii, redact  # noqa: E402  # after sys.path

KINDS = {
    "EMAIL_ADDRESS": PiiType.EMAIL,
    "US_SSN": PiiType.SSN,
    "PHONE_NUMBER": PiiType.PHONE,
    "IP_ADDRESS": PiiType.IP,
    "CREDIT_CARD": PiiType.CREDIT_CARD,
}
OUR_LENIENCY = 1
LOG_LINES = [  # typical structlog fields, rendered; {n}, {ms} and {id} vary per line
    "2025-11-26T03:22:00.123456Z info request served method=GET path=/v1/query status=200",
    "query answered tenant_id=acme-corp request_id={id:08x} latency_ms={ms:.1f} hits=10",
    "user asked: What is the travel policy for conference trips?",
    "login from 203.0.113.42 user=jane.doe@example.com attempts=3",
    "GET /v1/documents/doc_{n}/chunks?limit=50 HTTP/1.1 200 OK {n} bytes in {ms:.1f} ms",
    "2025-11-26 03:22:{ms:02.0f} chunk {n} embedded in {ms:.2f} ms, 384 dims",
]


def main() -> None:
    """Print per-kind precision and recall, wrongful-redaction rates and timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data"
    )
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    rows = [json.loads(line) for line in (args.data / "pii/presidio_test_vectors.jsonl").open()]
    other = [r for r in rows if r["extra"].get("leniency", OUR_LENIENCY) != OUR_LENIENCY]
    main_rows = [r for r in rows if r not in other]
    print(f"Presidio vectors: {len(rows)} rows ({len(other)} test another phone leniency)")
    for title, subset in (("rows for our settings", main_rows), ("all rows", rows)):
        print(f"\n== {title} ({len(subset)}) ==")
        report(subset, show_errors=args.show_errors and subset is main_rows)
    pii_free(args.data / "scifact/corpus.jsonl")
    bench(args.data / "scifact/corpus.jsonl")


def report(rows: list[dict[str, object]], *, show_errors: bool) -> None:
    """Precision and recall per kind, then the wrongful-redaction rate on negative rows."""
    tp: Counter[PiiType] = Counter()
    fp: Counter[PiiType] = Counter()
    fn: Counter[PiiType] = Counter()
    negatives = wrongful = 0
    for row in rows:
        text, entity = str(row["text"]), str(row["entity"])
        expected_kind = KINDS.get(entity)
        found = find_pii(text)
        for kind in PiiType:
            predicted = [(s.start, s.end) for s in found if s.type is kind]
            if kind is not expected_kind:
                fp[kind] += len(predicted)
                continue
            expected_n = int(row["expected_count"])  # type: ignore[call-overload]  # JSON int
            if row["spans_given"]:
                expected = {tuple(span) for span in row["spans"]}  # type: ignore[attr-defined]
                hits = len(expected & set(predicted))
            else:
                hits = min(expected_n, len(predicted))
            tp[kind] += hits
            fp[kind] += len(predicted) - hits
            fn[kind] += expected_n - hits
            if show_errors and (hits != expected_n or hits != len(predicted)):
                print(f"  {kind}: {text!r} expected {row['spans']} got {predicted}")
        if expected_kind is None or row["expected_count"] == 0:
            negatives += 1
            if redact(text).text != text:
                wrongful += 1
                if show_errors:
                    print(f"  wrongful: {text!r} -> {redact(text).text!r}")
    print(f"{'kind':12} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>9} {'recall':>7}")
    for kind in PiiType:
        p = tp[kind] / max(1, tp[kind] + fp[kind])
        r = tp[kind] / max(1, tp[kind] + fn[kind])
        print(f"{kind.value:12} {tp[kind]:4} {fp[kind]:4} {fn[kind]:4} {p:9.3f} {r:7.3f}")
    print(
        f"wrongful redaction on negative rows: {wrongful}/{negatives} = {wrongful / negatives:.3f}"
    )


def pii_free(corpus: Path) -> None:
    """Redactions in SciFact abstracts: scientific text full of numbers and no personal data."""
    texts = [json.loads(line)["text"] for line in corpus.open()]
    kinds: Counter[str] = Counter()
    touched = 0
    examples: list[str] = []
    for text in texts:
        spans = find_pii(text)
        touched += bool(spans)
        for span in spans:
            kinds[span.type.value] += 1
            if len(examples) < 15:
                examples.append(
                    f"{span.type.value}: {text[max(0, span.start - 25) : span.end + 10]!r}"
                )
    share = touched / len(texts)
    print(f"\nSciFact abstracts (no PII expected): {touched}/{len(texts)} redacted = {share:.4f}")
    print(f"  spans by kind: {dict(kinds)}")
    for example in examples:
        print(f"  {example}")


def bench(corpus: Path) -> None:
    """CPU microseconds per redact() call: log lines, a plain line, 1 KB chunks of SciFact.

    Every log line and chunk is distinct, so the phone matcher's cache does not flatter us.
    CPU time, not wall time, so other work on the machine does not inflate the figure.
    """
    rng = random.Random(7)
    lines = [
        template.format(n=rng.randrange(10**6), ms=rng.random() * 100, id=rng.getrandbits(32))
        for _ in range(400)
        for template in LOG_LINES
    ]
    chunks = [json.loads(line)["text"][:1024] for line in corpus.open()][:2000]
    chunks = [chunk for chunk in chunks if len(chunk) == 1024]
    plain = ["No digits here, just a plain sentence about the leave policy and how to ask."] * 2000
    for name, texts in (("log line", lines), ("plain line", plain), ("1 KB chunk", chunks)):
        start = time.process_time()
        for text in texts:
            redact(text)
        per_call = (time.process_time() - start) / len(texts) * 1e6
        print(f"redact() on a {name}: {per_call:.1f} µs CPU (mean of {len(texts)})")


if __name__ == "__main__":
    main()
