"""An in-process LRU cache with a time to live per entry, for one process or tests."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from tenantrag.backends.cache import CacheCounters, ResultCallback, check_ttl, tenant_key


class MemoryCache(CacheCounters):
    """At most `max_entries` values; the least recently used goes first, expired ones on read."""

    def __init__(
        self,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        *,
        name: str = "memory",
        on_result: ResultCallback | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        super().__init__(name, on_result)
        self.max_entries = max_entries
        self.clock = clock
        # stored key -> (expires_at on `clock`, value); order is least to most recently used
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many entries are held, expired ones not yet dropped included."""
        return len(self._entries)

    async def get(self, tenant: str, key: str) -> bytes | None:
        """The tenant's live value for `key`, or None."""
        stored = tenant_key(tenant, key)
        with self._lock:
            entry = self._entries.get(stored)
            if entry is not None and entry[0] <= self.clock():
                del self._entries[stored]
                entry = None
            if entry is not None:
                self._entries.move_to_end(stored)
        self.count("miss" if entry is None else "hit")
        return None if entry is None else entry[1]

    async def set(self, tenant: str, key: str, value: bytes, *, ttl_s: int) -> None:
        """Store `value` for `ttl_s` seconds, evicting the least recently used when full."""
        check_ttl(ttl_s)
        stored = tenant_key(tenant, key)
        with self._lock:
            self._entries[stored] = (self.clock() + ttl_s, bytes(value))
            self._entries.move_to_end(stored)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    async def forget_tenant(self, tenant: str) -> int:
        """Delete every entry of the tenant; how many went."""
        prefix = tenant_key(tenant, "x")[:-1]
        with self._lock:
            doomed = [k for k in self._entries if k.startswith(prefix)]
            for stored in doomed:
                del self._entries[stored]
        return len(doomed)

    async def ping(self) -> bool:
        """Always True: memory is always there."""
        return True

    async def close(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
