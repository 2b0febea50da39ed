"""MemoryCache: per-entry TTL on an injected clock, LRU eviction, safety across threads."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from tenantrag.backends.cache.memory import MemoryCache

if TYPE_CHECKING:
    from conftest import FakeClock


class TestMemoryCache:
    async def test_entry_expires_after_its_ttl(self, clock: FakeClock) -> None:
        """An entry is served until its TTL has passed, then reads as a miss and is dropped."""
        cache = MemoryCache(clock=clock)
        await cache.set("acme", "k", b"v", ttl_s=5)
        clock.advance(4.99)
        assert await cache.get("acme", "k") == b"v"
        clock.advance(0.01)
        assert await cache.get("acme", "k") is None
        assert len(cache) == 0

    async def test_each_entry_has_its_own_ttl(self, clock: FakeClock) -> None:
        """Entries written with different TTLs expire independently."""
        cache = MemoryCache(clock=clock)
        await cache.set("acme", "short", b"s", ttl_s=1)
        await cache.set("acme", "long", b"l", ttl_s=100)
        clock.advance(2)
        assert await cache.get("acme", "short") is None
        assert await cache.get("acme", "long") == b"l"

    async def test_rewrite_restarts_the_ttl(self, clock: FakeClock) -> None:
        """Setting a key again gives it a fresh TTL."""
        cache = MemoryCache(clock=clock)
        await cache.set("acme", "k", b"v1", ttl_s=5)
        clock.advance(4)
        await cache.set("acme", "k", b"v2", ttl_s=5)
        clock.advance(4)
        assert await cache.get("acme", "k") == b"v2"

    async def test_evicts_least_recently_used(self, clock: FakeClock) -> None:
        """When full, the entry read or written longest ago goes first."""
        cache = MemoryCache(max_entries=2, clock=clock)
        await cache.set("acme", "a", b"a", ttl_s=60)
        await cache.set("acme", "b", b"b", ttl_s=60)
        assert await cache.get("acme", "a") == b"a"  # now "b" is the least recently used
        await cache.set("acme", "c", b"c", ttl_s=60)
        assert await cache.get("acme", "b") is None
        assert await cache.get("acme", "a") == b"a"
        assert await cache.get("acme", "c") == b"c"
        assert len(cache) == 2

    async def test_close_drops_everything(self) -> None:
        """After close nothing is held."""
        cache = MemoryCache()
        await cache.set("acme", "k", b"v", ttl_s=60)
        await cache.close()
        assert len(cache) == 0

    def test_threads_share_it_safely(self) -> None:
        """Threads writing and reading at once never break the size bound, values or counters."""
        cache = MemoryCache(max_entries=50)
        threads_n, ops = 8, 1500
        wrong: list[bytes] = []

        async def work(worker: int) -> None:
            tenant = f"tenant-{worker}"
            for i in range(ops):
                key = str(i % 80)
                await cache.set(tenant, key, f"{tenant}/{key}".encode(), ttl_s=60)
                got = await cache.get(tenant, key if i % 3 else str((i + 7) % 80))
                if got is not None and not got.startswith(f"{tenant}/".encode()):
                    wrong.append(got)

        threads = [threading.Thread(target=asyncio.run, args=(work(n),)) for n in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wrong == []
        assert len(cache) <= 50
        assert cache.hits + cache.misses == threads_n * ops
        assert cache.hits > 0
