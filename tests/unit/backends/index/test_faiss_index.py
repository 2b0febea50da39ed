"""FaissVectorIndex beyond the contract: snapshots, the switch to IVF, many tenants."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tenantrag.backends.vector.faiss import FaissVectorIndex
from tenantrag.backends.vector.memory import MemoryVectorIndex
from tenantrag.models import Chunk, Classification, IndexHit

DIMS = 16
TOP = Classification.RESTRICTED


def batch(tenant: str, first: int, n: int, seed: int) -> tuple[list[Chunk], np.ndarray]:
    """n chunks (rowids from `first`, ten per document, levels cycling) and random vectors."""
    chunks = [
        Chunk(tenant, f"d{r // 10}", r % 10, "", classification=Classification(r % 4), rowid=r)
        for r in range(first, first + n)
    ]
    return chunks, np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)


def ids(hits: list[IndexHit]) -> list[int]:
    """The rowids of `hits`, in order."""
    return [h.rowid for h in hits]


def test_snapshot_round_trip(tmp_path: Path) -> None:
    """A new instance loads the snapshot: same seq, same answers, and deletes still work."""
    index = FaissVectorIndex(tmp_path, dimensions=DIMS)
    chunks, vectors = batch("acme", 1, 200, seed=1)
    index.apply("acme", chunks, vectors, replace_documents=[], seq=9)
    assert index.snapshot("acme", force=True)
    loaded = FaissVectorIndex(tmp_path, dimensions=DIMS)
    query = vectors[17]
    assert loaded.applied_seq("acme") == 9
    assert ids(loaded.search("acme", query, limit=10, max_classification=TOP)) == ids(
        index.search("acme", query, limit=10, max_classification=TOP)
    )
    loaded.apply("acme", [], np.zeros((0, DIMS), np.float32), replace_documents=["d1"], seq=10)
    assert 18 not in ids(loaded.search("acme", query, limit=10, max_classification=TOP))


def test_snapshot_policy(tmp_path: Path) -> None:
    """Small or barely changed tenants are not written; a newer snapshot is never overwritten."""
    index = FaissVectorIndex(tmp_path, dimensions=DIMS, snapshot_min_vectors=100)
    index.apply("acme", *batch("acme", 1, 50, seed=1), replace_documents=[], seq=1)
    assert not index.snapshot("acme")  # too small to be worth it
    index.apply("acme", *batch("acme", 51, 100, seed=2), replace_documents=[], seq=2)
    assert index.snapshot("acme")
    assert not index.snapshot("acme")  # nothing changed since
    stale = FaissVectorIndex(tmp_path / "other", dimensions=DIMS)
    stale.apply("acme", *batch("acme", 1, 10, seed=3), replace_documents=[], seq=1)
    stale.root = tmp_path
    assert not stale.snapshot("acme", force=True)  # the file holds seq 2 already
    assert FaissVectorIndex(tmp_path, dimensions=DIMS).applied_seq("acme") == 2


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04broken"])
def test_unreadable_snapshot_is_ignored(tmp_path: Path, content: bytes) -> None:
    """A damaged snapshot counts as none: seq 0, so the store replays everything."""
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "vectors.faiss").write_bytes(content)
    index = FaissVectorIndex(tmp_path, dimensions=DIMS)
    assert index.applied_seq("acme") == 0
    assert index.search("acme", np.ones(DIMS, np.float32), limit=5, max_classification=TOP) == []


def test_snapshot_of_other_dimensions_is_ignored(tmp_path: Path) -> None:
    """A snapshot made for another embedding width is not loaded."""
    narrow = FaissVectorIndex(tmp_path, dimensions=DIMS)
    narrow.apply("acme", *batch("acme", 1, 5, seed=1), replace_documents=[], seq=3)
    assert narrow.snapshot("acme", force=True)
    assert FaissVectorIndex(tmp_path, dimensions=DIMS * 2).applied_seq("acme") == 0


def test_switches_to_ivf_past_the_threshold_and_stays_correct(tmp_path: Path) -> None:
    """Past the threshold big levels become IVF and retrain as they grow; all lists probed here."""
    index = FaissVectorIndex(tmp_path, dimensions=DIMS, approximate_threshold=400)
    oracle = MemoryVectorIndex(dimensions=DIMS)
    seen: list[list[Classification]] = []
    for step in range(8):
        chunks, vectors = batch("acme", 1 + 300 * step, 300, seed=step)
        for target in (index, oracle):
            target.apply("acme", chunks, vectors, replace_documents=[f"d{step * 30}"], seq=step + 1)
        seen.append(index.approximate_levels("acme"))
    assert seen[0] == [] and seen[-1] == list(Classification)
    assert index.snapshot("acme", force=True)
    reloaded = FaissVectorIndex(tmp_path, dimensions=DIMS, approximate_threshold=400)
    assert reloaded.approximate_levels("acme") == list(Classification)
    for query in np.random.default_rng(99).standard_normal((10, DIMS)).astype(np.float32):
        for ceiling in (Classification.PUBLIC, TOP):
            expected = ids(oracle.search("acme", query, limit=10, max_classification=ceiling))
            assert (
                ids(index.search("acme", query, limit=10, max_classification=ceiling)) == expected
            )
            assert (
                ids(reloaded.search("acme", query, limit=10, max_classification=ceiling))
                == expected
            )
        allowed = list(range(1, 2401, 97))
        expected = ids(
            oracle.search("acme", query, limit=5, max_classification=TOP, allowed=allowed)
        )
        assert (
            ids(index.search("acme", query, limit=5, max_classification=TOP, allowed=allowed))
            == expected
        )


def test_vectors_above_a_level_never_make_it_approximate(tmp_path: Path) -> None:
    """Restricted vectors do not push the internal level past the threshold: searches at internal
    clearance return the same hits and scores as in a tenant without them."""
    index = FaissVectorIndex(tmp_path, dimensions=DIMS, approximate_threshold=400)
    rng = np.random.default_rng(5)
    internal = [
        Chunk("acme", f"i{r}", 0, "", classification=Classification.INTERNAL, rowid=r)
        for r in range(150)
    ]
    restricted = [
        Chunk("acme", f"r{r}", 0, "", classification=TOP, rowid=1000 + r) for r in range(1000)
    ]
    vectors = rng.standard_normal((150, DIMS)).astype(np.float32)
    for tenant, extra in (("acme", restricted), ("bare", [])):
        mine = [replace(c, tenant_id=tenant) for c in extra]
        index.apply(
            tenant,
            mine,
            rng.standard_normal((len(mine), DIMS)).astype(np.float32),
            replace_documents=[],
            seq=1,
        )
        index.apply(
            tenant,
            [replace(c, tenant_id=tenant) for c in internal],
            vectors,
            replace_documents=[],
            seq=2,
        )
    assert index.approximate_levels("acme") == [TOP]
    assert index.approximate_levels("bare") == []
    for query in rng.standard_normal((5, DIMS)).astype(np.float32):
        got = [
            index.search(t, query, limit=10, max_classification=Classification.INTERNAL)
            for t in ("acme", "bare")
        ]
        assert got[0] == got[1]


def test_least_recently_used_tenants_are_let_go(tmp_path: Path) -> None:
    """With room for three tenants, an evicted tenant comes back from its snapshot or at seq 0."""
    index = FaissVectorIndex(tmp_path, dimensions=DIMS, max_open=3)
    for i in range(10):
        index.apply(f"t{i:02d}", *batch(f"t{i:02d}", 1, 5, seed=i), replace_documents=[], seq=i + 1)
        assert index.open_count() <= 3
    index.snapshot("t09", force=True)
    for i in range(3):
        index.applied_seq(f"u{i:02d}")  # touching new tenants pushes t07..t09 out
    assert index.applied_seq("t09") == 10  # back from its snapshot
    assert index.applied_seq("t08") == 0  # no snapshot: IndexSync will replay it from the store
    assert index.open_count() <= 3


def test_malformed_tenant_ids_are_refused(tmp_path: Path) -> None:
    """A tenant id that is not well formed never becomes a path."""
    with pytest.raises(ValueError, match="tenant"):
        FaissVectorIndex(tmp_path, dimensions=DIMS).applied_seq("../escape")


def test_damaged_index_inside_a_readable_snapshot_is_ignored(tmp_path: Path) -> None:
    """An archive whose serialised index is garbage also counts as no snapshot."""
    index = FaissVectorIndex(tmp_path, dimensions=DIMS)
    index.apply("acme", *batch("acme", 1, 8, seed=1), replace_documents=[], seq=4)
    assert index.snapshot("acme", force=True)
    path = tmp_path / "acme" / "vectors.faiss"
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays = {
        k: (np.frombuffer(b"garbage!" * 8, np.uint8) if k.startswith("level_") else v)
        for k, v in arrays.items()
    }
    with path.open("wb") as out:
        np.savez(out, **arrays)
    assert FaissVectorIndex(tmp_path, dimensions=DIMS).applied_seq("acme") == 0


def test_read_write_lock_lets_readers_share_and_writers_wait() -> None:
    """Two readers hold the lock at once; a writer waits for both and then holds it alone."""
    import threading

    from tenantrag.backends.vector.faiss import ReadWriteLock

    lock = ReadWriteLock()
    both_reading = threading.Barrier(3, timeout=5)
    release = threading.Event()
    wrote: list[str] = []

    def reader() -> None:
        with lock.read():
            both_reading.wait()  # breaks (and the test fails) unless both hold it together
            release.wait(5)

    def writer() -> None:
        with lock.write():
            wrote.append("written")

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    both_reading.wait()  # both readers are inside the lock now
    late = threading.Thread(target=writer)
    late.start()
    late.join(0.2)
    assert wrote == []  # the readers still hold it
    release.set()
    late.join(5)
    for thread in readers:
        thread.join(5)
    assert wrote == ["written"]


def test_concurrent_searches_and_writes_of_one_tenant_stay_consistent(tmp_path: Path) -> None:
    """Searches on four threads while documents are added and removed: every answer is a
    consistent view (no removed document, no duplicate, ordered by score), nothing crashes."""
    from concurrent.futures import ThreadPoolExecutor

    index = FaissVectorIndex(tmp_path, dimensions=DIMS)
    chunks, vectors = batch("acme", 1, 400, seed=3)
    index.apply("acme", chunks, vectors, replace_documents=[], seq=1)
    removed_for_good = {f"d{n}" for n in range(0, 40, 2)}
    removed_rowids = {c.rowid for c in chunks if c.document_id in removed_for_good}

    def search(i: int) -> list[IndexHit]:
        return index.search("acme", vectors[i % 400], limit=10, max_classification=TOP)

    def churn() -> None:
        for seq, document in enumerate(sorted(removed_for_good), start=2):
            index.apply(
                "acme", [], np.zeros((0, DIMS), np.float32), replace_documents=[document], seq=seq
            )

    with ThreadPoolExecutor(5) as pool:
        writes = pool.submit(churn)
        answers = list(pool.map(search, range(2000)))
        writes.result()
    for hits in answers:
        assert len(set(ids(hits))) == len(hits) == 10
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    final = index.search("acme", vectors[5], limit=400, max_classification=TOP)
    assert not removed_rowids & set(ids(final))
    assert index.applied_seq("acme") == 1 + len(removed_for_good)


def test_searches_on_any_thread_use_one_openmp_thread(tmp_path: Path) -> None:
    """A search on a fresh worker thread runs single-threaded, like one on the constructor's.

    OpenMP's thread count belongs to each calling thread; a team left on a worker thread spins
    after every search and burned milliseconds of CPU per request.
    """
    import threading

    import faiss

    index = FaissVectorIndex(tmp_path, dimensions=DIMS)
    chunks, vectors = batch("acme", 1, 50, seed=1)
    index.apply("acme", chunks, vectors, replace_documents=[], seq=1)
    seen: list[int] = []

    def search_then_look() -> None:
        index.search("acme", vectors[0], limit=5, max_classification=TOP)
        seen.append(faiss.omp_get_max_threads())

    worker = threading.Thread(target=search_then_look)
    worker.start()
    worker.join()
    assert seen == [1]
