"""The cost ledger in SQLite (WAL): one host, any number of worker processes and threads.

Writers take the database write lock up front (BEGIN IMMEDIATE) and wait up to 30 s for it, so
concurrent workers queue instead of failing; WAL lets readers run while one writes. The file
may be the store's own database: the table names do not collide.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

from tenantrag.backends.ledger import (
    CostEvent,
    MonthUsage,
    StoragePricing,
    UsageReport,
    build_report,
    day_start,
    day_window,
    month_of,
    to_epoch,
)
from tenantrag.errors import InsufficientStorage

SCHEMA = """
CREATE TABLE IF NOT EXISTS cost_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    cost_type TEXT NOT NULL,
    amount_usd REAL NOT NULL,
    tokens INTEGER NOT NULL,
    model TEXT,
    request_id TEXT,
    details TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cost_events_by_tenant_at ON cost_events (tenant_id, at);
CREATE TABLE IF NOT EXISTS storage_accruals (
    tenant_id TEXT PRIMARY KEY,
    accrued_until REAL NOT NULL,
    stored_bytes INTEGER NOT NULL
);
"""

INSERT_EVENT = (
    "INSERT INTO cost_events (tenant_id, cost_type, amount_usd, tokens, model, request_id,"
    " details, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class SQLiteLedger:
    """Cost events in one SQLite file; one connection per thread, full fsync on commit."""

    def __init__(self, path: Path, *, pricing: StoragePricing | None = None) -> None:
        self.path = path
        self.pricing = pricing or StoragePricing()
        self._local = threading.local()
        self._all: dict[threading.Thread, sqlite3.Connection] = {}  # by the thread using it
        self._lock = threading.Lock()

    def record(self, events: Sequence[CostEvent]) -> None:
        """Store all `events` in one transaction."""
        if not events:
            return
        rows = [_row(event) for event in events]
        with self._tx() as db:
            db.executemany(INSERT_EVENT, rows)

    def totals(self, tenant: str, *, start: date, end: date) -> UsageReport:
        """The tenant's totals by type, model and UTC day, `start` to `end` inclusive."""
        since, until = day_window(start, end)
        rows = self._conn().execute(
            "SELECT cost_type, model, date(at, 'unixepoch') AS day, SUM(amount_usd),"
            " SUM(tokens), COUNT(*) FROM cost_events"
            " WHERE tenant_id = ? AND at >= ? AND at < ? GROUP BY cost_type, model, day",
            (tenant, since, until),
        )
        return build_report(
            tenant,
            start,
            end,
            ((t, m, date.fromisoformat(d), a, k, n) for t, m, d, a, k, n in rows),
        )

    def month_to_date(self, tenant: str, *, now: datetime | float) -> MonthUsage:
        """The tenant's tokens and cost in the UTC month holding `now`."""
        first, resets_at = month_of(to_epoch(now))
        tokens, cost = (
            self._conn()
            .execute(
                "SELECT COALESCE(SUM(tokens), 0), COALESCE(SUM(amount_usd), 0.0) FROM cost_events"
                " WHERE tenant_id = ? AND at >= ? AND at < ?",
                (tenant, day_start(first), resets_at.timestamp()),
            )
            .fetchone()
        )
        return MonthUsage(int(tokens), float(cost), first, resets_at)

    def storage_accrual(
        self, tenant: str, stored_bytes: int, *, now: datetime | float
    ) -> CostEvent | None:
        """Record storage owed since the tenant's last accrual; the latest event, or None."""
        at = to_epoch(now)
        with self._tx() as db:  # the write lock makes read-decide-write atomic across workers
            last = db.execute(
                "SELECT accrued_until, stored_bytes FROM storage_accruals WHERE tenant_id = ?",
                (tenant,),
            ).fetchone()
            events, advance = self.pricing.accrue(tenant, last, stored_bytes, at)
            db.executemany(INSERT_EVENT, [_row(event) for event in events])
            if advance:
                db.execute(
                    "INSERT INTO storage_accruals VALUES (?, ?, ?) ON CONFLICT (tenant_id)"
                    " DO UPDATE SET accrued_until = excluded.accrued_until,"
                    " stored_bytes = excluded.stored_bytes",
                    (tenant, at, stored_bytes),
                )
        return events[-1] if events else None

    def close(self) -> None:
        """Close every connection this ledger opened."""
        with self._lock:
            for conn in self._all.values():
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema made) on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False only so close() can close it; each thread uses its own.
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(SCHEMA)
            self._local.conn = conn
            with self._lock:
                # Thread pools retire idle threads; their connections (2 fds each) would pile up.
                for thread in [t for t in self._all if not t.is_alive()]:
                    self._all.pop(thread).close()
                self._all[threading.current_thread()] = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database lock from its start."""
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower():
                raise InsufficientStorage(
                    "The data folder's disk is full; no cost was recorded. Free space and retry."
                ) from exc
            raise


def _row(event: CostEvent) -> tuple[object, ...]:
    """The INSERT_EVENT parameters of `event`."""
    return (
        event.tenant_id,
        event.cost_type.value,
        event.amount_usd,
        event.tokens,
        event.model,
        event.request_id,
        json.dumps(dict(event.details), sort_keys=True, allow_nan=False),
        event.at,
    )
