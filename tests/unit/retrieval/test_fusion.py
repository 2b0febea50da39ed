"""Score fusion: z-score and min-max normalisation, weighted sums, RRF, single lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from tenantrag.models import IndexHit
from tenantrag.retrieval.fusion import RRF_K, fuse, minmax, single, zscore


def hits(*pairs: tuple[int, float]) -> list[IndexHit]:
    return [IndexHit(rowid, score) for rowid, score in pairs]


class TestNormalisers:
    def test_zscore_centres_and_scales(self) -> None:
        """Z-scores have mean 0 and unit (population) standard deviation."""
        out = zscore([1.0, 2.0, 3.0])
        assert sum(out) == pytest.approx(0.0)
        assert out[2] == pytest.approx(1.224744871)

    def test_minmax_maps_onto_the_unit_interval(self) -> None:
        """The lowest score becomes 0, the highest 1."""
        assert minmax([2.0, 4.0, 3.0]) == [0.0, 1.0, 0.5]

    @pytest.mark.parametrize(("normalise", "flat"), [(zscore, 0.0), (minmax, 1.0)])
    def test_scores_that_do_not_vary_do_not_divide_by_zero(
        self, normalise: Callable[[Sequence[float]], list[float]], flat: float
    ) -> None:
        """Equal scores normalise to a constant rather than NaN."""
        assert normalise([0.7, 0.7]) == [flat, flat]

    def test_empty_lists_stay_empty(self) -> None:
        """No scores, no normalised scores."""
        assert zscore([]) == [] and minmax([]) == []


class TestFuse:
    def test_chunk_found_by_both_retrievers_ranks_first(self) -> None:
        """A chunk both BM25 and the vector search found outranks chunks only one found."""
        fused = fuse(
            hits((1, 9.0), (2, 5.0)),
            hits((3, 0.9), (1, 0.8)),
            bm25_weight=0.5,
            vector_weight=0.5,
            method="minmax",
        )
        assert fused[0].rowid == 1
        assert {f.rowid for f in fused} == {1, 2, 3}

    def test_missing_chunk_gets_the_lists_floor_not_zero(self) -> None:
        """A chunk absent from one list takes that list's lowest normalised score."""
        fused = fuse(
            hits((1, 3.0), (2, 1.0)),
            hits((1, 0.9), (3, 0.1)),
            bm25_weight=1.0,
            vector_weight=1.0,
            method="zscore",
        )
        by_id = {f.rowid: f for f in fused}
        assert by_id[3].score == pytest.approx(-2.0)  # BM25's floor (-1) plus its own -1
        assert by_id[2].score == pytest.approx(-2.0)

    def test_each_result_keeps_raw_scores_and_ranks(self) -> None:
        """Fused results carry each retriever's raw score and 1-based rank, None when absent."""
        fused = fuse(hits((1, 2.0)), hits((2, 0.5), (1, 0.4)), bm25_weight=0.5, vector_weight=0.5)
        one = next(f for f in fused if f.rowid == 1)
        two = next(f for f in fused if f.rowid == 2)
        assert (one.bm25, one.vector, one.bm25_rank, one.vector_rank) == (2.0, 0.4, 1, 2)
        assert (two.bm25, two.bm25_rank, two.vector_rank) == (None, None, 1)

    def test_rrf_uses_ranks_only(self) -> None:
        """RRF scores are weighted sums of 1 / (k + rank), whatever the raw scores."""
        fused = fuse(
            hits((1, 1000.0), (2, 1.0)),
            hits((2, 0.1)),
            bm25_weight=1.0,
            vector_weight=1.0,
            method="rrf",
        )
        assert fused[0].rowid == 2
        assert fused[0].score == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 1))

    def test_ties_break_by_rowid_and_limit_cuts(self) -> None:
        """Equal fused scores are ordered by rowid, so runs are reproducible; `limit` cuts."""
        fused = fuse(hits((5, 1.0), (4, 1.0)), [], bm25_weight=1.0, vector_weight=0.0, limit=1)
        assert [f.rowid for f in fused] == [4]

    def test_single_list_keeps_its_order_and_kind(self) -> None:
        """A one-retriever mode passes its list through, scores under the right name."""
        out = single(hits((7, 0.9), (8, 0.2)), kind="vector")
        assert [(f.rowid, f.vector, f.vector_rank, f.bm25) for f in out] == [
            (7, 0.9, 1, None),
            (8, 0.2, 2, None),
        ]
