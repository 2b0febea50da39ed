"""eval-answers: SQuAD metrics worked out by hand, the refusal curve, and a real run end to end."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from tenantrag import evaluation_answers_run
from tenantrag import settings as settings_module
from tenantrag.backends import Embedder
from tenantrag.backends.embedding import build_query_embedder
from tenantrag.backends.embedding.cache import CachingEmbedder
from tenantrag.backends.llm.prompt import NO_ANSWER
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.cli import main
from tenantrag.evaluation_answers import (
    OFF_TOPIC,
    Article,
    Outcome,
    answer_words,
    contains_gold,
    curve,
    load_off_topic,
    load_squad,
    normalise,
    score,
    token_f1,
)
from tenantrag.evaluation_answers_run import (
    evaluate_answers,
    missing_articles,
    question_embeddings,
)
from tenantrag.models import Tenant
from tenantrag.services import Corpus, build_corpus
from tenantrag.settings import Settings

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "covid_qa_sample.json"


def outcome(
    *,
    confidence: float = 1.0,
    answer: str = "An answer [1].",
    gold: bool = True,
    in_passages: bool = True,
    cited: int = 1,
    cited_with_gold: int = 1,
    words: int = 10,
    error: str | None = None,
) -> Outcome:
    return Outcome(
        "q",
        "d",
        "tune",
        answer,
        confidence,
        5.0,
        1.0,
        in_passages,
        gold,
        1.0 if gold else 0.0,
        words,
        cited,
        cited_with_gold,
        error,
    )


class TestSquadMetrics:
    def test_normalisation_drops_case_punctuation_and_articles(self) -> None:
        """SQuAD's normalisation: 'The  Cat's hat!' is 'cats hat'."""
        assert normalise("The  Cat's hat!") == "cats hat"

    def test_citation_markers_are_not_answer_words(self) -> None:
        """[1] and [2, 3] are ours, not the answer's words."""
        assert answer_words("Yes, 50% [1] [2, 3].") == ["yes", "50"]

    def test_contains_gold_matches_whole_words_only(self) -> None:
        """A gold span counts only word for word: 'cat' is not in 'concatenate'."""
        assert contains_gold("Masks cut 50% of cases [1].", ["50%"])
        assert (
            contains_gold("It was the Mother-to-child transmission.", ["mother to child"]) is False
        )
        assert contains_gold("We concatenate.", ["cat"]) is False
        assert contains_gold("anything", ["", "  "]) is False

    def test_token_f1_is_the_best_over_gold_spans(self) -> None:
        """'the quick brown fox' vs 'quick fox': precision 2/3, recall 1, F1 0.8."""
        assert token_f1("the quick brown fox", ["quick fox"]) == pytest.approx(0.8)
        assert token_f1("the quick brown fox", ["slow cat", "quick fox"]) == pytest.approx(0.8)
        assert token_f1("nothing shared", ["quick fox"]) == 0.0


class TestScores:
    def test_a_refusal_is_wrong_only_when_the_gold_was_in_the_passages(self) -> None:
        """Four questions: answered and right, answered and wrong, refused with the gold in a
        passage (wrong refusal), refused without (a right refusal)."""
        outcomes = [
            outcome(confidence=0.9),
            outcome(confidence=0.9, gold=False, cited_with_gold=0),
            outcome(confidence=0.1, in_passages=True),
            outcome(confidence=0.1, in_passages=False, gold=False),
        ]
        s = score(outcomes, threshold=0.5)
        assert (s.questions, s.contains_gold, s.refusals, s.wrong_refusals) == (4, 0.25, 0.5, 0.25)
        assert s.citation_precision == 0.5  # one of the two answered answers cites the gold
        assert s.f1 == 0.25

    def test_a_refusal_text_or_an_error_is_refused_at_every_threshold(self) -> None:
        """The answerer's own NO_ANSWER and a failed request never count as answers."""
        outcomes = [outcome(answer=NO_ANSWER, confidence=0.9), outcome(error="prompt_injection")]
        assert score(outcomes, 0.0).refusals == 1.0

    def test_the_curve_trades_answers_for_refusals(self) -> None:
        """Raising the threshold never answers more questions."""
        outcomes = [outcome(confidence=c / 10) for c in range(10)]
        points = curve(outcomes, [0.0, 0.25, 0.5, 1.0])
        refusals = [s.refusals for _, s in points]
        assert refusals == sorted(refusals) and refusals[0] == 0.0 and refusals[-1] == 1.0


