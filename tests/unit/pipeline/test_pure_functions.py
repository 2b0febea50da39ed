"""The pipeline's pure functions: citation mapping, sentence boundaries, and the bills."""

from __future__ import annotations

import pytest

from tenantrag.backends.llm import Completion
from tenantrag.metering import price_per_1k, query_bill, search_bill, write_bill
from tenantrag.models import Chunk, Hit
from tenantrag.pipeline.generate import last_boundary
from tenantrag.pipeline.postprocess import SNIPPET_CHARS, cite
from tenantrag.settings import CostSettings

PRICING = CostSettings()


def hit(doc: str, text: str = "text", score: float = 1.0) -> Hit:
    return Hit(Chunk(tenant_id="acme", document_id=doc, position=0, text=text, title=doc), score)


def answered(**overrides: object) -> dict[str, object]:
    options: dict[str, object] = {
        "mode": "hybrid",
        "embedding_tokens": 2000,
        "completion": Completion("answer", "gpt-x", prompt_tokens=900, completion_tokens=100),
        "seconds": 2.0,
        "cached": False,
    }
    return options | overrides


class TestCite:
    def test_citations_follow_first_use_and_repeat_once(self) -> None:
        """Sources are listed in the order the answer first cites them, each once."""
        answer, citations = cite("B [2]. A [1]. B again [2].", [hit("a"), hit("b")])
        assert answer == "B [2]. A [1]. B again [2]."
        assert [(c.index, c.document_id) for c in citations] == [(2, "b"), (1, "a")]

    def test_markers_naming_no_source_are_removed(self) -> None:
        """A [n] beyond the hits, or of a source the prompt did not hold, is dropped."""
        answer, citations = cite("X [1][3]. Y [2].", [hit("a"), hit("b")], shown={1})
        assert answer == "X [1]. Y ."
        assert [c.index for c in citations] == [1]

    def test_snippet_is_cut_at_its_limit(self) -> None:
        """A long source's snippet is its first SNIPPET_CHARS characters and an ellipsis."""
        _, citations = cite("[1]", [hit("a", "w" * (SNIPPET_CHARS + 10), score=0.4)])
        assert citations[0].snippet == "w" * SNIPPET_CHARS + "…"
        assert citations[0].score == 0.4


class TestLastBoundary:
    @pytest.mark.parametrize(
        ("text", "cut"),
        [
            ("No end yet", 0),
            ("One. Two", 5),
            ("One! Two? Three", 10),
            ("Line\nnext", 5),
            ("Version 1.5 is out", 0),  # a dot inside a number ends no sentence
            ("Ends with a dot.", 0),  # no space after it yet: the sentence may go on
        ],
    )
    def test_cut_after_the_last_sentence_end(self, text: str, cut: int) -> None:
        """The cut is just after the last `.`, `!` or `?` followed by whitespace, or a newline."""
        assert last_boundary(text) == cut


class TestBills:
    def test_answered_query_bills_retrieval_embedding_model_and_compute(self) -> None:
        """An answered query costs retrieval, the question's embedding, the model and time."""
        items = query_bill(PRICING, **answered())  # type: ignore[arg-type]
        by_type = {i.cost_type: i for i in items}
        assert list(by_type) == ["retrieval", "embedding", "llm_inference", "compute"]
        rate = price_per_1k(PRICING.llm_per_1k_tokens, "gpt-x")
        assert by_type["llm_inference"].amount_usd == pytest.approx(rate)
        assert by_type["llm_inference"].details["tokens"] == 1000
        embedding = 2 * PRICING.embedding_per_1k_tokens
        assert by_type["embedding"].amount_usd == pytest.approx(embedding)
        assert by_type["compute"].amount_usd == pytest.approx(2 * PRICING.compute_per_second)

    def test_cached_answer_costs_compute_only(self) -> None:
        """A cache hit made no retrieval, embedding or model call: compute only."""
        items = query_bill(PRICING, **answered(cached=True))  # type: ignore[arg-type]
        assert [i.cost_type for i in items] == ["compute"]

    def test_model_prices_fall_back_to_the_default(self) -> None:
        """A model missing from the price table is charged the table's default."""
        assert price_per_1k({"default": 0.5, "m": 0.1}, "m") == 0.1
        assert price_per_1k({"default": 0.5}, "other") == 0.5

    def test_negative_time_is_never_billed(self) -> None:
        """A clock that went backwards bills zero seconds, not a credit."""
        retrieval, compute = search_bill(PRICING, mode="bm25", seconds=-1.0)
        assert retrieval.details == {"mode": "bm25"}
        assert compute.amount_usd == 0.0

    def test_write_bills_embedding_only_when_tokens_were_embedded(self) -> None:
        """A delete embeds nothing: compute only; an ingest adds its tokens' embedding cost."""
        assert [i.cost_type for i in write_bill(PRICING, seconds=0.1, tokens=0)] == ["compute"]
        items = write_bill(PRICING, seconds=0.1, tokens=500)
        assert items[1].details == {"tokens": 500}
