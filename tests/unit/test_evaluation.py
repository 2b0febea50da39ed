"""Retrieval metrics and BEIR loaders against values worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tenantrag.evaluation import Scores, load_qrels, load_queries, ndcg, score_run

LOG2_3 = math.log2(3)  # the discount at rank 2


def test_ndcg_binary_with_a_miss_between_hits() -> None:
    """Hits at ranks 1 and 3 of two relevant give (1 + 1/2) / (1 + 1/log2 3)."""
    assert ndcg(["a", "x", "b"], {"a": 1, "b": 1}) == pytest.approx(1.5 / (1 + 1 / LOG2_3))
    assert ndcg(["a", "x", "b"], {"a": 1, "b": 1}) == pytest.approx(0.919721, abs=1e-6)


def test_ndcg_graded_relevance_in_the_wrong_order() -> None:
    """Grade 1 before grade 2 scores (1 + 2/log2 3) / (2 + 1/log2 3)."""
    expected = (1 + 2 / LOG2_3) / (2 + 1 / LOG2_3)
    assert ndcg(["b", "a"], {"a": 2, "b": 1}) == pytest.approx(expected)
    assert ndcg(["a", "b"], {"a": 2, "b": 1}) == pytest.approx(1.0)


def test_ndcg_ignores_hits_below_the_cutoff() -> None:
    """A relevant document at rank 11 adds nothing to nDCG@10."""
    ranked = [f"x{i}" for i in range(10)] + ["a"]
    assert ndcg(ranked, {"a": 1}) == 0.0
    assert ndcg(ranked, {"a": 1}, k=11) == pytest.approx(1 / math.log2(12))


def test_ndcg_ideal_is_cut_at_k_too() -> None:
    """Twelve relevant documents, ten of them in the top ten, is a perfect nDCG@10."""
    relevant = {f"d{i}": 1 for i in range(12)}
    assert ndcg([f"d{i}" for i in range(10)], relevant) == pytest.approx(1.0)


def test_ndcg_without_relevant_documents_is_zero() -> None:
    """A query with no judged documents scores 0, not a division error."""
    assert ndcg(["a", "b"], {}) == 0.0


def test_score_run_means_over_judged_queries_only() -> None:
    """Two judged queries are averaged; an unjudged one and one with empty qrels are ignored."""
    runs = {
        "q1": ["a", "x", "b", "y", "z", "w"],
        "q2": ["x", "y", "z", "u", "v", "c"],
        "q3": ["a"],
        "q4": ["a"],
    }
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"c": 1, "d": 1}, "q4": {}}
    scores = score_run(runs, qrels)
    q1_ndcg = 1.5 / (1 + 1 / LOG2_3)
    q2_ndcg = (1 / math.log2(7)) / (1 + 1 / LOG2_3)  # c at rank 6
    assert scores.queries == 2
    assert scores.ndcg_at_10 == pytest.approx((q1_ndcg + q2_ndcg) / 2)
    assert scores.recall_at_100 == pytest.approx((1.0 + 0.5) / 2)
    assert scores.p_at_5 == pytest.approx((2 / 5 + 0) / 2)
    assert scores.success_at_5 == pytest.approx(0.5)
    assert scores.mrr_at_10 == pytest.approx((1 + 1 / 6) / 2)


def test_score_run_cutoffs_for_recall_and_mrr() -> None:
    """A hit at rank 11 counts for Recall@100 but not MRR@10; one at rank 101 counts for neither."""
    ranked = [f"x{i}" for i in range(10)] + ["a"] + [f"y{i}" for i in range(89)] + ["b"]
    scores = score_run({"q": ranked}, {"q": {"a": 1, "b": 1}})
    assert len(ranked) == 101
    assert scores.recall_at_100 == pytest.approx(0.5)
    assert scores.mrr_at_10 == 0.0
    assert scores.success_at_5 == 0.0
    assert scores.ndcg_at_10 == 0.0


def test_score_run_with_nothing_judged_is_all_zero() -> None:
    """No judged query gives zero scores over zero queries."""
    assert score_run({"q": ["a"]}, {}) == Scores(0, 0, 0, 0, 0, 0)


def test_loaders_read_beir_files(tmp_path: Path) -> None:
    """queries_<split>.jsonl and qrels/<split>.tsv load, and zero-relevance rows are dropped."""
    (tmp_path / "queries_train.jsonl").write_text(
        '{"_id": "1", "text": "first claim", "metadata": {}}\n\n{"_id": 2, "text": "second"}\n'
    )
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n1\td1\t1\n1\td2\t0\n2\td3\t2\n"
    )
    assert load_queries(tmp_path, "train") == {"1": "first claim", "2": "second"}
    assert load_qrels(tmp_path, "train") == {"1": {"d1": 1}, "2": {"d3": 2}}


def test_load_queries_falls_back_to_queries_jsonl(tmp_path: Path) -> None:
    """Without queries_<split>.jsonl, the split-less queries.jsonl is read."""
    (tmp_path / "queries.jsonl").write_text('{"_id": "7", "text": "only file"}\n')
    assert load_queries(tmp_path, "test") == {"7": "only file"}
