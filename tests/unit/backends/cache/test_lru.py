"""TenantLRU: bounded by entries and by weight, least recently used first, forgets a tenant."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator

import pytest

from tenantrag.backends.cache.lru import TenantLRU, forget_everywhere

Key = tuple[str, str]


def chars(key: Key, value: str) -> int:
    """A text entry's weight: its key's text and its value's characters."""
    return len(key[1]) + len(value)


def weighed(size: int = 100, max_weight: int = 100) -> TenantLRU[Key, str]:
    return TenantLRU[Key, str](size, weigh=chars, max_weight=max_weight)


class TestTenantLRU:
    def test_returns_what_was_put(self) -> None:
        """A kept value comes back for its key; a key never put is a miss (None)."""
        lru = TenantLRU[Key, int](4)
        lru.put(("acme", "a"), 1)
        lru.put(("acme", "b"), 2)
        assert lru.get(("acme", "a")) == 1 and lru.get(("acme", "b")) == 2
        assert lru.get(("acme", "c")) is None
        assert len(lru) == 2 and lru.weight == 0

    def test_putting_a_key_again_replaces_its_value(self) -> None:
        """One entry per key: the new value, and only its weight, counts."""
        lru = weighed()
        lru.put(("acme", "a"), "x" * 10)
        lru.put(("acme", "a"), "y")
        assert lru.get(("acme", "a")) == "y" and len(lru) == 1 and lru.weight == 2

    def test_the_least_recently_put_goes_first_past_the_entry_bound(self) -> None:
        lru = TenantLRU[Key, int](2)
        for n, name in enumerate("abc"):
            lru.put(("acme", name), n)
        assert lru.get(("acme", "a")) is None
        assert lru.get(("acme", "b")) == 1 and lru.get(("acme", "c")) == 2

    def test_a_get_makes_an_entry_the_most_recent(self) -> None:
        lru = TenantLRU[Key, int](2)
        lru.put(("acme", "a"), 1)
        lru.put(("acme", "b"), 2)
        assert lru.get(("acme", "a")) == 1  # now b is the least recent
        lru.put(("acme", "c"), 3)
        assert lru.get(("acme", "b")) is None
        assert lru.get(("acme", "a")) == 1 and lru.get(("acme", "c")) == 3

    def test_the_least_recent_go_first_past_the_weight_bound(self) -> None:
        """Heavy entries are evicted by their weight, however few they are."""
        lru = weighed(size=100, max_weight=100)
        for name in "abcd":
            lru.put(("acme", name), "x" * 29)  # 30 each: three fit
        assert lru.get(("acme", "a")) is None
        assert [lru.get(("acme", name)) is not None for name in "bcd"] == [True] * 3
        assert len(lru) == 3 and lru.weight == 90
        lru.put(("acme", "e"), "x" * 69)  # 70: room for one of the 30s only
        assert lru.get(("acme", "b")) is None and lru.get(("acme", "c")) is None
        assert len(lru) == 2 and lru.weight == 100

    def test_a_value_heavier_than_the_bound_is_not_kept(self) -> None:
        """It is not kept, and what was kept stays: room for it would cost every other entry."""
        lru = weighed(max_weight=100)
        lru.put(("acme", "a"), "small")
        lru.put(("acme", "huge"), "x" * 97)  # 101
        assert lru.get(("acme", "huge")) is None
        assert lru.get(("acme", "a")) == "small" and lru.weight == 6
        lru.put(("acme", "a"), "x" * 200)  # a newer value too heavy: the older one goes too
        assert lru.get(("acme", "a")) is None and len(lru) == 0 and lru.weight == 0

    def test_forget_tenant_drops_only_that_tenants_entries_and_their_weight(self) -> None:
        lru = weighed(max_weight=1000)
        for tenant in ("acme", "globex"):
            lru.put((tenant, "a"), "x" * 9)  # 10
            lru.put((tenant, "b"), "x" * 19)  # 20
        assert lru.tenants() == {"acme", "globex"} and lru.weight == 60
        assert lru.forget_tenant("acme") == 2
        assert lru.tenants() == {"globex"} and len(lru) == 2 and lru.weight == 30
        assert lru.get(("globex", "a")) == "x" * 9 and lru.get(("acme", "a")) is None
        assert lru.forget_tenant("acme") == 0

    def test_two_tenants_with_the_same_rest_of_key_are_two_entries(self) -> None:
        """One tenant's entry never answers for another's, whatever the rest of the key."""
        lru = TenantLRU[Key, str](4)
        lru.put(("acme", "leave policy"), "acme's")
        assert lru.get(("globex", "leave policy")) is None
        lru.put(("globex", "leave policy"), "globex's")
        assert lru.get(("acme", "leave policy")) == "acme's"
        assert lru.get(("globex", "leave policy")) == "globex's" and len(lru) == 2

    @pytest.mark.parametrize(
        ("size", "options"),
        [(0, {}), (10, {"max_weight": 5}), (10, {"weigh": chars})],
    )
    def test_bounds_must_make_sense(self, size: int, options: dict[str, object]) -> None:
        """At least one entry; a weight function and its bound come together."""
        with pytest.raises(ValueError):
            TenantLRU[Key, str](size, **options)  # type: ignore[arg-type]  # the wrong ones

    def test_threads_putting_at_once_keep_both_bounds(self, quick_switches: None) -> None:
        """Eight threads writing and reading: never past a bound, the weight always the sum."""
        lru = weighed(size=50, max_weight=600)
        wrong: list[str] = []

        def work(tenant: str) -> None:
            for i in range(2000):
                key = (tenant, str(i % 80))
                lru.put(key, f"{tenant}/" + "x" * (i % 17))
                got = lru.get((tenant, str((i * 7) % 80)))
                if got is not None and not got.startswith(f"{tenant}/"):
                    wrong.append(got)
                if i % 500 == 0:
                    lru.forget_tenant(tenant)

        threads = [threading.Thread(target=work, args=(f"tenant-{n}",)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wrong == []
        kept = {
            (t, str(i)): v
            for t in lru.tenants()
            for i in range(80)
            if (v := lru.get((t, str(i)))) is not None
        }
        assert 0 < len(lru) == len(kept) <= 50
        assert lru.weight == sum(chars(k, v) for k, v in kept.items()) <= 600


@pytest.fixture
def quick_switches() -> Iterator[None]:
    """Threads switch far more often than by default, so that races have room to happen."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def test_forget_everywhere_reaches_every_live_cache_of_the_process() -> None:
    """An erasure need not know every cache: each TenantLRU made anywhere is reached, another
    tenant's entries stay, and a cache nobody holds any more is not kept alive for it."""
    first, second = TenantLRU[tuple[str, str], str](8), TenantLRU[tuple[str, str], str](8)
    gone = TenantLRU[tuple[str, str], str](8)
    for lru in (first, second, gone):
        lru.put(("erased-tenant", "text"), "kept")
        lru.put(("other-tenant", "text"), "kept")
    del lru, gone
    gc.collect()
    assert forget_everywhere("erased-tenant") == 2
    assert first.tenants() == second.tenants() == {"other-tenant"}
    assert forget_everywhere("erased-tenant") == 0
