"""Score fusion for hybrid retrieval: pure functions over ranked lists of index hits.

Each retriever's scores are put on a common scale (z-score or min-max), then summed with the
tenant's weights; reciprocal rank fusion is the rank-only alternative. A chunk missing from
one list gets that list's floor (the lowest normalised score seen), not zero, so z-scores
are not rewarded for being absent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tenantrag.models import IndexHit

RRF_K = 60


@dataclass(frozen=True, slots=True)
class Fused:
    """A chunk's fused score with the raw score and 1-based rank in each list."""

    rowid: int
    score: float
    bm25: float | None
    vector: float | None
    bm25_rank: int | None
    vector_rank: int | None


def zscore(scores: Sequence[float]) -> list[float]:
    """(s - mean) / std; all zeros when the scores do not vary."""
    if not scores:
        return []
    mean = sum(scores) / len(scores)
    var = sum((s - mean) ** 2 for s in scores) / len(scores)
    std = math.sqrt(var)
    if std < 1e-12:
        return [0.0] * len(scores)
    return [(s - mean) / std for s in scores]


def minmax(scores: Sequence[float]) -> list[float]:
    """(s - min) / (max - min) into [0, 1]; all ones when the scores do not vary."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high - low < 1e-12:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


NORMALISERS = {"zscore": zscore, "minmax": minmax}


def fuse(
    bm25: Sequence[IndexHit],
    vector: Sequence[IndexHit],
    *,
    bm25_weight: float,
    vector_weight: float,
    method: str = "zscore",
    limit: int | None = None,
) -> list[Fused]:
    """Merge two ranked lists into one, best first, by normalised weighted sum or RRF."""
    raw_b = {h.rowid: h.score for h in bm25}
    raw_v = {h.rowid: h.score for h in vector}
    rank_b = {h.rowid: i for i, h in enumerate(bm25, start=1)}
    rank_v = {h.rowid: i for i, h in enumerate(vector, start=1)}
    ids = list(dict.fromkeys([*raw_b, *raw_v]))
    if method == "rrf":
        combined = {
            i: bm25_weight * _rrf(rank_b.get(i)) + vector_weight * _rrf(rank_v.get(i)) for i in ids
        }
    else:
        norm = NORMALISERS[method]
        nb = dict(zip(raw_b, norm(list(raw_b.values())), strict=True))
        nv = dict(zip(raw_v, norm(list(raw_v.values())), strict=True))
        floor_b = min(nb.values(), default=0.0)
        floor_v = min(nv.values(), default=0.0)
        combined = {
            i: bm25_weight * nb.get(i, floor_b) + vector_weight * nv.get(i, floor_v) for i in ids
        }
    ordered = sorted(ids, key=lambda i: (-combined[i], i))
    if limit is not None:
        ordered = ordered[:limit]
    return [
        Fused(i, combined[i], raw_b.get(i), raw_v.get(i), rank_b.get(i), rank_v.get(i))
        for i in ordered
    ]


def single(hits: Sequence[IndexHit], *, kind: str) -> list[Fused]:
    """One retriever's list as fused results (modes bm25 and vector)."""
    out = []
    for rank, h in enumerate(hits, start=1):
        if kind == "bm25":
            out.append(Fused(h.rowid, h.score, h.score, None, rank, None))
        else:
            out.append(Fused(h.rowid, h.score, None, h.score, None, rank))
    return out


def _rrf(rank: int | None) -> float:
    return 0.0 if rank is None else 1.0 / (RRF_K + rank)
