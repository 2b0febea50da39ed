"""The cost ledger's SQL for PostgreSQL, run on the store's connection inside its transactions.

Writes are plain INSERTs, which PostgreSQL runs concurrently from any number of hosts; the
storage accrual locks the tenant's accrual row (SELECT ... FOR UPDATE), so nodes racing on
one tenant charge each span once. `PostgresStore` exposes the `CostLedger` methods over these.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from tenantrag.backends.ledger import (
    CostEvent,
    MonthUsage,
    StoragePricing,
    UsageReport,
    build_report,
    day_start,
    day_window,
    month_of,
)

Conn = psycopg.Connection[TupleRow]
INSERT_EVENT = (
    "INSERT INTO cost_events (tenant_id, cost_type, amount_usd, tokens, model, request_id,"
    " details, at) VALUES (%s, %s, %s, %s, %s, %s, %s, to_timestamp(%s))"
)


def insert_events(conn: Conn, events: Sequence[CostEvent]) -> None:
    """Insert `events` (inside the caller's transaction)."""
    if events:
        conn.cursor().executemany(INSERT_EVENT, [_row(event) for event in events])


def totals(conn: Conn, tenant: str, start: date, end: date) -> UsageReport:
    """The tenant's totals by type, model and UTC day, `start` to `end` inclusive."""
    since, until = day_window(start, end)
    rows = conn.execute(
        "SELECT cost_type, model, (at AT TIME ZONE 'UTC')::date AS day, SUM(amount_usd),"
        " SUM(tokens), COUNT(*) FROM cost_events WHERE tenant_id = %s"
        " AND at >= to_timestamp(%s) AND at < to_timestamp(%s)"
        " GROUP BY cost_type, model, day",
        (tenant, since, until),
    ).fetchall()
    return build_report(tenant, start, end, rows)


def month_to_date(conn: Conn, tenant: str, at: float) -> MonthUsage:
    """The tenant's tokens and cost in the UTC month holding `at`."""
    first, resets_at = month_of(at)
    row = conn.execute(
        "SELECT COALESCE(SUM(tokens), 0), COALESCE(SUM(amount_usd), 0) FROM cost_events"
        " WHERE tenant_id = %s AND at >= to_timestamp(%s) AND at < to_timestamp(%s)",
        (tenant, day_start(first), resets_at.timestamp()),
    ).fetchone()
    tokens, cost = row if row is not None else (0, 0.0)
    return MonthUsage(int(tokens), float(cost), first, resets_at)


def accrue(
    conn: Conn, pricing: StoragePricing, tenant: str, stored_bytes: int, at: float
) -> list[CostEvent]:
    """Charge storage since the tenant's last accrual (the tenant's accrual row locked)."""
    first = conn.execute(
        "INSERT INTO storage_accruals VALUES (%s, %s, %s)"
        " ON CONFLICT (tenant_id) DO NOTHING RETURNING tenant_id",
        (tenant, at, stored_bytes),
    ).fetchone()
    if first is not None:
        return []  # the first report starts the clock
    last = conn.execute(
        "SELECT accrued_until, stored_bytes FROM storage_accruals WHERE tenant_id = %s FOR UPDATE",
        (tenant,),
    ).fetchone()
    events, advance = pricing.accrue(tenant, last, stored_bytes, at)
    insert_events(conn, events)
    if advance:
        conn.execute(
            "UPDATE storage_accruals SET accrued_until = %s, stored_bytes = %s"
            " WHERE tenant_id = %s",
            (at, stored_bytes, tenant),
        )
    return events


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
