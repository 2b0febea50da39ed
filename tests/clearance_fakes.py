"""Stand-ins for index bugs: indexes that ignore the clearance ceiling they are given.

They wrap a real index and search it at the top level whatever the caller asks, optionally
handing over extra hits first (another tenant's rowid, say), so a test can show that the layers
after the indexes drop what a faulty index lets through.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tenantrag.backends import Filters, KeywordIndex, VectorIndex
from tenantrag.models import Classification, IndexHit

RESTRICTED = Classification.RESTRICTED


class CeilingIgnoringKeyword:
    """A keyword index with a bug: it searches every level whatever the ceiling asks."""

    def __init__(self, inner: KeywordIndex, extra: Sequence[IndexHit] = ()) -> None:
        self.inner, self.extra = inner, list(extra)

    def search(
        self,
        tenant: str,
        query: str,
        *,
        limit: int,
        max_classification: Classification,
        filters: Filters | None = None,
    ) -> list[IndexHit]:
        found = self.inner.search(
            tenant, query, limit=limit, max_classification=RESTRICTED, filters=filters
        )
        return [*self.extra, *found]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class CeilingIgnoringVector:
    """A vector index with a bug: it searches every level whatever the ceiling asks."""

    def __init__(self, inner: VectorIndex, extra: Sequence[IndexHit] = ()) -> None:
        self.inner, self.extra = inner, list(extra)

    def search(
        self,
        tenant: str,
        vector: np.ndarray,
        *,
        limit: int,
        max_classification: Classification,
        allowed: Sequence[int] | None = None,
    ) -> list[IndexHit]:
        found = self.inner.search(
            tenant, vector, limit=limit, max_classification=RESTRICTED, allowed=allowed
        )
        return [*self.extra, *found]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)
