"""A brute-force numpy VectorIndex: the reference (oracle) the real indexes are tested against."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tenantrag.backends.vector import check_batch, unit_rows
from tenantrag.models import Chunk, Classification, IndexHit


@dataclass(eq=False)
class _Tenant:
    rows: dict[int, tuple[str, int, np.ndarray]] = field(default_factory=dict)  # rowid -> row
    seq: int = 0


class MemoryVectorIndex:
    """Exact cosine search over every row of the tenant; fine for a few thousand rows."""

    process_local = True  # each process holds its own copy, so IndexSync needs no file lock

    def __init__(self, *, dimensions: int = 384) -> None:
        self.dimensions = dimensions
        self._tenants: dict[str, _Tenant] = {}
        self._lock = threading.Lock()

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
        unit = unit_rows(vectors, self.dimensions)
        gone = set(replace_documents)
        with self._lock:
            state = self._tenants.setdefault(tenant, _Tenant())
            rows = {r: row for r, row in state.rows.items() if row[0] not in gone}
            for chunk, vector in zip(chunks, unit, strict=True):
                rows[chunk.rowid] = (chunk.document_id, int(chunk.classification), vector)
            state.rows, state.seq = rows, seq

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
        query = unit_rows(vector, self.dimensions)[0]
        permitted = None if allowed is None else set(allowed)
        with self._lock:
            state = self._tenants.get(tenant)
            rows = dict(state.rows) if state else {}
        scored = [
            IndexHit(rowid=rowid, score=float(np.dot(query, row[2])))
            for rowid, row in rows.items()
            if row[1] <= max_classification and (permitted is None or rowid in permitted)
        ]
        scored.sort(key=lambda hit: (-hit.score, hit.rowid))
        return scored[: max(limit, 0)]

    def applied_seq(self, tenant: str) -> int:
        """The newest store change seq this index reflects for the tenant."""
        with self._lock:
            state = self._tenants.get(tenant)
            return state.seq if state else 0

    def drop(self, tenant: str) -> None:
        """Forget everything of the tenant."""
        with self._lock:
            self._tenants.pop(tenant, None)
