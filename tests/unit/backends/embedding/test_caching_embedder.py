"""CachingEmbedder around the real ONNX model: per-tenant keys, LRU bound, TTL, counters, tiers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tenantrag.backends import Embedder
from tenantrag.backends.cache import make_key
from tenantrag.backends.cache.memory import MemoryCache
from tenantrag.backends.embedding.cache import CachingEmbedder
from tenantrag.backends.embedding.onnx import OnnxEmbedder


@pytest.fixture(scope="module")
def onnx(model_dir: Path) -> OnnxEmbedder:
    """The real embedder the cache wraps."""
    return OnnxEmbedder(model_dir)


class Clock:
    """A clock the test moves by hand, so TTLs expire without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_repeat_query_is_a_hit_with_the_same_vector(onnx: OnnxEmbedder) -> None:
    """The second identical query is served from the cache and equals the model's vector."""
    cache = CachingEmbedder(onnx)
    first = await cache.embed_query("acme", "parental leave policy")
    second = await cache.embed_query("acme", "parental leave policy")
    assert (cache.misses, cache.hits) == (1, 1)
    assert first.shape == (384,)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, onnx.embed(["parental leave policy"])[0], atol=1e-6)


async def test_tenants_never_share_an_entry(onnx: OnnxEmbedder) -> None:
    """The same text asked by two tenants is two misses and two entries, never a shared hit."""
    cache = CachingEmbedder(onnx)
    await cache.embed_query("acme", "quarterly revenue")
    await cache.embed_query("globex", "quarterly revenue")
    assert (cache.misses, cache.hits) == (2, 0)
    assert len(cache) == 2
    assert cache.key("acme", "quarterly revenue") != cache.key("globex", "quarterly revenue")
    assert cache.key("acme", "quarterly revenue").startswith("acme:")
    await cache.embed_query("globex", "quarterly revenue")
    assert (cache.misses, cache.hits) == (2, 1)


async def test_malformed_tenant_is_refused(onnx: OnnxEmbedder) -> None:
    """A tenant id that could forge another tenant's key prefix is rejected."""
    cache = CachingEmbedder(onnx)
    with pytest.raises(ValueError, match="tenant"):
        await cache.embed_query("acme:embedding", "x")


async def test_least_recently_used_entry_is_evicted(onnx: OnnxEmbedder) -> None:
    """Past max_entries, the entry unused the longest goes first; a hit refreshes recency."""
    cache = CachingEmbedder(onnx, max_entries=2)
    await cache.embed_query("acme", "a")
    await cache.embed_query("acme", "b")
    await cache.embed_query("acme", "a")  # hit: "b" is now the oldest
    await cache.embed_query("acme", "c")  # evicts "b"
    assert len(cache) == 2
    assert (cache.misses, cache.hits) == (3, 1)
    await cache.embed_query("acme", "a")
    assert cache.hits == 2
    await cache.embed_query("acme", "b")
    assert cache.misses == 4


async def test_entries_expire_after_ttl(onnx: OnnxEmbedder) -> None:
    """An entry older than ttl_s is a miss and is embedded again."""
    clock = Clock()
    cache = CachingEmbedder(onnx, ttl_s=60, clock=clock)
    await cache.embed_query("acme", "travel booking")
    clock.now += 59
    await cache.embed_query("acme", "travel booking")
    assert (cache.misses, cache.hits) == (1, 1)
    clock.now += 1
    await cache.embed_query("acme", "travel booking")
    assert (cache.misses, cache.hits) == (2, 1)


async def test_callers_cannot_corrupt_the_cache(onnx: OnnxEmbedder) -> None:
    """Changing a returned vector leaves the cached one intact."""
    cache = CachingEmbedder(onnx)
    first = await cache.embed_query("acme", "security incident")
    original = first.copy()
    first[:] = 0.0
    np.testing.assert_array_equal(await cache.embed_query("acme", "security incident"), original)


async def test_concurrent_queries_count_every_call(onnx: OnnxEmbedder) -> None:
    """Eight tasks asking the same four texts: every call is counted as a hit or a miss."""
    cache = CachingEmbedder(onnx)
    texts = ["w", "x", "y", "z"]

    async def work() -> None:
        for text in texts * 5:
            await cache.embed_query("acme", text)

    await asyncio.gather(*(work() for _ in range(8)))
    assert cache.hits + cache.misses == 8 * 20
    assert len(cache) == 4
    assert cache.misses >= 4


def test_passes_the_embedder_api_through(onnx: OnnxEmbedder) -> None:
    """embed, count_tokens, model_name and dimensions are the inner embedder's."""
    cache = CachingEmbedder(onnx)
    assert isinstance(cache, Embedder)
    assert (cache.model_name, cache.dimensions) == (onnx.model_name, onnx.dimensions)
    assert cache.count_tokens("hello world") == 2
    np.testing.assert_array_equal(cache.embed(["a", "b"]), onnx.embed(["a", "b"]))
    assert (cache.misses, cache.hits) == (0, 0)


async def test_shared_tier_serves_a_vector_another_process_computed(onnx: OnnxEmbedder) -> None:
    """A vector found in the shared cache is used (and kept locally) without running the model."""
    shared = MemoryCache(name="embeddings")
    first = CachingEmbedder(onnx, shared=shared)
    vector = await first.embed_query("acme", "shared policy")
    second = CachingEmbedder(BrokenEmbedder(onnx), shared=shared)  # a fresh LRU: another worker
    np.testing.assert_array_equal(await second.embed_query("acme", "shared policy"), vector)
    key = make_key("embedding", onnx.model_name, str(onnx.dimensions), "shared policy")
    assert await shared.get("acme", key) is not None
    assert await shared.get("globex", key) is None  # another tenant never reads the entry
    np.testing.assert_array_equal(await second.embed_query("acme", "shared policy"), vector)
    assert (second.misses, second.hits) == (1, 1)


async def test_cached_never_runs_the_model_and_keep_fills_both_tiers(onnx: OnnxEmbedder) -> None:
    """`cached` answers from the tiers or says None; `keep` stores a vector computed elsewhere.

    The search route runs the model on its own worker thread between the two.
    """
    shared = MemoryCache(name="embeddings")
    cache = CachingEmbedder(BrokenEmbedder(onnx), shared=shared)
    assert await cache.cached("acme", "holiday rules") is None
    vector = onnx.embed(["holiday rules"])[0]
    await cache.keep("acme", "holiday rules", vector)
    kept = await cache.cached("acme", "holiday rules")
    assert kept is not None
    np.testing.assert_array_equal(kept, vector)
    assert await cache.cached("globex", "holiday rules") is None  # never across tenants
    other_worker = CachingEmbedder(BrokenEmbedder(onnx), shared=shared)
    from_shared = await other_worker.cached("acme", "holiday rules")
    assert from_shared is not None
    np.testing.assert_array_equal(from_shared, vector)


class BrokenEmbedder:
    """An embedder whose model must not be called: the vector has to come from a cache."""

    def __init__(self, inner: OnnxEmbedder) -> None:
        self.model_name, self.dimensions = inner.model_name, inner.dimensions

    def embed(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("the model was called although the shared cache had the vector")

    def count_tokens(self, text: str) -> int:
        return len(text.split())
