"""`make bench`: every benchmark in bench/, one after another, output in bench/results/.

Each step is one script run in its own process with its default settings; its output goes to
bench/results/<step>.txt (the scripts that write JSON put it beside), headed by the command,
the date and the load average before it started, since this machine may be shared. A step
whose script is absent is skipped; one that needs a missing package says how to install it.
To add a benchmark, add a Step to STEPS. Run from the project root:

    .venv/bin/python -m bench.run_all                  # everything
    .venv/bin/python -m bench.run_all --only load profile
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable


@dataclass(frozen=True)
class Step:
    """One benchmark: a script in bench/ and its arguments."""

    name: str
    script: str  # a file in bench/
    args: tuple[str, ...] = ()
    module: bool = False  # run as `python -m bench.<script>` (it imports bench.* helpers)
    needs: tuple[str, ...] = ()  # importable packages it needs
    hint: str = ""  # how to get what it needs

    def command(self) -> list[str]:
        """The command line that runs this step."""
        if self.module:
            return [PYTHON, "-m", f"bench.{Path(self.script).stem}", *self.args]
        return [PYTHON, str(ROOT / "bench" / self.script), *self.args]

    def missing(self) -> str | None:
        """Why this step cannot run here, or None when it can."""
        if not (ROOT / "bench" / self.script).exists():
            return f"bench/{self.script} is not there"
        absent = [n for n in self.needs if importlib.util.find_spec(n) is None]
        if absent:
            return f"it needs {', '.join(absent)}: {self.hint}"
        return None


HAYSTACK_HINT = ".venv/bin/pip install haystack-ai==3.4.1 (bench only, not in pyproject.toml)"
STEPS = [
    # Builds .cache/bench/scifact (reused when current), which load, profile and haystack use.
    Step("scifact_prepare", "scifact.py", ("prepare",)),
    Step("scifact_quality", "scifact.py", ("eval", "--split", "train")),
    # COVID-QA dev through /api/query's stages: contains-gold, refusals, the threshold curve.
    Step("answers", "answers.py", ("--http", "--out", str(RESULTS / "answers.json")), module=True),
    # The same articles posted without titles (a client posting only the text).
    Step(
        "answers_untitled",
        "answers.py",
        ("--untitled", "--out", str(RESULTS / "answers_untitled.json")),
        module=True,
    ),
    Step("keyword_levels", "keyword_levels.py", ("--json", str(RESULTS / "keyword_levels.json"))),
    Step("embedding_speed", "embedding_speed.py", ("--threads", "1")),
    Step("index_scale", "index_scale.py", ("--out", str(RESULTS / "index_scale"))),
    Step("load", "load_matrix.py", ("--out", str(RESULTS / "load.json")), module=True),
    Step("profile", "profile_hot_path.py", ("--endpoint", "search"), module=True),
    Step("profile_query", "profile_hot_path.py", ("--endpoint", "query"), module=True),
    Step(
        "haystack",
        "haystack_compare.py",
        ("--out", str(RESULTS / "haystack.json")),
        module=True,
        needs=("haystack",),
        hint=HAYSTACK_HINT,
    ),
    # PII recall per kind on the generated set (dev and held-out parts), false redactions, speed.
    Step(
        "pii_recall",
        "pii_recall.py",
        module=True,
        needs=("faker",),
        hint="make install (faker is a dev extra)",
    ),
    # Articles auto-classification raises to confidential without personal data (COVID-QA dev).
    Step("pii_scientific", "pii_scientific.py", module=True),
    # Injection: deepset held-apart, Giskard, attacks by class, benign sets, documents, speed.
    Step("injection_eval", "injection_eval.py", module=True),
    Step("faults", "faults.py", ("--out", str(RESULTS / "faults.json")), module=True),
    # Screenshots of the web console for docs/img/ (the README shows console-ask.png).
    Step(
        "console_screenshots",
        "console_screenshots.py",
        module=True,
        needs=("playwright",),
        hint="make install (playwright is a dev extra) and make tools (Debian's chromium)",
    ),
    Step("soak", "soak.py", ("--out", str(RESULTS / "soak.json")), module=True),
    # The three ratios of issue 12 (search p50, query p95, model share) against the floor E,
    # with int8 questions (the default) and fp32 ones; then the same path in CPU time.
    Step("hot_path", "hot_path_ratios.py", module=True),
    # Follow-up questions on /v1: each way of building the question from the conversation.
    Step("followups", "followups.py", ("--out", str(RESULTS / "followups.json")), module=True),
    Step(
        "hot_path_fp32",
        "hot_path_ratios.py",
        ("--query-precision", "fp32", "--out", str(RESULTS / "hot_path_fp32.json")),
        module=True,
    ),
    Step("hot_path_cpu", "hot_path_cpu.py", module=True),
    # Sentence vectors stored at ingestion (migration 0007): what ingestion pays for them.
    Step(
        "ingest_cost", "ingest_cost.py", ("--out", str(RESULTS / "ingest_cost.json")), module=True
    ),
    # Distributed mode (issue 13): ingest SQLite vs PostgreSQL, search on a PostgreSQL-backed
    # node vs embedded, replication lag under sustained writes, a new node's catch-up on SciFact.
    Step(
        "distributed",
        "distributed.py",
        ("--out", str(RESULTS / "distributed.json")),
        module=True,
    ),
    # Background ingestion (issue 14): one async job against the synchronous path, and another
    # tenant's search p95 during the job against idle.
    Step(
        "jobs",
        "jobs.py",
        (
            "--documents",
            "5000",
            "--rounds",
            "10",
            "--probe-documents",
            "500",
            "--out",
            str(RESULTS / "jobs.json"),
        ),
        module=True,
    ),
    # What checking each kind of credential costs; the key's HMAC against a slow hash.
    Step("identity", "identity.py", ("--out", str(RESULTS / "identity.json")), module=True),
]


def header(step: Step) -> str:
    """What to print above a step's output: command, time, load average."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return f"$ {' '.join(step.command())}\n# {when}, load average {load}, {os.cpu_count()} cores\n"


def run(step: Step) -> bool:
    """Run one step, teeing its output to bench/results/<name>.txt; True when it succeeded."""
    reason = step.missing()
    if reason:
        print(f"[{step.name}] skipped: {reason}", flush=True)
        return True
    out = RESULTS / f"{step.name}.txt"
    print(f"[{step.name}] running; output in {out.relative_to(ROOT)}", flush=True)
    started = time.monotonic()
    with out.open("w") as sink:
        sink.write(header(step) + "\n")
        sink.flush()
        code = subprocess.call(step.command(), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    took = time.monotonic() - started
    print(f"[{step.name}] {'ok' if code == 0 else f'FAILED ({code})'} in {took:.0f} s", flush=True)
    return code == 0


def main() -> None:
    """Run the chosen steps (default: all) in order; exit 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[s.name for s in STEPS])
    parser.add_argument("--skip", nargs="+", choices=[s.name for s in STEPS], default=[])
    parser.add_argument("--list", action="store_true", help="print the steps and exit")
    args = parser.parse_args()
    chosen = [
        s for s in STEPS if (not args.only or s.name in args.only) and s.name not in args.skip
    ]
    if args.list:
        for step in chosen:
            print(f"{step.name:>16}: {' '.join(step.command())}  [{step.missing() or 'ready'}]")
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = [s.name for s in chosen if not run(s)]
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
