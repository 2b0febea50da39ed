"""Cosine search with FAISS, held in each worker process, one set of sub-indexes per tenant.

Each tenant has one sub-index per classification level, and a search only looks in the levels
the caller is cleared for. So clearance filters *before* ranking: chunks above the ceiling are
never candidates and cannot push permitted chunks out of the top k, and the approximate index
needs no selector (selectors hurt IVF recall and speed) to enforce it.

A level is exact (IndexFlatIP in an IndexIDMap2 keyed by the store rowid) until the levels at or
below it hold `approximate_threshold` vectors together; then, at its next write, it becomes an
IVF index if it holds at least a quarter of that (remove_ids works on IVF; HNSW has none). Smaller
levels stay exact: scanning 50k vectors takes a few milliseconds. An IVF level is retrained once
grown fourfold. Counting only the levels at or below keeps the switch, and so which results a
search at a clearance returns, independent of the vectors above that clearance.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import structlog

from tenantrag.backends.vector import (
    Snapshot,
    check_batch,
    read_snapshot,
    remove_snapshot,
    unit_rows,
    write_snapshot,
)
from tenantrag.models import Chunk, Classification, IndexHit, is_valid_tenant_id

SNAPSHOT_NAME = "vectors.faiss"

log = structlog.get_logger(__name__)


class ReadWriteLock:
    """Many readers at once or one writer; a waiting writer holds back new readers.

    FAISS searches only read an index and release the GIL, so concurrent searches of one tenant
    run side by side on several cores; adds and removes (not thread-safe in FAISS) run alone.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared with other readers."""
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock alone."""
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


@dataclass(eq=False)
class _Tenant:
    """A tenant's sub-indexes, document map and applied seq; `lock` guards all of them.

    Searches, seq reads and snapshot copies share the lock; changes and loading hold it alone.
    """

    lock: ReadWriteLock = field(default_factory=ReadWriteLock)
    loaded: bool = False
    levels: dict[int, Any] = field(default_factory=dict)
    trained: dict[int, int] = field(default_factory=dict)  # IVF level -> vectors trained on
    docs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # rowids, levels
    seq: int = 0
    changed: int = 0  # vectors added or removed since the last snapshot
    pins: int = 0  # holders that need it kept in memory

    @property
    def size(self) -> int:
        return sum(int(index.ntotal) for index in self.levels.values())


def one_omp_thread() -> None:
    """Run this thread's FAISS calls on one OpenMP thread.

    OpenMP's thread count is per calling thread: set once in the constructor, it held only
    there, and searches on the request's worker threads ran teams of one thread per core.
    After each call the idle team member spins for its next region (libgomp's default), which
    cost about 3 ms of CPU per search, as much as a third of the query embedding, and gained
    nothing on an index this size. Setting it is one cheap call, so every entry point does.
    """
    faiss.omp_set_num_threads(1)


