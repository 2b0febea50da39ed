"""Query vectors remembered per tenant: an in-process LRU with a time to live.

Every key starts with the tenant id, so two tenants never share an entry even for the same
text. Storage sits behind `_lookup` / `_store`, the only two methods a shared cache must replace.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from tenantrag.backends import Embedder
from tenantrag.models import is_valid_tenant_id


class CachingEmbedder:
    """Wraps an Embedder; `embed_query` answers repeated (tenant, text) pairs from memory."""

    model_name: str
    dimensions: int

    def __init__(
        self,
        inner: Embedder,
        *,
        max_entries: int = 10_000,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Remember up to `max_entries` vectors, each for `ttl_s` seconds of `clock`."""
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError("max_entries must be at least 1 and ttl_s positive")
        self.inner = inner
        self.model_name = inner.model_name
        self.dimensions = inner.dimensions
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.hits = 0
        self.misses = 0
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def embed_query(self, tenant: str, text: str) -> np.ndarray:
        """The (dimensions,) float32 unit vector of `text`, from the tenant's cache when fresh."""
        key = self.key(tenant, text)
        vector = self._lookup(key)
        with self._lock:
            if vector is None:
                self.misses += 1
            else:
                self.hits += 1
        if vector is None:
            vector = np.array(self.inner.embed([text])[0], dtype=np.float32)
            vector.flags.writeable = False  # shared by later hits; callers get copies
            self._store(key, vector)
        return vector.copy()

    def lookup(self, tenant: str, text: str) -> np.ndarray | None:
        """The cached vector of `text` for the tenant (a copy), or None; counts a hit or miss."""
        vector = self._lookup(self.key(tenant, text))
        with self._lock:
            if vector is None:
                self.misses += 1
            else:
                self.hits += 1
        return None if vector is None else vector.copy()

    def remember(self, tenant: str, text: str, vector: np.ndarray) -> None:
        """Keep a vector computed (or fetched from a shared cache) elsewhere."""
        kept = np.array(vector, dtype=np.float32)
        kept.flags.writeable = False
        self._store(self.key(tenant, text), kept)

    def key(self, tenant: str, text: str) -> str:
        """`{tenant}:embedding:{model}:{dimensions}:{sha256 of text}`; tenant ids hold no `:`."""
        if not is_valid_tenant_id(tenant):
            raise ValueError(f"not a tenant id: {tenant!r}")
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return f"{tenant}:embedding:{self.model_name}:{self.dimensions}:{digest}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The inner embedder's vectors, uncached (bulk ingestion rarely repeats a text)."""
        return self.inner.embed(texts)

    def count_tokens(self, text: str) -> int:
        """The inner embedder's token count."""
        return self.inner.count_tokens(text)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _lookup(self, key: str) -> np.ndarray | None:
        """The stored vector for `key` while fresh; a hit becomes the most recently used."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, vector = entry
            if self._clock() >= expires:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return vector

    def _store(self, key: str, vector: np.ndarray) -> None:
        """Keep `vector` for `ttl_s`, evicting the least recently used entries past the bound."""
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl_s, vector)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
