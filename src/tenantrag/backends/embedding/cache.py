"""Query vectors remembered per tenant, in two tiers: this process's LRU, then a shared cache.

`/api/search` and `/api/query` both embed their question through `CachingEmbedder.embed_query`:
the in-process LRU (with a time to live) first, then, in distributed mode, the shared cache
(Redis: one embedding per worker fleet), then the model on a worker thread. Every key starts
with the tenant id, so two tenants never share an entry even for the same text.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from tenantrag.backends import Embedder
from tenantrag.backends.cache import Cache, ResultCallback, make_key
from tenantrag.models import is_valid_tenant_id

LOCAL_TIER = "embeddings-local"


class CachingEmbedder:
    """Wraps an Embedder; `embed_query` answers repeated (tenant, text) pairs from its tiers."""

    model_name: str
    dimensions: int

    def __init__(
        self,
        inner: Embedder,
        *,
        max_entries: int = 10_000,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        shared: Cache | None = None,
        on_result: ResultCallback | None = None,
    ) -> None:
        """Remember up to `max_entries` vectors, each for `ttl_s` seconds of `clock`.

        Args:
            inner: the model.
            max_entries: the LRU's bound.
            ttl_s: how long an entry stays fresh, in both tiers.
            clock: monotonic seconds (tests move it by hand).
            shared: the second tier (a `Cache` every worker sees), or None (the LRU only).
            on_result: told (LOCAL_TIER, "hit" or "miss") for every LRU look-up.
        """
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError("max_entries must be at least 1 and ttl_s positive")
        self.inner = inner
        self.shared = shared
        self.on_result = on_result
        self.model_name = inner.model_name
        self.dimensions = inner.dimensions
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.hits = 0
        self.misses = 0
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    async def embed_query(self, tenant: str, text: str) -> np.ndarray:
        """The (dimensions,) float32 unit vector of `text`: LRU, shared cache, then the model.

        Callers get a copy, so no caller can change a cached vector.
        """
        vector = await self.cached(tenant, text)
        if vector is not None:
            return vector
        vector = await asyncio.to_thread(self.embed_one, text)
        await self.keep(tenant, text, vector)
        return vector

    async def cached(self, tenant: str, text: str) -> np.ndarray | None:
        """The vector of `text` from the LRU or the shared cache (a copy), or None.

        With `keep`, this lets a caller run the model on a worker thread it uses anyway (the
        search route embeds and retrieves in one hand-off).
        """
        vector = self.lookup(tenant, text)
        if vector is not None or self.shared is None:
            return vector
        raw = await self.shared.get(tenant, self._shared_key(text))
        if raw is None or len(raw) != 4 * self.dimensions:
            return None
        vector = np.frombuffer(raw, dtype=np.float32).copy()
        self.remember(tenant, text, vector)
        return vector

    async def keep(self, tenant: str, text: str, vector: np.ndarray) -> None:
        """Remember the model's vector of `text` in both tiers."""
        self.remember(tenant, text, vector)
        if self.shared is not None:
            await self.shared.set(
                tenant, self._shared_key(text), vector.tobytes(), ttl_s=max(1, int(self.ttl_s))
            )

    def _shared_key(self, text: str) -> str:
        return make_key("embedding", self.model_name, str(self.dimensions), text)

    def embed_one(self, text: str) -> np.ndarray:
        """The model's vector of one text, uncached (blocking: call it on a worker thread)."""
        return np.asarray(self.inner.embed([text])[0], dtype=np.float32)

    def lookup(self, tenant: str, text: str) -> np.ndarray | None:
        """The LRU's vector of `text` for the tenant (a copy), or None; counts a hit or miss."""
        vector = self._lookup(self.key(tenant, text))
        with self._lock:
            if vector is None:
                self.misses += 1
            else:
                self.hits += 1
        if self.on_result is not None:
            self.on_result(LOCAL_TIER, "miss" if vector is None else "hit")
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
