"""Keeps a tenant's search indexes caught up with the store, in every worker process.

The store is the truth: each write appends (seq, tenant, document) to its changes table. An index
records the newest seq it reflects. Catching up replays the documents changed since then, in
slices of whole documents, each slice one atomic replace (chunks of a document that no longer
exists are simply dropped). Replaying a document twice gives the same result, so a process that
crashed mid-way is repaired by the next call. Only the last slice records the new seq.

Two processes must not replay into one shared index at once (one could record a seq over
changes it skipped), so a replay into a shared index holds a per-tenant flock. Indexes held
in process memory (`process_local = True`) need only a thread lock, and are pinned meanwhile
so that their LRU cannot swap the tenant for an older copy between two slices.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

from tenantrag.backends import KeywordIndex, VectorIndex
from tenantrag.backends.store import CorpusReader
from tenantrag.models import is_valid_tenant_id


@runtime_checkable
class SupportsPinning(Protocol):
    """A process-local index that may evict tenants, unless they are pinned."""

    def pinned(self, tenant: str) -> AbstractContextManager[None]:
        """Keep the tenant in memory while the context is open."""
        ...


@runtime_checkable
class SupportsSnapshot(Protocol):
    """An index that can persist itself, so a new process need not replay everything."""

    def snapshot(self, tenant: str) -> bool:
        """Persist the tenant if worthwhile; True when something was written."""
        ...


class IndexSync:
    """Brings the keyword and vector indexes of a tenant up to the store's latest change."""

    def __init__(
        self,
        store: CorpusReader,
        keyword: KeywordIndex,
        vector: VectorIndex,
        *,
        lock_dir: Path,
        batch_documents: int = 500,
    ) -> None:
        """Keep `keyword` and `vector` current with `store`.

        Args:
            store: the source of truth.
            keyword: the keyword index to keep current.
            vector: the vector index to keep current.
            lock_dir: a local folder every process sharing these indexes sees (the data
                folder's `locks/`), for the per-tenant flocks of a replay.
            batch_documents: documents per atomic slice of a replay.
        """
        self.store = store
        self.keyword = keyword
        self.vector = vector
        self.lock_dir = lock_dir
        self.batch_documents = batch_documents
        self._thread_locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def ensure_current(self, tenant: str) -> int:
        """Catch both indexes up with the store; returns the corpus version (the store's seq).

        When nothing changed this costs one MAX(seq) query and two in-memory seq reads.
        """
        latest = self.store.latest_seq(tenant)
        behind = [ix for ix in (self.keyword, self.vector) if ix.applied_seq(tenant) < latest]
        if behind:
            with self._locked(tenant, behind):
                # Another thread or process may have caught up while we waited for the lock.
                self._replay(tenant, [ix for ix in behind if ix.applied_seq(tenant) < latest])
            if self.vector in behind and isinstance(self.vector, SupportsSnapshot):
                self.vector.snapshot(tenant)
        return latest

    def rebuild(self, tenant: str) -> int:
        """Drop both indexes of the tenant and replay every change; returns the corpus version."""
        both: list[KeywordIndex | VectorIndex] = [self.keyword, self.vector]
        with self._locked(tenant, both):
            self.keyword.drop(tenant)
            self.vector.drop(tenant)
            self._replay(tenant, both)
        return self.store.latest_seq(tenant)

    def _replay(self, tenant: str, indexes: list[KeywordIndex | VectorIndex]) -> None:
        """Apply every document changed after each index's seq; indexes at one seq share reads."""
        groups: dict[int, list[KeywordIndex | VectorIndex]] = {}
        for index in indexes:
            groups.setdefault(index.applied_seq(tenant), []).append(index)
        for after, group in groups.items():
            documents, upto = self.store.changed_documents(tenant, after)
            for start in range(0, len(documents), self.batch_documents):
                part = documents[start : start + self.batch_documents]
                last = start + self.batch_documents >= len(documents)
                chunks, vectors = self.store.chunks_of_documents(tenant, part)
                seq = upto if last else after
                for index in group:
                    if index is self.vector:
                        self.vector.apply(tenant, chunks, vectors, replace_documents=part, seq=seq)
                    else:
                        self.keyword.apply(tenant, chunks, replace_documents=part, seq=seq)

    @contextmanager
    def _locked(self, tenant: str, indexes: list[KeywordIndex | VectorIndex]) -> Iterator[None]:
        """Hold, in a fixed order, the thread lock and (if shared) the flock of each index."""
        if not is_valid_tenant_id(tenant):
            raise ValueError(f"not a tenant id: {tenant!r}")
        with ExitStack() as stack:
            for index in sorted(indexes, key=self._role):
                role = self._role(index)
                with self._guard:
                    local = self._thread_locks.setdefault((tenant, role), threading.Lock())
                stack.enter_context(local)
                if not getattr(index, "process_local", False):
                    stack.enter_context(_flock(self.lock_dir / f"{tenant}.{role}.lock"))
                if isinstance(index, SupportsPinning):
                    stack.enter_context(index.pinned(tenant))
            yield

    def _role(self, index: KeywordIndex | VectorIndex) -> str:
        return "keyword" if index is self.keyword else "vector"


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
