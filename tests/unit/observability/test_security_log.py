"""The security log: refusals counted per client address and window, in bounded rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from tenantrag.backends.store.extras import SecurityEntry
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.observability.security_log import OVERFLOW, SecurityLog, client_key


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sink:
    """Rows kept in a list; fails on demand (the store being down)."""

    def __init__(self) -> None:
        self.rows: list[SecurityEntry] = []
        self.down = False
        self.pruned_before: list[float] = []

    def append_security(self, entries: Sequence[SecurityEntry]) -> None:
        if self.down:
            raise ConnectionError("store down")
        self.rows += entries

    def prune_security(self, *, before: float) -> int:
        self.pruned_before.append(before)
        return 0


def make(sink: Sink, clock: Clock, *, max_clients: int = 3) -> SecurityLog:
    return SecurityLog(
        sink, interval_s=60, max_clients=max_clients, retention_days=1, node="n1", clock=clock
    )


def test_a_flood_from_one_address_is_one_row_with_its_count() -> None:
    """10,000 refusals from one address in one window: one row, counted by code."""
    sink, clock = Sink(), Clock()
    log = make(sink, clock)
    for i in range(10_000):
        log.failure("203.0.113.7", "invalid_token" if i % 4 else "tenant_mismatch", "acme")
    log.tick()
    assert sink.rows == []  # the window is still open
    clock.now += 60
    log.tick()
    (row,) = sink.rows
    assert (row.client, row.event, row.count) == ("203.0.113.7", "auth_failure", 10_000)
    assert row.detail["codes"] == {"invalid_token": 7500, "tenant_mismatch": 2500}
    assert row.detail["claimed_tenants"] == ["acme"] and row.detail["node"] == "n1"
    assert row.window_end - row.window_start == 60


def test_each_address_gets_its_row_until_the_cap_then_one_overflow_row() -> None:
    """Past `max_clients` addresses in a window, the rest fold into the `*` row."""
    sink, clock = Sink(), Clock()
    log = make(sink, clock, max_clients=3)
    for n in range(10):
        log.failure(f"198.51.100.{n}", "invalid_token", None)
    log.failure("198.51.100.0", "invalid_token", None)
    log.flush()
    rows = {r.client: r for r in sink.rows}
    assert len(rows) == 4 and rows["198.51.100.0"].count == 2
    assert (rows[OVERFLOW].count, rows[OVERFLOW].detail["clients"]) == (7, 7)


def test_windows_roll_over_and_flush_writes_the_open_one() -> None:
    """Each window is its own row; flush (at shutdown) writes the one still open."""
    sink, clock = Sink(), Clock(0.0)
    log = make(sink, clock)
    log.failure("192.0.2.1", "invalid_token", None)
    clock.now = 61.0
    log.failure("192.0.2.1", "invalid_token", None)
    log.failure("192.0.2.1", "invalid_token", None)
    log.tick()
    assert [(r.window_start, r.count) for r in sink.rows] == [(0.0, 1)]
    log.flush()
    assert [(r.window_start, r.count) for r in sink.rows] == [(0.0, 1), (60.0, 2)]
    log.flush()
    assert len(sink.rows) == 2  # nothing counted twice


def test_claimed_tenants_are_bounded_and_only_well_formed() -> None:
    """At most five claimed tenant ids per row, and never a malformed header."""
    sink, clock = Sink(), Clock()
    log = make(sink, clock)
    for claimed in ["Bad Header", "x" * 100, *[f"tenant-{n}" for n in range(9)]]:
        log.failure("192.0.2.1", "invalid_token", claimed)
    log.flush()
    assert sink.rows[0].detail["claimed_tenants"] == [f"tenant-{n}" for n in range(5)]


def test_rows_survive_a_store_outage() -> None:
    """Rows that could not be written are written on the next tick."""
    sink, clock = Sink(), Clock()
    log = make(sink, clock)
    log.failure("192.0.2.1", "invalid_token", None)
    clock.now += 60
    sink.down = True
    with pytest.raises(ConnectionError):
        log.tick()
    sink.down = False
    log.tick()
    assert [r.count for r in sink.rows] == [1]


def test_old_rows_are_pruned_past_the_retention() -> None:
    """The first tick prunes rows older than the retention (1 day here), then hourly."""
    sink, clock = Sink(), Clock()
    log = make(sink, clock)
    log.tick()
    log.tick()
    assert sink.pruned_before == [clock.now - 86400]
    clock.now += 3600
    log.tick()
    assert len(sink.pruned_before) == 2


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.9", "192.0.2.9"),
        (None, "unknown"),
        ("testclient", "testclient"),
    ],
)
def test_addresses_are_counted_by_host_and_ipv6_by_64(host: str | None, key: str) -> None:
    """An IPv6 subscriber's /64 is one client; a mapped IPv4 address is the IPv4 one."""
    assert client_key(host) == key


def test_rows_land_in_the_store_apart_from_the_chain(tmp_path: Path) -> None:
    """Against the SQLite store: the rows are there, and the audit chain did not move."""
    store = SQLiteStore(tmp_path / "tenantrag.db")
    store.open()
    log = SecurityLog(store, interval_s=60, max_clients=10, retention_days=1, node="n1")
    for _ in range(50):
        log.failure("192.0.2.1", "invalid_token", "acme")
    log.flush()
    (row,) = store.security_log(limit=10)
    assert (row.client, row.count, row.detail["claimed_tenants"]) == ("192.0.2.1", 50, ["acme"])
    assert store.audit_head().seq == 0
    store.close()
