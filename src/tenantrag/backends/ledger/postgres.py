"""The cost ledger in PostgreSQL, for distributed mode: every pod and worker writes one ledger.

Writes are plain INSERT transactions, which PostgreSQL runs concurrently from any number of
hosts; the storage accrual locks the tenant's accrual row (SELECT ... FOR UPDATE), so workers
racing on the same tenant charge each span once. Connections come from a small psycopg pool,
opened on first use and checked before each loan, so a restarted server is reconnected.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

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
from tenantrag.errors import DependencyUnavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS cost_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL,
    cost_type text NOT NULL,
    amount_usd double precision NOT NULL,
    tokens bigint NOT NULL,
    model text,
    request_id text,
    details jsonb NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS cost_events_by_tenant_at ON cost_events (tenant_id, at);
CREATE TABLE IF NOT EXISTS storage_accruals (
    tenant_id text PRIMARY KEY,
    accrued_until double precision NOT NULL,
    stored_bytes bigint NOT NULL
);
"""
SCHEMA_LOCK = 0x7465_6E61_6E74  # one advisory lock id: concurrent CREATE IF NOT EXISTS can clash

INSERT_EVENT = (
    "INSERT INTO cost_events (tenant_id, cost_type, amount_usd, tokens, model, request_id,"
    " details, at) VALUES (%s, %s, %s, %s, %s, %s, %s, to_timestamp(%s))"
)


class PostgresLedger:
    """Cost events in PostgreSQL through a pool of at most `max_connections` connections."""

    def __init__(
        self,
        conninfo: str,
        *,
        pricing: StoragePricing | None = None,
        max_connections: int = 8,
        timeout_s: float = 10.0,
    ) -> None:
        self.pricing = pricing or StoragePricing()
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_connections,
            timeout=timeout_s,
            open=False,
            check=ConnectionPool.check_connection,
            kwargs={"connect_timeout": max(1, int(timeout_s))},
        )
        self._ready = False
        self._lock = threading.Lock()

    def record(self, events: Sequence[CostEvent]) -> None:
        """Store all `events` in one transaction."""
        if not events:
            return
        with self._conn() as conn:
            conn.cursor().executemany(INSERT_EVENT, [_row(event) for event in events])

    def totals(self, tenant: str, *, start: date, end: date) -> UsageReport:
        """The tenant's totals by type, model and UTC day, `start` to `end` inclusive."""
        since, until = day_window(start, end)
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT cost_type, model, (at AT TIME ZONE 'UTC')::date AS day, SUM(amount_usd),"
                " SUM(tokens), COUNT(*) FROM cost_events WHERE tenant_id = %s"
                " AND at >= to_timestamp(%s) AND at < to_timestamp(%s)"
                " GROUP BY cost_type, model, day",
                (tenant, since, until),
            ).fetchall()
        return build_report(tenant, start, end, rows)

    def month_to_date(self, tenant: str, *, now: datetime | float) -> MonthUsage:
        """The tenant's tokens and cost in the UTC month holding `now`."""
        first, resets_at = month_of(to_epoch(now))
        with self._conn() as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(tokens), 0), COALESCE(SUM(amount_usd), 0) FROM cost_events"
                " WHERE tenant_id = %s AND at >= to_timestamp(%s) AND at < to_timestamp(%s)",
                (tenant, day_start(first), resets_at.timestamp()),
            ).fetchone()
        tokens, cost = row if row is not None else (0, 0.0)
        return MonthUsage(int(tokens), float(cost), first, resets_at)

    def storage_accrual(
        self, tenant: str, stored_bytes: int, *, now: datetime | float
    ) -> CostEvent | None:
        """Record storage owed since the tenant's last accrual; the latest event, or None."""
        at = to_epoch(now)
        with self._conn() as conn:
            first = conn.execute(
                "INSERT INTO storage_accruals VALUES (%s, %s, %s)"
                " ON CONFLICT (tenant_id) DO NOTHING RETURNING tenant_id",
                (tenant, at, stored_bytes),
            ).fetchone()
            if first is not None:
                return None  # the first report starts the clock
            last = conn.execute(
                "SELECT accrued_until, stored_bytes FROM storage_accruals"
                " WHERE tenant_id = %s FOR UPDATE",
                (tenant,),
            ).fetchone()
            events, advance = self.pricing.accrue(tenant, last, stored_bytes, at)
            if events:
                conn.cursor().executemany(INSERT_EVENT, [_row(event) for event in events])
            if advance:
                conn.execute(
                    "UPDATE storage_accruals SET accrued_until = %s, stored_bytes = %s"
                    " WHERE tenant_id = %s",
                    (at, stored_bytes, tenant),
                )
        return events[-1] if events else None

    def close(self) -> None:
        """Close the pool and its connections."""
        self._pool.close()

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[TupleRow]]:
        """A pooled connection inside one transaction (committed on success)."""
        self._open()
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DependencyUnavailable(
                "The cost ledger database is unreachable; retry shortly.", retry_after=5
            ) from exc

    def _open(self) -> None:
        """Open the pool and make the schema, once."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                self._pool.open(wait=True)
                with self._pool.connection() as conn, conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                    conn.execute(SCHEMA)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                raise DependencyUnavailable(
                    "The cost ledger database is unreachable; retry shortly.", retry_after=5
                ) from exc
            self._ready = True


def _row(event: CostEvent) -> tuple[object, ...]:
    """The INSERT_EVENT parameters of `event`."""
    return (
        event.tenant_id,
        event.cost_type.value,
        event.amount_usd,
        event.tokens,
        event.model,
        event.request_id,
        Jsonb(dict(event.details)),
        event.at,
    )