class TestLoading:
    def test_a_squad_file_becomes_documents_with_their_questions(self) -> None:
        """Each context is a document named by its document_id, titled by its first line."""
        articles = load_squad(SAMPLE)
        assert [a.document_id for a in articles] == ["squad-630", "squad-650", "squad-1546"]
        assert articles[0].title.startswith("Functional Genetic Variants in DC-SIGNR")
        assert sum(len(a.questions) for a in articles) == 9
        assert {a.split for a in articles} == {"tune", "check"}  # a fixed half by article

    @pytest.mark.parametrize("content", ["not json", "[]", '{"data": [{"paragraphs": [{}]}]}'])
    def test_a_file_that_is_not_squad_is_refused_clearly(
        self, tmp_path: Path, content: str
    ) -> None:
        """Anything but SQuAD-shaped JSON is a ValueError naming the file."""
        path = tmp_path / "bad.json"
        path.write_text(content)
        with pytest.raises(ValueError, match="bad.json"):
            load_squad(path)

    def test_off_topic_questions_are_checked_line_by_line(self, tmp_path: Path) -> None:
        """JSONL of {"text"}; a bad line is named."""
        good = tmp_path / "off.jsonl"
        good.write_text('{"text": "How do I bake bread?"}\n\n{"text": "Who won?"}\n')
        article = load_off_topic(good)
        assert article.split == OFF_TOPIC and len(article.questions) == 2
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"text": "ok?"}\n{"question": "no text"}\n')
        with pytest.raises(ValueError, match="bad.jsonl:2"):
            load_off_topic(bad)


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> Embedder:
    """The real embedding model, loaded once for this module."""
    from tenantrag.backends.embedding.onnx import OnnxEmbedder

    return OnnxEmbedder(model_dir)