class FaissVectorIndex:
    """VectorIndex over in-process FAISS indexes, with snapshots at root/<tenant>/vectors.faiss."""

    process_local = True  # each worker holds its own copy, so IndexSync needs no file lock

    def __init__(
        self,
        root: Path,
        *,
        dimensions: int = 384,
        max_open: int = 256,
        approximate_threshold: int = 200_000,
        snapshot_min_vectors: int = 20_000,
    ) -> None:
        self.root = root
        self.dimensions = dimensions
        self.max_open = max_open
        self.approximate_threshold = approximate_threshold
        self.snapshot_min_vectors = snapshot_min_vectors
        self._tenants: OrderedDict[str, _Tenant] = OrderedDict()
        self._tenants_lock = threading.Lock()

    def apply(
        self,
        tenant: str,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        *,
        replace_documents: Sequence[str],
        seq: int,
    ) -> None:
        """Atomically drop every chunk of `replace_documents`, add `chunks`, record `seq`."""
        check_batch(tenant, chunks, vectors)
        one_omp_thread()
        unit = unit_rows(vectors, self.dimensions)
        rowids = np.fromiter((c.rowid for c in chunks), dtype=np.int64, count=len(chunks))
        levels = np.fromiter((c.classification for c in chunks), dtype=np.int8, count=len(chunks))
        by_document: dict[str, list[int]] = {}
        for i, chunk in enumerate(chunks):
            by_document.setdefault(chunk.document_id, []).append(i)
        state = self._state(tenant)
        with state.lock.write():
            state.changed += self._remove_documents(state, replace_documents)
            for level in np.unique(levels).tolist():
                mine = levels == level
                index = state.levels.get(level)
                if index is None:
                    index = state.levels[level] = faiss.IndexIDMap2(
                        faiss.IndexFlatIP(self.dimensions)
                    )
                index.add_with_ids(unit[mine], rowids[mine])
            for document_id, positions in by_document.items():
                old = state.docs.get(document_id)
                new = (rowids[positions], levels[positions])
                state.docs[document_id] = new if old is None else _join(old, new)
            state.changed += len(chunks)
            state.seq = seq
            for level in np.unique(levels).tolist():
                self._maybe_approximate(state, level)

    def search(
        self,
        tenant: str,
        vector: np.ndarray,
        *,
        limit: int,
        max_classification: Classification,
        allowed: Sequence[int] | None = None,
    ) -> list[IndexHit]:
        """The tenant's nearest chunks by cosine, never above `max_classification`."""
        one_omp_thread()
        query = unit_rows(vector, self.dimensions)[:1]
        if limit <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        selector = None if allowed is None else faiss.IDSelectorBatch(np.asarray(allowed, np.int64))
        scores: list[np.ndarray] = []
        ids: list[np.ndarray] = []
        state = self._state(tenant)
        with state.lock.read():
            for level, index in state.levels.items():
                if level > max_classification or index.ntotal == 0:
                    continue
                params = _params(index, state.trained.get(level), selector, allowed)
                found_scores, found_ids = index.search(query, limit, params=params)
                scores.append(found_scores[0])
                ids.append(found_ids[0])
        if not ids:
            return []
        merged_scores, merged_ids = np.concatenate(scores), np.concatenate(ids)
        order = np.lexsort((merged_ids, -merged_scores))
        order = order[merged_ids[order] >= 0][:limit]  # -1: fewer vectors than asked for
        # Converted in bulk (tolist), not one numpy scalar at a time: a hundred per search.
        found = zip(merged_ids[order].tolist(), merged_scores[order].tolist(), strict=True)
        return [IndexHit(rowid, score) for rowid, score in found]

    def applied_seq(self, tenant: str) -> int:
        """The newest store change seq this process's index reflects for the tenant."""
        state = self._state(tenant)
        with state.lock.read():
            return state.seq

    def drop(self, tenant: str) -> None:
        """Forget the tenant here and delete its snapshot."""
        path = self._snapshot_path(tenant)
        with self._tenants_lock:
            self._tenants.pop(tenant, None)
        remove_snapshot(path)

    def snapshot(self, tenant: str, *, force: bool = False) -> bool:
        """Write the tenant's snapshot if it is big and changed enough (always when `force`).

        Returns True when a snapshot was written.
        """
        state = self._state(tenant)
        with state.lock.read():
            # Worth it for a tenant too big to replay quickly that changed by a tenth since.
            size = state.size
            worth_it = size >= self.snapshot_min_vectors and state.changed * 10 >= size
            if not (force or worth_it):
                return False
            # Copy under the read lock (searches go on; changes wait); write the file outside it.
            taken = Snapshot(
                seq=state.seq,
                dimensions=self.dimensions,
                blobs={level: faiss.serialize_index(ix) for level, ix in state.levels.items()},
                trained=dict(state.trained),
                docs=dict(state.docs),
            )
            changed = state.changed
        written = write_snapshot(self._snapshot_path(tenant), taken)
        if written:
            with state.lock.write():
                state.changed = max(0, state.changed - changed)
        return written

    @contextmanager
    def pinned(self, tenant: str) -> Iterator[None]:
        """Keep the tenant in memory meanwhile (IndexSync pins it across a multi-slice replay).

        Were it evicted and reloaded between two slices, the last slice would record a seq
        over slices the reloaded copy never saw.
        """
        state = self._state(tenant, pin=1)
        try:
            yield
        finally:
            with self._tenants_lock:
                state.pins -= 1

    def open_count(self) -> int:
        """How many tenants this process holds in memory."""
        return len(self._tenants)

    def approximate_levels(self, tenant: str) -> list[Classification]:
        """The tenant's levels searched by an IVF index rather than exhaustively."""
        state = self._state(tenant)
        with state.lock.read():
            return sorted(Classification(level) for level in state.trained)

    # -- internals -----------------------------------------------------------------------------

    def _snapshot_path(self, tenant: str) -> Path:
        if not is_valid_tenant_id(tenant):
            raise ValueError(f"not a tenant id: {tenant!r}")
        return self.root / tenant / SNAPSHOT_NAME

    def _state(self, tenant: str, *, pin: int = 0) -> _Tenant:
        """The tenant's state, loaded from its snapshot on first use; unpinned old ones go."""
        path = self._snapshot_path(tenant)
        with self._tenants_lock:
            state = self._tenants.get(tenant)
            if state is None:
                state = self._tenants[tenant] = _Tenant()
            self._tenants.move_to_end(tenant)
            state.pins += pin
            if len(self._tenants) > self.max_open:
                idle = [name for name, held in self._tenants.items() if held.pins == 0]
                for name in idle[: len(self._tenants) - self.max_open]:
                    del self._tenants[name]
        if not state.loaded:
            with state.lock.write():
                if not state.loaded:
                    self._load(state, path)
                    state.loaded = True
        return state

    def _load(self, state: _Tenant, path: Path) -> None:
        """Fill `state` from the snapshot at `path`; leave it empty (seq 0) if there is none."""
        loaded = read_snapshot(path, self.dimensions)
        if loaded is None:
            return
        try:
            levels = {level: faiss.deserialize_index(blob) for level, blob in loaded.blobs.items()}
        except RuntimeError as exc:  # a damaged index inside a readable archive
            log.warning("vector_snapshot_unreadable", path=str(path), error=str(exc))
            return
        state.levels, state.trained, state.docs = levels, loaded.trained, loaded.docs
        state.seq = loaded.seq

    def _remove_documents(self, state: _Tenant, documents: Sequence[str]) -> int:
        by_level: dict[int, list[np.ndarray]] = {}
        for document_id in dict.fromkeys(documents):
            entry = state.docs.pop(document_id, None)
            if entry is not None:
                rowids, levels = entry
                for level in np.unique(levels).tolist():
                    by_level.setdefault(level, []).append(rowids[levels == level])
        removed = 0
        for level, parts in by_level.items():
            selector = faiss.IDSelectorBatch(np.concatenate(parts))
            removed += int(state.levels[level].remove_ids(selector))
        return removed

    def _maybe_approximate(self, state: _Tenant, level: int) -> None:
        index = state.levels[level]
        trained = state.trained.get(level)
        if trained is None:
            # Only what a caller cleared for this level can read decides (issue 15 item 1).
            readable = sum(int(ix.ntotal) for lv, ix in state.levels.items() if lv <= level)
            if readable < self.approximate_threshold:
                return
            if index.ntotal < max(1, self.approximate_threshold // 4):
                return
        elif index.ntotal < 4 * trained:
            return
        ids, vectors = _contents(index, self.dimensions, approximate=trained is not None)
        state.levels[level] = _ivf(ids, vectors, self.dimensions)
        state.trained[level] = len(ids)


def _join(
    old: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([old[0], new[0]]), np.concatenate([old[1], new[1]])


def nprobe_for(nlist: int) -> int:
    """How many IVF lists a search visits.

    bench/index_scale.py, 1M clustered vectors: nlist/16 gave recall@10 0.999 at p95 14 ms;
    nlist/32 gave 0.998 at 9 ms, nlist/8 0.9995 at 22 ms. The floor of 16 keeps small IVF
    levels (just past the threshold) well probed.
    """
    return min(nlist, max(16, nlist // 16))


def _params(index: Any, trained: int | None, selector: Any, allowed: Sequence[int] | None) -> Any:
    if trained is not None:
        # With only a few rowids allowed, visit every list: the selector then bounds the work,
        # and a probe of a few lists could miss every allowed chunk.
        few = allowed is not None and len(allowed) * 20 < index.ntotal
        probes = index.nlist if few else nprobe_for(index.nlist)
        # The bundled stubs lack the keyword constructors faiss's Python wrapper adds.
        return faiss.SearchParametersIVF(sel=selector, nprobe=probes)  # type: ignore[call-arg]
    return None if selector is None else faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]


def _contents(index: Any, dimensions: int, *, approximate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every (rowid, vector) an exact or IVF level holds, as copies."""
    if not approximate:
        n = int(index.ntotal)
        flat: Any = faiss.downcast_index(index.index)  # the stubs miss IndexFlat.get_xb
        vectors = faiss.rev_swig_ptr(flat.get_xb(), n * dimensions).reshape(n, dimensions)
        return faiss.vector_to_array(index.id_map).astype(np.int64), vectors.copy()
    lists = index.invlists
    id_parts, vector_parts = [], []
    for number in range(index.nlist):
        size = lists.list_size(number)
        if size:
            id_parts.append(faiss.rev_swig_ptr(lists.get_ids(number), size).copy())
            codes = faiss.rev_swig_ptr(lists.get_codes(number), size * lists.code_size)
            vector_parts.append(codes.view(np.float32).reshape(size, dimensions).copy())
    return np.concatenate(id_parts), np.concatenate(vector_parts)


def _ivf(ids: np.ndarray, vectors: np.ndarray, dimensions: int) -> Any:
    """An IVF index over `vectors`, trained on a sample of them (spherical k-means for cosine)."""
    n = len(ids)
    nlist = max(1, min(int(2 * math.sqrt(n)), n // 39))
    index = faiss.IndexIVFFlat(
        faiss.IndexFlatIP(dimensions), dimensions, nlist, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.spherical = True
    index.cp.min_points_per_centroid = 1  # tiny levels (tests) train on what they have, quietly
    sample = np.random.default_rng(0).choice(n, size=min(n, 64 * nlist), replace=False)
    index.train(vectors[np.sort(sample)])
    index.add_with_ids(vectors, ids)
    return index
