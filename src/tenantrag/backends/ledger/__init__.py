"""The durable cost ledger: every metered cost as an event, totals by type, model and day.

The ledger lives in the store of record (backends/store/), so the costs of a change commit in
its transaction: both stores implement `CostLedger` with the SQL of sqlite.py and postgres.py
here. Both share the pure logic of this module: event validation, UTC day and month
arithmetic, report building and storage accrual. Days and months are UTC.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol, runtime_checkable

from tenantrag.models import is_valid_tenant_id

DetailValue = str | int | float
GIB = 1 << 30  # a "GB" of storage, as in the tenant storage quota (1 GB = 2**30 bytes)


class CostType(enum.StrEnum):
    """What a cost paid for."""

    LLM_INFERENCE = "llm_inference"
    EMBEDDING = "embedding"
    RETRIEVAL = "retrieval"
    COMPUTE = "compute"
    STORAGE = "storage"


@dataclass(frozen=True, slots=True)
class CostEvent:
    """One metered cost of one tenant, at a Unix time `at` (seconds)."""

    tenant_id: str
    cost_type: CostType
    amount_usd: float
    details: Mapping[str, DetailValue] = field(default_factory=dict)
    model: str | None = None
    tokens: int = 0
    at: float = field(default_factory=time.time)
    request_id: str | None = None

    def __post_init__(self) -> None:
        if not is_valid_tenant_id(self.tenant_id):
            raise ValueError(f"not a tenant id: {self.tenant_id!r}")
        object.__setattr__(self, "cost_type", CostType(self.cost_type))
        if not math.isfinite(self.amount_usd) or self.amount_usd < 0:
            raise ValueError(f"amount_usd must be finite and >= 0, not {self.amount_usd!r}")
        if isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens < 0:
            raise ValueError(f"tokens must be a whole number >= 0, not {self.tokens!r}")
        if not math.isfinite(self.at):
            raise ValueError("at must be a finite Unix time")
        for name, value in self.details.items():
            # Details are stored as JSON: keep them plain, and NaN out (JSON has no NaN).
            plain = isinstance(value, str | int) or (
                isinstance(value, float) and math.isfinite(value)
            )
            if not isinstance(name, str) or not plain:
                raise ValueError(f"detail {name!r} must map a str to a str, int or finite float")


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Money, tokens and event count of a group of events."""

    amount_usd: float = 0.0
    tokens: int = 0
    events: int = 0

    def __add__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(
            self.amount_usd + other.amount_usd,
            self.tokens + other.tokens,
            self.events + other.events,
        )


@dataclass(frozen=True, slots=True)
class UsageReport:
    """A tenant's costs from `start` to `end` (both UTC days included)."""

    tenant_id: str
    start: date
    end: date
    total: UsageTotals
    by_type: Mapping[str, UsageTotals]
    by_model: Mapping[str, UsageTotals]  # events without a model are only in the other groups
    by_day: Mapping[date, UsageTotals]

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-ready values: ISO dates, dicts of {amount_usd, tokens, events}."""

        def plain(totals: UsageTotals) -> dict[str, float | int]:
            return {
                "amount_usd": totals.amount_usd,
                "tokens": totals.tokens,
                "events": totals.events,
            }

        return {
            "tenant_id": self.tenant_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "total": plain(self.total),
            "by_type": {k: plain(v) for k, v in self.by_type.items()},
            "by_model": {k: plain(v) for k, v in self.by_model.items()},
            "by_day": {k.isoformat(): plain(v) for k, v in self.by_day.items()},
        }


@dataclass(frozen=True, slots=True)
class MonthUsage:
    """A tenant's tokens (all cost types) and money in the current UTC calendar month."""

    tokens: int
    cost_usd: float
    month_start: date
    resets_at: datetime


