"""The behaviour every VectorIndex has: isolation, clearance before ranking, allowed ids, atomicity.

Runs against the numpy oracle, exact FAISS, and FAISS switched to IVF from a few vectors on.
Add an implementation by adding a case to `build`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from tenantrag.backends import VectorIndex
from tenantrag.backends.vector.faiss import FaissVectorIndex
from tenantrag.backends.vector.memory import MemoryVectorIndex
from tenantrag.models import Chunk, Classification, IndexHit

ACME, GLOBEX = "acme", "globex"
DIMS = 16
TOP = Classification.RESTRICTED
IMPLEMENTATIONS = ["memory", "faiss", "faiss-approximate"]


def build(implementation: str, folder: Path) -> VectorIndex:
    """A new, empty index of `implementation` keeping its files under `folder`."""
    if implementation == "memory":
        return MemoryVectorIndex(dimensions=DIMS)
    if implementation == "faiss":
        return FaissVectorIndex(folder, dimensions=DIMS)
    if implementation == "faiss-approximate":
        return FaissVectorIndex(folder, dimensions=DIMS, approximate_threshold=8)
    raise AssertionError(implementation)


@pytest.fixture(params=IMPLEMENTATIONS)
def index(request: pytest.FixtureRequest, tmp_path: Path) -> VectorIndex:
    """A fresh, empty index of each implementation."""
    return build(request.param, tmp_path / "indexes")


def chunk(
    tenant: str, document: str, rowid: int, level: Classification = Classification.PUBLIC
) -> Chunk:
    """A chunk of `document` in `tenant` with the store rowid `rowid`."""
    return Chunk(tenant, document, rowid, f"text {rowid}", classification=level, rowid=rowid)


def basis(i: int, scale: float = 1.0) -> np.ndarray:
    """The unit vector along axis `i` (times `scale`)."""
    vector = np.zeros(DIMS, dtype=np.float32)
    vector[i] = scale
    return vector


def near(i: int, j: int, t: float) -> np.ndarray:
    """A unit vector between axes i and j, with cosine to axis i falling as t grows."""
    vector = basis(i) * (1 - t) + basis(j) * t
    return vector / np.linalg.norm(vector)


def ids(hits: list[IndexHit]) -> list[int]:
    """The rowids of `hits`, in order."""
    return [hit.rowid for hit in hits]


def test_is_a_vector_index(index: VectorIndex) -> None:
    """The implementation satisfies the VectorIndex protocol."""
    assert isinstance(index, VectorIndex)


def test_identical_vectors_never_cross_tenants(index: VectorIndex) -> None:
    """Two tenants with the very same vectors each find only their own rowids."""
    vectors = np.stack([near(0, 1, t) for t in (0.0, 0.2, 0.4)])
    index.apply(
        ACME, [chunk(ACME, "a", r) for r in (1, 2, 3)], vectors, replace_documents=[], seq=1
    )
    index.apply(
        GLOBEX, [chunk(GLOBEX, "g", r) for r in (11, 12, 13)], vectors, replace_documents=[], seq=1
    )
    assert ids(index.search(ACME, basis(0), limit=10, max_classification=TOP)) == [1, 2, 3]
    assert ids(index.search(GLOBEX, basis(0), limit=10, max_classification=TOP)) == [11, 12, 13]
    assert index.search("initech", basis(0), limit=10, max_classification=TOP) == []


def test_nearest_first_with_cosine_scores(index: VectorIndex) -> None:
    """Hits come nearest first; scores are cosines, whatever the vectors' lengths."""
    vectors = np.stack([near(0, 1, 0.5) * 3, basis(0, 7.0), basis(1, 0.5)])
    index.apply(
        ACME, [chunk(ACME, "a", r) for r in (1, 2, 3)], vectors, replace_documents=[], seq=1
    )
    hits = index.search(ACME, basis(0, 2.0), limit=2, max_classification=TOP)
    assert ids(hits) == [2, 1]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[1].score == pytest.approx(np.sqrt(0.5), abs=1e-5)


def test_classification_filters_before_ranking(index: VectorIndex) -> None:
    """Twenty nearer restricted chunks do not crowd out the three permitted ones."""
    restricted = [chunk(ACME, f"r{r}", r, Classification.RESTRICTED) for r in range(1, 21)]
    public = [chunk(ACME, "p", r, Classification.PUBLIC) for r in (101, 102, 103)]
    internal = [chunk(ACME, "i", 201, Classification.INTERNAL)]
    vectors = np.stack(
        [near(0, 1, 0.01 * r) for r in range(1, 21)]
        + [near(0, 1, 0.6 + 0.1 * k) for k in range(3)]
        + [near(0, 1, 0.5)]
    )
    index.apply(ACME, restricted + public + internal, vectors, replace_documents=[], seq=1)
    assert ids(index.search(ACME, basis(0), limit=3, max_classification=Classification.PUBLIC)) == [
        101,
        102,
        103,
    ]
    assert ids(
        index.search(ACME, basis(0), limit=2, max_classification=Classification.CONFIDENTIAL)
    ) == [201, 101]
    assert len(index.search(ACME, basis(0), limit=30, max_classification=TOP)) == 24


