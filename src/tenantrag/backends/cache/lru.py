"""A process-local LRU keyed by tenant, for what is computed again and again from its texts.

Unlike the byte caches of this package (shared by the workers, with a time to live), this one
keeps Python objects in one process: results of pure functions of a tenant's texts (redactions,
split sentences, sentence vectors) that come back request after request. Every key starts with
the tenant id, so one tenant's entries never answer, nor speed up, another tenant's requests;
the rest of the key often holds the tenant's raw text, so an erasure drops them: every
TenantLRU of the process at once (`forget_everywhere`), wherever it was made.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=tuple[str, *tuple[Hashable, ...]])  # (tenant id, ...)
V = TypeVar("V")


class TenantLRU(Generic[K, V]):
    """At most `size` values, the least recently used going first; safe across threads.

    With `weigh` and `max_weight` the values' total weight (characters, say) is bounded too. A
    value heavier than `max_weight` on its own is not kept: room for it would cost every other
    entry. `None` is never a value: `get` returns it for a miss.
    """

    def __init__(
        self,
        size: int,
        *,
        weigh: Callable[[K, V], int] | None = None,
        max_weight: int | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("an LRU holds at least one entry")
        if (weigh is None) != (max_weight is None):
            raise ValueError("weigh and max_weight come together: a weight needs its bound")
        self.size, self.max_weight = size, max_weight
        self._weigh = weigh
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()  # oldest first
        self._weight = 0
        self._lock = threading.Lock()
        with _ALL_LOCK:
            _ALL.add(self)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def weight(self) -> int:
        """The kept values' total weight (0 without `weigh`)."""
        return self._weight

    def get(self, key: K) -> V | None:
        """The value kept for `key`, now the most recently used; None when there is none."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: K, value: V) -> None:
        """Keep `value` for `key` as the most recently used, evicting the least recent ones."""
        weight = 0 if self._weigh is None else self._weigh(key, value)
        with self._lock:
            replaced = self._entries.pop(key, None)
            if replaced is not None:
                self._weight -= replaced[1]
            if self.max_weight is not None and weight > self.max_weight:
                return  # not kept, and no older value of the key outlives this one
            self._entries[key] = (value, weight)
            self._weight += weight
            # The new entry fits on its own, so this stops before reaching it.
            while len(self._entries) > self.size or (
                self.max_weight is not None and self._weight > self.max_weight
            ):
                _, (_, dropped) = self._entries.popitem(last=False)
                self._weight -= dropped

    def forget_tenant(self, tenant: str) -> int:
        """Drop the tenant's entries (an erasure); how many there were."""
        with self._lock:
            keys = [key for key in self._entries if key[0] == tenant]
            for key in keys:
                self._weight -= self._entries.pop(key)[1]
        return len(keys)

    def tenants(self) -> set[str]:
        """The tenants with entries kept now.

        A request still running for a tenant being erased may put one back after
        `forget_tenant`.
        """
        with self._lock:
            return {key[0] for key in self._entries}


# Every live TenantLRU of this process (weakly: a cache nobody holds goes), so that an erasure
# reaches all of them, those of components it does not know of included.
_ALL: weakref.WeakSet[TenantLRU[Any, Any]] = weakref.WeakSet()
_ALL_LOCK = threading.Lock()


def forget_everywhere(tenant: str) -> int:
    """Drop the tenant's entries from every TenantLRU of this process (an erasure); how many."""
    with _ALL_LOCK:
        caches = list(_ALL)
    return sum(cache.forget_tenant(tenant) for cache in caches)