@runtime_checkable
class CostLedger(Protocol):
    """Where cost events are kept and summed; every read names its tenant."""

    def record(self, events: Sequence[CostEvent]) -> None:
        """Store all `events` in one transaction, or none of them."""
        ...

    def totals(self, tenant: str, *, start: date, end: date) -> UsageReport:
        """The tenant's totals by cost type, model and day, `start` to `end` inclusive."""
        ...

    def month_to_date(self, tenant: str, *, now: datetime | float) -> MonthUsage:
        """The tenant's tokens and cost in the UTC month holding `now`."""
        ...

    def storage_accrual(
        self, tenant: str, stored_bytes: int, *, now: datetime | float
    ) -> CostEvent | None:
        """Record the storage cost accrued since the tenant's last accrual.

        Returns the event of the current month, or None when nothing is due.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def to_epoch(now: datetime | float) -> float:
    """Unix seconds of `now`; a naive datetime is refused (its zone would be a guess)."""
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.timestamp()
    return float(now)


def day_of(at: float) -> date:
    """The UTC day holding Unix time `at`."""
    return datetime.fromtimestamp(at, UTC).date()


def day_start(day: date) -> float:
    """Unix time of the UTC midnight starting `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def month_of(at: float) -> tuple[date, datetime]:
    """The first day of the UTC month holding `at`, and the instant the next month starts."""
    first = day_of(at).replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, datetime(following.year, following.month, 1, tzinfo=UTC)


def day_window(start: date, end: date) -> tuple[float, float]:
    """Unix times [from, to) covering the UTC days `start`..`end`; ValueError if reversed."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return day_start(start), day_start(end + timedelta(days=1))


ReportRow = tuple[str, str | None, date, float, int, int]  # type, model, day, usd, tokens, n


def build_report(tenant: str, start: date, end: date, rows: Iterable[ReportRow]) -> UsageReport:
    """A report from rows grouped by (cost_type, model, day)."""
    by_type: dict[str, UsageTotals] = {}
    by_model: dict[str, UsageTotals] = {}
    by_day: dict[date, UsageTotals] = {}
    total = UsageTotals()
    for cost_type, model, day, amount, tokens, events in rows:
        part = UsageTotals(float(amount), int(tokens), int(events))
        total += part
        by_type[cost_type] = by_type.get(cost_type, UsageTotals()) + part
        by_day[day] = by_day.get(day, UsageTotals()) + part
        if model is not None:
            by_model[model] = by_model.get(model, UsageTotals()) + part
    return UsageReport(tenant, start, end, total, by_type, by_model, dict(sorted(by_day.items())))


@dataclass(frozen=True, slots=True)
class StoragePricing:
    """How storage is charged: $ per GB-month, and how often a steady size is accrued."""

    usd_per_gb_month: float = 0.10
    granularity_s: float = 3600.0

    def accrue(
        self, tenant: str, last: tuple[float, int] | None, stored_bytes: int, now: float
    ) -> tuple[list[CostEvent], bool]:
        """Events owed since `last` (accrued_until, bytes then) and whether to move the mark.

        The span since the last accrual is charged at the size reported then: callers report
        after every change, so the size held during the span is the one reported at its start.
        The span is split at UTC month boundaries so each month carries its own share, with a
        GB-month measured in the month's own length. Nothing is owed for a `now` at or before
        the mark, which makes repeated and concurrent calls idempotent.
        """
        if stored_bytes < 0:
            raise ValueError("stored_bytes must be >= 0")
        if last is None:
            return [], True  # the first report starts the clock
        until, held = last
        if now <= until or (now - until < self.granularity_s and stored_bytes == held):
            return [], False
        events: list[CostEvent] = []
        start = until
        while start < now:
            month_first, next_month = month_of(start)
            end = min(now, next_month.timestamp())
            month_s = next_month.timestamp() - day_start(month_first)
            gb_months = held / GIB * (end - start) / month_s
            if held:
                # A span that ends at midnight of the 1st is dated just before it, in its month.
                at = end - 0.001 if end == next_month.timestamp() else end
                events.append(self._event(tenant, held, start, end, gb_months, at))
            start = end
        return events, True

    def _event(
        self, tenant: str, held: int, start: float, end: float, gb_months: float, at: float
    ) -> CostEvent:
        """One storage event covering [start, end), dated `at`."""
        return CostEvent(
            tenant_id=tenant,
            cost_type=CostType.STORAGE,
            amount_usd=gb_months * self.usd_per_gb_month,
            details={
                "stored_bytes": held,
                "gb_months": gb_months,
                "seconds": end - start,
                "usd_per_gb_month": self.usd_per_gb_month,
                "from": datetime.fromtimestamp(start, UTC).isoformat(),
                "to": datetime.fromtimestamp(end, UTC).isoformat(),
            },
            at=at,
        )