def test_allowed_restricts_results(index: VectorIndex) -> None:
    """Only allowed rowids come back; another tenant's rowid in `allowed` does not leak it."""
    vectors = np.stack([near(0, 1, 0.1 * k) for k in range(6)])
    index.apply(
        ACME, [chunk(ACME, "a", r) for r in range(1, 7)], vectors, replace_documents=[], seq=1
    )
    index.apply(GLOBEX, [chunk(GLOBEX, "g", 50)], vectors[:1], replace_documents=[], seq=1)
    found = index.search(ACME, basis(0), limit=10, max_classification=TOP, allowed=[6, 3, 50, 999])
    assert ids(found) == [3, 6]
    assert index.search(ACME, basis(0), limit=10, max_classification=TOP, allowed=[]) == []


def test_replace_and_delete(index: VectorIndex) -> None:
    """Replacing a document drops its old chunks; replacing it with nothing deletes it."""
    index.apply(
        ACME,
        [chunk(ACME, "d", 1), chunk(ACME, "e", 2)],
        np.stack([basis(0), basis(1)]),
        replace_documents=[],
        seq=1,
    )
    index.apply(ACME, [chunk(ACME, "d", 3)], np.stack([basis(0)]), replace_documents=["d"], seq=2)
    assert ids(index.search(ACME, basis(0), limit=10, max_classification=TOP)) == [3, 2]
    index.apply(ACME, [], np.zeros((0, DIMS), np.float32), replace_documents=["d", "nope"], seq=3)
    assert ids(index.search(ACME, basis(0), limit=10, max_classification=TOP)) == [2]


def test_replace_is_atomic_for_a_concurrent_searcher(index: VectorIndex) -> None:
    """A searcher running during many replaces always sees exactly one version of the document."""
    seen: list[list[int]] = []
    done = threading.Event()

    def searcher() -> None:
        while not done.is_set():
            seen.append(sorted(ids(index.search(ACME, basis(0), limit=10, max_classification=TOP))))

    def version(n: int) -> list[Chunk]:
        return [chunk(ACME, "doc", 2 * n + 1), chunk(ACME, "doc", 2 * n + 2)]

    pair = np.stack([basis(0), near(0, 1, 0.3)])
    index.apply(ACME, version(0), pair, replace_documents=[], seq=1)
    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        for n in range(1, 200):
            index.apply(ACME, version(n), pair, replace_documents=["doc"], seq=n + 1)
    finally:
        done.set()
        thread.join()
    assert seen
    for found in seen:
        assert len(found) == 2 and found[0] % 2 == 1 and found[1] == found[0] + 1


def test_applied_seq_is_recorded(index: VectorIndex) -> None:
    """applied_seq is 0 for an unknown tenant and then the seq of the latest apply."""
    assert index.applied_seq(ACME) == 0
    index.apply(ACME, [chunk(ACME, "d", 1)], np.stack([basis(0)]), replace_documents=[], seq=4)
    index.apply(ACME, [], np.zeros((0, 0), np.float32), replace_documents=["d"], seq=6)
    assert index.applied_seq(ACME) == 6
    assert index.applied_seq(GLOBEX) == 0


def test_drop_forgets_only_that_tenant(index: VectorIndex) -> None:
    """After drop the tenant has no chunks and seq 0; the other tenant is untouched."""
    index.apply(ACME, [chunk(ACME, "a", 1)], np.stack([basis(0)]), replace_documents=[], seq=1)
    index.apply(GLOBEX, [chunk(GLOBEX, "g", 2)], np.stack([basis(0)]), replace_documents=[], seq=1)
    index.drop(ACME)
    assert index.search(ACME, basis(0), limit=5, max_classification=TOP) == []
    assert index.applied_seq(ACME) == 0
    assert ids(index.search(GLOBEX, basis(0), limit=5, max_classification=TOP)) == [2]


def test_rejects_bad_input(index: VectorIndex) -> None:
    """Another tenant's chunk, a wrong width or a count mismatch raises ValueError."""
    with pytest.raises(ValueError, match="tenant"):
        index.apply(
            ACME, [chunk(GLOBEX, "g", 1)], np.stack([basis(0)]), replace_documents=[], seq=1
        )
    with pytest.raises(ValueError, match="shape"):
        index.apply(
            ACME,
            [chunk(ACME, "a", 1)],
            np.ones((1, DIMS + 1), np.float32),
            replace_documents=[],
            seq=1,
        )
    with pytest.raises(ValueError, match="vectors"):
        index.apply(
            ACME, [chunk(ACME, "a", 1)], np.ones((2, DIMS), np.float32), replace_documents=[], seq=1
        )


def test_agrees_with_the_brute_force_oracle(index: VectorIndex) -> None:
    """On random data, the top 10 for many queries equal those of the numpy oracle."""
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((400, DIMS)).astype(np.float32)
    chunks = [chunk(ACME, f"d{r // 4}", r, Classification(r % 4)) for r in range(1, 401)]
    oracle = MemoryVectorIndex(dimensions=DIMS)
    for target in (index, oracle):
        target.apply(ACME, chunks, vectors, replace_documents=[], seq=1)
        target.apply(
            ACME,
            [],
            np.zeros((0, DIMS), np.float32),
            replace_documents=[f"d{k}" for k in range(0, 100, 3)],
            seq=2,
        )
    for query in rng.standard_normal((20, DIMS)).astype(np.float32):
        for ceiling in Classification:
            expected = oracle.search(ACME, query, limit=10, max_classification=ceiling)
            got = index.search(ACME, query, limit=10, max_classification=ceiling)
            assert ids(got) == ids(expected)
            assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=1e-5)
