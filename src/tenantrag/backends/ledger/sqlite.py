"""The cost ledger's SQL for SQLite, run on the store's connection inside its transactions.

The tables (`cost_events`, `storage_accruals`) are the store's (migration 0002), so a write's
costs commit with the write; `SQLiteStore` exposes the `CostLedger` methods over these.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import date

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

INSERT_EVENT = (
    "INSERT INTO cost_events (tenant_id, cost_type, amount_usd, tokens, model, request_id,"
    " details, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert_events(db: sqlite3.Connection, events: Sequence[CostEvent]) -> None:
    """Insert `events` (inside the caller's transaction)."""
    db.executemany(INSERT_EVENT, [_row(event) for event in events])


def totals(db: sqlite3.Connection, tenant: str, start: date, end: date) -> UsageReport:
    """The tenant's totals by type, model and UTC day, `start` to `end` inclusive."""
    since, until = day_window(start, end)
    rows = db.execute(
        "SELECT cost_type, model, date(at, 'unixepoch') AS day, SUM(amount_usd),"
        " SUM(tokens), COUNT(*) FROM cost_events"
        " WHERE tenant_id = ? AND at >= ? AND at < ? GROUP BY cost_type, model, day",
        (tenant, since, until),
    )
    return build_report(
        tenant, start, end, ((t, m, date.fromisoformat(d), a, k, n) for t, m, d, a, k, n in rows)
    )


def month_to_date(db: sqlite3.Connection, tenant: str, at: float) -> MonthUsage:
    """The tenant's tokens and cost in the UTC month holding `at`."""
    first, resets_at = month_of(at)
    tokens, cost = db.execute(
        "SELECT COALESCE(SUM(tokens), 0), COALESCE(SUM(amount_usd), 0.0) FROM cost_events"
        " WHERE tenant_id = ? AND at >= ? AND at < ?",
        (tenant, day_start(first), resets_at.timestamp()),
    ).fetchone()
    return MonthUsage(int(tokens), float(cost), first, resets_at)


def accrue(
    db: sqlite3.Connection, pricing: StoragePricing, tenant: str, stored_bytes: int, at: float
) -> list[CostEvent]:
    """Charge storage since the tenant's last accrual; the caller holds the write lock."""
    last = db.execute(
        "SELECT accrued_until, stored_bytes FROM storage_accruals WHERE tenant_id = ?", (tenant,)
    ).fetchone()
    events, advance = pricing.accrue(tenant, last, stored_bytes, at)
    insert_events(db, events)
    if advance:
        db.execute(
            "INSERT INTO storage_accruals VALUES (?, ?, ?) ON CONFLICT (tenant_id)"
            " DO UPDATE SET accrued_until = excluded.accrued_until,"
            " stored_bytes = excluded.stored_bytes",
            (tenant, at, stored_bytes),
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
        json.dumps(dict(event.details), sort_keys=True, allow_nan=False),
        event.at,
    )