@pytest.fixture
def world(
    tmp_path: Path, model_dir: Path, embedder: Embedder
) -> Iterator[tuple[Settings, SQLiteStore]]:
    """A fresh data folder with the tenants acme and globex."""
    settings = Settings(
        data_dir=tmp_path / "data",
        jwt_secret=SecretStr("x" * 40),
        redis_url=None,
        model_dir=model_dir.parent,
    )
    settings.data_dir.mkdir(parents=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    for name in ("acme", "globex"):
        store.create_tenant(Tenant(id=name))
    yield settings, store
    store.close()


class TestRun:
    async def test_a_run_ingests_once_and_scores_every_question(
        self, world: tuple[Settings, SQLiteStore], embedder: Embedder
    ) -> None:
        """The sample's 3 articles are ingested on the first run only; every question is asked
        through the pipeline and most gold spans are in the passages it was given."""
        settings, store = world
        corpus = build_corpus(settings, store, embedder)
        tenant = store.get_tenant("acme")
        assert tenant is not None
        articles = load_squad(SAMPLE)
        first = await evaluate_answers(settings, store, corpus, tenant, articles)
        assert first.ingested == 3 and len(first.outcomes) == 9
        assert all(o.error is None for o in first.outcomes)
        overall = score(first.outcomes, first.threshold)
        assert overall.gold_in_passages >= 0.6 and overall.contains_gold > 0
        assert overall.latency_p50_ms > 0 and overall.cpu_p50_ms > 0
        again = await evaluate_answers(settings, store, corpus, tenant, articles[:1])
        assert again.ingested == 0
        edited = dataclasses.replace(articles[0], text=articles[0].text + " Revised.")
        assert missing_articles(store, tenant, [edited, *articles[1:]]) == [edited]

    def test_questions_are_embedded_by_the_servers_question_model(
        self, world: tuple[Settings, SQLiteStore], embedder: Embedder
    ) -> None:
        """The run scores what `tenantrag serve` answers: its questions' model (int8 by
        default), not the documents' fp32 model, embeds the questions (the two give different
        passages for some questions, hence different answers)."""
        settings, store = world
        corpus = build_corpus(settings, store, embedder)
        served = build_query_embedder(
            settings.embedding, model_dir=settings.onnx_dir, documents=corpus.embedder
        )
        assert served is not corpus.embedder  # int8, the default
        question = ["What is the incubation period of the virus?"]
        ours = question_embeddings(settings, corpus).embed(question)
        assert np.array_equal(ours, served.embed(question))
        assert not np.allclose(ours, corpus.embedder.embed(question), atol=1e-4)

    async def test_the_answerer_reads_the_vector_the_pipeline_computed(
        self,
        world: tuple[Settings, SQLiteStore],
        embedder: Embedder,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """As in the server, the Embed stage and the answerer share one question embedder: each
        question is embedded once, and the answerer finds its vector (a hit per question)."""
        settings, store = world
        corpus = build_corpus(settings, store, embedder)
        tenant = store.get_tenant("acme")
        assert tenant is not None
        made: list[CachingEmbedder] = []

        def remembered(settings: Settings, corpus: Corpus) -> CachingEmbedder:
            made.append(question_embeddings(settings, corpus))
            return made[-1]

        monkeypatch.setattr(evaluation_answers_run, "question_embeddings", remembered)
        run = await evaluate_answers(settings, store, corpus, tenant, load_squad(SAMPLE))
        assert len(made) == 1 and len(run.outcomes) == 9
        assert made[0].hits >= 9 and made[0].misses <= 9

    async def test_another_tenants_articles_never_reach_the_answers(
        self, world: tuple[Settings, SQLiteStore], embedder: Embedder
    ) -> None:
        """globex holds one article; asked the questions of acme's other articles, none of the
        passages it is given holds their gold spans, and nothing of acme's is quoted."""
        settings, store = world
        corpus = build_corpus(settings, store, embedder)
        articles = load_squad(SAMPLE)
        acme, globex = store.get_tenant("acme"), store.get_tenant("globex")
        assert acme is not None and globex is not None
        await evaluate_answers(settings, store, corpus, acme, articles)
        # Not ingested into globex (no document id): asked as questions about nothing it holds.
        foreign = [Article("", a.title, "", a.questions) for a in articles[1:]]
        run = await evaluate_answers(settings, store, corpus, globex, [articles[0], *foreign])
        assert run.ingested == 1
        asked_elsewhere = [o for o in run.outcomes if o.split == OFF_TOPIC]
        assert len(asked_elsewhere) == 6
        assert not any(o.gold_in_passages or o.contains_gold for o in asked_elsewhere)


@pytest.fixture
def cli(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A runner whose environment points at a fresh data folder."""
    monkeypatch.setenv("TENANTRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TENANTRAG_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("TENANTRAG_JWT_SECRET", "cli-test-secret-0123456789-abcdefghijklmnop")
    monkeypatch.delenv("TENANTRAG_REDIS_URL", raising=False)
    settings_module.get_settings.cache_clear()
    yield CliRunner()
    settings_module.get_settings.cache_clear()


class TestCommand:
    def test_eval_answers_prints_the_table_and_writes_json(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """The command reports every half and the curve, and --json keeps each outcome."""
        assert cli.invoke(main, ["tenant", "create", "acme"]).exit_code == 0
        out = tmp_path / "run.json"
        r = cli.invoke(
            main,
            ["eval-answers", "--tenant", "acme", "--limit", "4", "--json", str(out), str(SAMPLE)],
        )
        assert r.exit_code == 0, r.output
        assert "refusal threshold" in r.output and "check" in r.output
        data = json.loads(out.read_text())
        assert len(data["outcomes"]) == 4 and set(data["scores"]) >= {"all", "tune", "check"}

    def test_bad_input_gets_a_clear_error(self, cli: CliRunner, tmp_path: Path) -> None:
        """An unknown tenant and a file that is not SQuAD are refused with a message."""
        r = cli.invoke(main, ["eval-answers", "--tenant", "nobody", str(SAMPLE)])
        assert r.exit_code != 0 and "no tenant 'nobody'" in r.output
        assert cli.invoke(main, ["tenant", "create", "acme"]).exit_code == 0
        bad = tmp_path / "bad.json"
        bad.write_text("[1, 2]")
        r = cli.invoke(main, ["eval-answers", "--tenant", "acme", str(bad)])
        assert r.exit_code != 0 and "not a SQuAD-format JSON file" in r.output
