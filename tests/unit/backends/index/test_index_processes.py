"""Worker processes (spawned) sharing one data folder: no corruption, prompt visibility."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest
from tests.unit.backends.index.index_helpers import document, make_store, make_sync, vector_for

from tenantrag.backends.keyword.tantivy import TantivyKeywordIndex
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import Chunk, Classification, Tenant

pytestmark = pytest.mark.integration  # starts servers or subprocesses

TOP = Classification.RESTRICTED
SPAWN = multiprocessing.get_context("spawn")


def write_through_sync(data: str, worker: int, count: int) -> None:
    """In a worker: store `count` documents one by one, catching the indexes up after each."""
    root = Path(data)
    store = make_store(root / "store.db", "acme")
    sync = make_sync(root, store)
    for i in range(count):
        store.put_documents(
            Tenant(id="acme"), [document("acme", f"w{worker}-{i}", f"common w{worker}x{i}")]
        )
        sync.ensure_current("acme")


def apply_directly(data: str, worker: int, count: int) -> None:
    """In a worker: apply documents straight to the shared Tantivy index, one commit each."""
    index = TantivyKeywordIndex(Path(data) / "indexes")
    for i in range(count):
        rowid = worker * 1_000 + i
        chunk = Chunk("acme", f"w{worker}-{i}", 0, f"common w{worker}x{i}", rowid=rowid)
        index.apply("acme", [chunk], replace_documents=[chunk.document_id], seq=rowid)


def search_when_told(data: str, ready: Event, written: Event, results: Queue) -> None:  # type: ignore[type-arg]
    """In a worker process: warm up, then after `written` do one catch-up and search, and report."""
    root = Path(data)
    sync = make_sync(root, make_store(root / "store.db", "acme"))
    sync.ensure_current("acme")
    before = sync.keyword.search("acme", "okapi", limit=10, max_classification=TOP)
    ready.set()
    written.wait(timeout=60)
    sync.ensure_current("acme")
    words = sync.keyword.search("acme", "okapi", limit=10, max_classification=TOP)
    near = sync.vector.search("acme", vector_for("okapi stripes"), limit=1, max_classification=TOP)
    results.put((len(before), sorted(h.rowid for h in words), [h.rowid for h in near]))


def run_workers(target: Callable[..., None], *args: tuple[object, ...]) -> None:
    """Start one spawned process per argument tuple, wait for all, and require clean exits."""
    processes = [SPAWN.Process(target=target, args=a) for a in args]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * len(processes)


def test_two_processes_writing_one_tenant_through_sync(store: SQLiteStore, tmp_path: Path) -> None:
    """Two workers writing and syncing at once leave an index holding every chunk exactly once."""
    run_workers(write_through_sync, (str(tmp_path), 1, 5), (str(tmp_path), 2, 5))
    index = TantivyKeywordIndex(tmp_path / "indexes")
    assert index.applied_seq("acme") == store.latest_seq("acme")
    hits = index.search("acme", "common", limit=100, max_classification=TOP)
    stored = [c.rowid for batch, _ in store.iter_chunks("acme") for c in batch]
    assert sorted(h.rowid for h in hits) == sorted(stored) and len(stored) == 10


def test_two_processes_committing_to_one_index(tmp_path: Path) -> None:
    """Two workers committing to one Tantivy folder in a tight loop lose and corrupt nothing."""
    run_workers(apply_directly, (str(tmp_path), 1, 8), (str(tmp_path), 2, 8))
    index = TantivyKeywordIndex(tmp_path / "indexes")
    hits = index.search("acme", "common", limit=100, max_classification=TOP)
    assert sorted(h.rowid for h in hits) == [w * 1_000 + i for w in (1, 2) for i in range(8)]
    assert index.applied_seq("acme") in (1_007, 2_007)


def test_write_in_one_process_is_seen_by_the_next_search_in_another(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """Once a worker's write returns, another worker's very next sync and search find it."""
    ready, written, results = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    reader = SPAWN.Process(target=search_when_told, args=(str(tmp_path), ready, written, results))
    reader.start()
    try:
        assert ready.wait(timeout=60)
        sync = make_sync(tmp_path, store)
        store.put_documents(Tenant(id="acme"), [document("acme", "zebra", "okapi stripes")])
        sync.ensure_current("acme")
        written.set()
        before, words, near = results.get(timeout=60)
    finally:
        reader.join(timeout=60)
    chunks, _ = store.chunks_of_documents("acme", ["zebra"])
    assert before == 0
    assert words == near == [chunks[0].rowid]
