"""The behaviour every Cache has, run against MemoryCache and the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tenantrag.backends.cache import Cache, CacheResult, make_key
from tenantrag.backends.cache.memory import MemoryCache
from tenantrag.backends.cache.redis import RedisCache

Results = list[tuple[str, CacheResult]]


class CacheContract:
    """Behaviour every Cache must have. Subclass it and provide a `cache` fixture that reports
    to the `results` list."""

    @pytest.fixture
    def results(self) -> Results:
        return []

    async def test_is_a_cache(self, cache: Cache) -> None:
        """The implementation satisfies the Cache protocol."""
        assert isinstance(cache, Cache)

    async def test_value_round_trips(self, cache: Cache, new_tenant: Callable[[], str]) -> None:
        """A stored value comes back byte for byte, NUL and high bytes included."""
        tenant = new_tenant()
        value = bytes(range(256)) * 3
        await cache.set(tenant, "k", value, ttl_s=60)
        assert await cache.get(tenant, "k") == value

    async def test_unknown_key_is_a_miss(self, cache: Cache, new_tenant: Callable[[], str]) -> None:
        """A key never set reads as None."""
        assert await cache.get(new_tenant(), "never-set") is None

    async def test_tenants_are_isolated(self, cache: Cache, new_tenant: Callable[[], str]) -> None:
        """The same key under two tenants holds two values; a third tenant sees neither."""
        acme, globex, initech = new_tenant(), new_tenant(), new_tenant()
        await cache.set(acme, "answer", b"acme's", ttl_s=60)
        await cache.set(globex, "answer", b"globex's", ttl_s=60)
        assert await cache.get(acme, "answer") == b"acme's"
        assert await cache.get(globex, "answer") == b"globex's"
        assert await cache.get(initech, "answer") is None

    async def test_key_cannot_reach_another_namespace(
        self, cache: Cache, new_tenant: Callable[[], str]
    ) -> None:
        """A key spelled like another tenant's stored key stays inside the caller's tenant."""
        acme, globex = new_tenant(), new_tenant()
        await cache.set(acme, "secret", b"acme only", ttl_s=60)
        assert await cache.get(globex, f"{acme}:secret") is None

    async def test_set_replaces_value(self, cache: Cache, new_tenant: Callable[[], str]) -> None:
        """A second set of the same key replaces the first value."""
        tenant = new_tenant()
        await cache.set(tenant, "k", b"old", ttl_s=60)
        await cache.set(tenant, "k", b"new", ttl_s=60)
        assert await cache.get(tenant, "k") == b"new"

    async def test_counts_and_reports_results(
        self, cache: Cache, results: Results, new_tenant: Callable[[], str]
    ) -> None:
        """Each get counts one hit or miss and reports it, with the cache name, to the callback."""
        tenant = new_tenant()
        await cache.set(tenant, "k", b"v", ttl_s=60)
        await cache.get(tenant, "k")
        await cache.get(tenant, "absent")
        await cache.get(tenant, "k")
        assert (cache.hits, cache.misses, cache.errors) == (2, 1, 0)
        assert results == [(cache.name, "hit"), (cache.name, "miss"), (cache.name, "hit")]

    @pytest.mark.parametrize("ttl_s", [0, -5])
    async def test_rejects_ttl_below_one_second(
        self, cache: Cache, ttl_s: int, new_tenant: Callable[[], str]
    ) -> None:
        """Every entry must expire: a TTL under one second is refused."""
        with pytest.raises(ValueError, match="ttl_s"):
            await cache.set(new_tenant(), "k", b"v", ttl_s=ttl_s)

    @pytest.mark.parametrize("tenant", ["", "a", "Acme", "acme:b", "acme\n"])
    async def test_rejects_malformed_tenant(self, cache: Cache, tenant: str) -> None:
        """A malformed tenant id is refused before anything is read or written."""
        with pytest.raises(ValueError, match="tenant"):
            await cache.get(tenant, "k")
        with pytest.raises(ValueError, match="tenant"):
            await cache.set(tenant, "k", b"v", ttl_s=5)

    async def test_ping_answers(self, cache: Cache) -> None:
        """A reachable cache answers ping with True."""
        assert await cache.ping() is True


class TestMemoryCacheContract(CacheContract):
    """MemoryCache keeps the Cache contract."""

    @pytest.fixture
    async def cache(self, results: Results) -> AsyncIterator[Cache]:
        cache = MemoryCache(on_result=lambda name, result: results.append((name, result)))
        yield cache
        await cache.close()


@pytest.mark.redis
class TestRedisCacheContract(CacheContract):
    """RedisCache keeps the Cache contract against the real Redis."""

    @pytest.fixture
    async def cache(self, results: Results, shared_redis_url: str) -> AsyncIterator[Cache]:
        cache = RedisCache(
            shared_redis_url,
            name="redis-test",
            socket_timeout=1.0,
            on_result=lambda name, result: results.append((name, result)),
        )
        yield cache
        await cache.close()


class TestMakeKey:
    def test_is_sha256_hex(self) -> None:
        """A key is 64 lowercase hex characters."""
        key = make_key("query", "what is rag?")
        assert len(key) == 64
        assert set(key) <= set("0123456789abcdef")

    def test_is_deterministic(self) -> None:
        """The same parts always give the same key."""
        assert make_key("a", "b", "ü") == make_key("a", "b", "ü")

    def test_part_boundaries_matter(self) -> None:
        """Parts that concatenate to the same text still give different keys."""
        assert make_key("ab", "c") != make_key("a", "bc")
        assert make_key("a,b") != make_key("a", "b")
        assert make_key('a","b') != make_key("a", "b")
