"""The cost recorder through a database outage, on the real SQLite ledger.

`Flaky` stands in for a database that goes away and comes back (a PostgreSQL restart): it
passes every call to the real store, except that while `down` is set `record` raises the
DependencyUnavailable PostgresStore raises, and while `slow` is set `month_to_date` hangs as
a read on a dropped connection does. The API-level outage test (real PostgreSQL, backends
terminated) is tests/integration/test_postgres_restart.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tenantrag.backends.ledger import CostEvent, MonthUsage
from tenantrag.backends.store import Store, store_at
from tenantrag.errors import DependencyUnavailable, QuotaExceeded
from tenantrag.metering import CostRecorder
from tenantrag.models import CostItem, Tenant


class Flaky:
    """The real ledger, with writes that fail and reads that hang on demand."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = threading.Event()
        self.slow = threading.Event()
        self.failed_writes = 0
        self.reads = 0

    def record(self, events: Sequence[CostEvent]) -> None:
        if self.down.is_set():
            self.failed_writes += 1
            raise DependencyUnavailable("The database is unreachable; retry shortly.")
        self.store.record(events)

    def month_to_date(self, tenant: str, *, now: datetime | float) -> MonthUsage:
        self.reads += 1
        if self.slow.is_set():
            time.sleep(3)
        return self.store.month_to_date(tenant, now=now)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = store_at(f"sqlite:///{tmp_path / 'store.db'}")
    opened.open()
    opened.create_tenant(Tenant(id="acme"))
    yield opened
    opened.close()


def _bill(usd: float) -> list[CostItem]:
    return [CostItem("retrieval", usd, {"mode": "bm25"})]


def _until(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_a_failed_ledger_write_is_retried_until_it_succeeds(store: Store) -> None:
    """No event is lost: they wait in memory, retried with backoff, then stored exactly once."""
    ledger = Flaky(store)
    costs = CostRecorder(ledger, flush_s=0.01, retry_max_s=0.1)  # type: ignore[arg-type]
    ledger.down.set()
    for _ in range(3):
        costs.record("acme", _bill(0.25), request_id="r", model=None)
    _until(lambda: ledger.failed_writes >= 3)  # retried without new events arriving
    assert costs.unwritten == 3
    assert store.month_to_date("acme", now=time.time()).cost_usd == 0
    assert costs.month_to_date("acme").cost_usd == pytest.approx(0.75)  # still counted here
    ledger.down.clear()
    _until(lambda: costs.unwritten == 0)
    assert store.month_to_date("acme", now=time.time()).cost_usd == pytest.approx(0.75)
    time.sleep(costs.snapshot_s + 0.05)
    assert costs.month_to_date("acme").cost_usd == pytest.approx(0.75)  # not counted twice


def test_past_the_bound_the_oldest_events_are_dropped_and_counted(store: Store) -> None:
    """At most `max_unwritten` wait; the rest are dropped, logged and counted in a metric."""

    def dropped() -> float:
        value = REGISTRY.get_sample_value("tenantrag_cost_events_dropped_total", {"tenant": "acme"})
        return value or 0.0

    before = dropped()
    ledger = Flaky(store)
    costs = CostRecorder(ledger, flush_s=0.01, max_unwritten=5, retry_max_s=0.05)  # type: ignore[arg-type]
    ledger.down.set()
    for i in range(8):
        costs.record("acme", _bill(1.0 + i), request_id=f"r{i}", model=None)
    costs.flush()
    assert costs.unwritten == 5
    assert dropped() - before == 3
    ledger.down.clear()
    costs.flush()
    assert costs.unwritten == 0
    kept = store.month_to_date("acme", now=time.time()).cost_usd
    assert kept == pytest.approx(sum(1.0 + i for i in range(3, 8)))  # the five newest


def test_the_quota_check_answers_from_memory_while_the_ledger_hangs(store: Store) -> None:
    """An expired snapshot is refreshed in the background; the check itself never waits."""
    ledger = Flaky(store)
    costs = CostRecorder(ledger, flush_s=0.01, snapshot_s=0.05)  # type: ignore[arg-type]
    tenant = Tenant(id="acme", monthly_cost_budget_usd=10.0)
    costs.check_quota(tenant)  # the first check reads the ledger once
    ledger.slow.set()
    time.sleep(0.1)  # the snapshot expired
    started = time.monotonic()
    for _ in range(20):
        costs.check_quota(tenant)
    assert time.monotonic() - started < 0.5
    costs.record("acme", _bill(11.0), request_id="r", model=None)
    with pytest.raises(QuotaExceeded):  # spending is still counted without the database
        costs.check_quota(tenant)
    ledger.slow.clear()


async def test_a_first_check_reads_the_ledger_off_the_event_loop(store: Store) -> None:
    """acheck_quota sends the one ledger read to a thread; the loop keeps running."""
    import asyncio

    ledger = Flaky(store)
    costs = CostRecorder(ledger, flush_s=0.01)  # type: ignore[arg-type]
    ledger.slow.set()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.05)

    ticker = asyncio.create_task(tick())
    await costs.acheck_quota(Tenant(id="acme"))
    ticker.cancel()
    assert ticks >= 20  # ~3 s of ledger read, the loop ticked all along
    assert costs.has_snapshot("acme")
