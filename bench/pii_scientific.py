"""Documents wrongly raised to `confidential` by auto-classification on scientific articles.

Usage: .venv/bin/python -m bench.pii_scientific [--data ../shared/data] [--show]

Runs the tenant policy `raise` (the default, tenantrag.ingest.classify) over every COVID-QA dev
article (qa/covid_qa_dev.json), the way bench.answers ingests them (title and text), and
counts the articles raised. An article raised is *wrong* unless it is in `REAL_PII`: the
articles read by hand and found to hold personal data (squad-187 gives an author's e-mail).
A wrongly raised article is one an `internal` user can no longer read, so the questions on it
become unanswerable for them: those are counted too. `--show` prints every value found, with
its surroundings, so that the hand-read list can be checked again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tenantrag.evaluation_answers import load_squad
from tenantrag.governance.pii import find_pii
from tenantrag.ingest.classify import auto_classify
from tenantrag.models import AutoClassify, Classification

ROOT = Path(__file__).resolve().parent.parent
DATASET = Path("qa") / "covid_qa_dev.json"
# Read by hand: the only dev article with personal data is squad-187 (an author's e-mail).
REAL_PII = frozenset({"squad-187"})


def main() -> None:
    """Print the raised articles, the wrongly raised ones and the questions they hide."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--show", action="store_true", help="print every value found")
    args = parser.parse_args()
    articles = [a for a in load_squad(args.data / DATASET) if a.text]
    raised: list[str] = []
    wrong_questions = questions = 0
    for article in articles:
        questions += len(article.questions)
        labelled = auto_classify(
            AutoClassify.RAISE, None, text=article.text, title=article.title, source="", metadata={}
        )
        if labelled.classification < Classification.CONFIDENTIAL:
            continue
        raised.append(article.document_id)
        if article.document_id not in REAL_PII:
            wrong_questions += len(article.questions)
        if args.show:
            for field in (article.title, article.text):
                for s in find_pii(field):
                    context = field[max(0, s.start - 25) : s.end + 15].replace("\n", " ")
                    value = field[s.start : s.end]
                    print(f"  {article.document_id} {s.type.value}: {value!r} in {context!r}")
    wrong = [a for a in raised if a not in REAL_PII]
    missed = sorted(REAL_PII - set(raised))
    print(f"articles: {len(articles)}, questions: {questions}")
    print(f"raised to confidential: {len(raised)} {raised}")
    print(f"wrongly raised (no personal data): {len(wrong)} {wrong}")
    share = wrong_questions / questions
    print(f"questions on wrongly raised articles: {wrong_questions} ({share:.1%})")
    print(f"articles with personal data not raised: {len(missed)} {missed}")


if __name__ == "__main__":
    main()
