"""Everything that leaves the process sits behind one of these small Protocols.

The tenant is an explicit argument to every call; no backend keeps a "current tenant".
Implementations live in the sub-packages (store/, keyword/, vector/, embedding/, llm/, cache/,
ledger/), a real one beside an in-memory one where that helps tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from tenantrag.models import Chunk, Classification, IndexHit, MetadataValue

Filters = Mapping[str, MetadataValue]


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length float32 vectors."""

    model_name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, dimensions) float32 array of L2-normalised vectors, one row per text."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many model tokens `text` takes (special tokens excluded)."""
        ...


@runtime_checkable
class KeywordIndex(Protocol):
    """BM25 search over a tenant's chunks."""

    def apply(
        self, tenant: str, chunks: Sequence[Chunk], *, replace_documents: Sequence[str], seq: int
    ) -> None:
        """Atomically drop every chunk of `replace_documents`, add `chunks`, record `seq`."""
        ...

    def search(
        self,
        tenant: str,
        query: str,
        *,
        limit: int,
        max_classification: Classification,
        filters: Filters | None = None,
    ) -> list[IndexHit]:
        """The tenant's best chunks for `query`, never above `max_classification`."""
        ...

    def applied_seq(self, tenant: str) -> int:
        """The newest store change seq this index reflects for the tenant."""
        ...

    def drop(self, tenant: str) -> None:
        """Forget everything of the tenant."""
        ...


@runtime_checkable
class VectorIndex(Protocol):
    """Nearest-neighbour search (cosine) over a tenant's chunk embeddings."""

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
        ...

    def search(
        self,
        tenant: str,
        vector: np.ndarray,
        *,
        limit: int,
        max_classification: Classification,
        allowed: Sequence[int] | None = None,
    ) -> list[IndexHit]:
        """The tenant's nearest chunks up to `max_classification`, within `allowed` if given."""
        ...

    def applied_seq(self, tenant: str) -> int:
        """The newest store change seq this index reflects for the tenant."""
        ...

    def drop(self, tenant: str) -> None:
        """Forget everything of the tenant."""
        ...
