"""Billing, cost events and quotas: every request's bill is priced, logged, counted and stored.

The bills are pure functions of what a request used and the price settings (`query_bill`,
`search_bill`, `write_bill`); `CostRecorder` logs, counts and stores their items.

Writes to the ledger are batched on a background thread (one transaction every `flush_s`),
so the request path never waits for an fsync; `pending` events of this process are added to
the ledger's month-to-date figures, so quota checks see them before they are flushed.

Quota checks run on every request, so the ledger's month-to-date sum (a scan of the month's
events) is read at most once per `snapshot_s` per tenant; events this process wrote since
then are added from memory. Other processes' events therefore show up within `snapshot_s`
plus their flush interval, and a batch written during a refresh may be counted twice until
the next one: quotas err towards refusing, never towards letting spending through.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from tenantrag.backends.ledger import CostEvent, CostLedger, CostType, MonthUsage
from tenantrag.backends.llm import Completion
from tenantrag.errors import QuotaExceeded
from tenantrag.models import CostItem, Tenant
from tenantrag.observability import metrics
from tenantrag.settings import CostSettings

log = structlog.get_logger("tenantrag.cost")
WARN_RATIO = 0.8


def price_per_1k(table: dict[str, float], model: str) -> float:
    """The model's price per 1,000 tokens, or the table's default."""
    return table.get(model, table.get("default", 0.03))


def compute_item(pricing: CostSettings, seconds: float) -> CostItem:
    """Wall seconds spent on the request."""
    seconds = max(0.0, seconds)
    return CostItem("compute", seconds * pricing.compute_per_second, {"seconds": round(seconds, 4)})


def query_bill(
    pricing: CostSettings,
    *,
    mode: str,
    embedding_tokens: int,
    completion: Completion | None,
    seconds: float,
    cached: bool,
) -> list[CostItem]:
    """An /api/query request's bill; a cached answer costs compute only."""
    if cached:
        return [compute_item(pricing, seconds)]
    items = [CostItem("retrieval", pricing.retrieval_per_query, {"mode": mode})]
    if embedding_tokens:
        rate = pricing.embedding_per_1k_tokens
        items.append(
            CostItem("embedding", embedding_tokens / 1000 * rate, {"tokens": embedding_tokens})
        )
    if completion is not None:
        rate = price_per_1k(pricing.llm_per_1k_tokens, completion.model)
        details: dict[str, str | int | float] = {
            "tokens": completion.total_tokens,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "model": completion.model,
        }
        items.append(CostItem("llm_inference", completion.total_tokens / 1000 * rate, details))
    items.append(compute_item(pricing, seconds))
    return items


def search_bill(pricing: CostSettings, *, mode: str, seconds: float) -> list[CostItem]:
    """An /api/search request's bill: one retrieval and the compute time."""
    retrieval = CostItem("retrieval", pricing.retrieval_per_query, {"mode": mode})
    return [retrieval, compute_item(pricing, seconds)]


def write_bill(pricing: CostSettings, *, seconds: float, tokens: int) -> list[CostItem]:
    """A document write's bill: the compute time and the embedding of `tokens` word pieces."""
    items = [compute_item(pricing, seconds)]
    if tokens:
        rate = pricing.embedding_per_1k_tokens
        items.append(CostItem("embedding", tokens / 1000 * rate, {"tokens": tokens}))
    return items


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """A tenant's monthly consumption against its budgets."""

    tokens: int
    token_budget: int
    cost_usd: float
    cost_budget_usd: float
    resets_at: str


class CostRecorder:
    """Logs, counts and (in the background) stores cost events."""

    def __init__(
        self, ledger: CostLedger, *, flush_s: float = 0.1, snapshot_s: float = 1.0
    ) -> None:
        self.ledger = ledger
        self.flush_s = flush_s
        self.snapshot_s = snapshot_s
        # tenant -> (monotonic expiry, the ledger's month to date when read)
        self._stored: dict[str, tuple[float, MonthUsage]] = {}
        # tenant -> (tokens, cost) this process wrote to the ledger since that read
        self._flushed: dict[str, tuple[int, float]] = defaultdict(lambda: (0, 0.0))
        self._queue: queue.Queue[CostEvent | None] = queue.Queue()
        self._pending: dict[str, tuple[int, float]] = defaultdict(lambda: (0, 0.0))
        self._lock = threading.Lock()
        self._warned: set[tuple[str, str, str]] = set()
        self._thread = threading.Thread(target=self._run, name="cost-ledger", daemon=True)
        self._thread.start()

    def events(
        self,
        tenant_id: str,
        items: Sequence[CostItem],
        *,
        request_id: str | None,
        model: str | None,
    ) -> list[CostEvent]:
        """The bill's items as cost events (not yet stored, logged or counted)."""
        now = time.time()
        return [
            CostEvent(
                tenant_id=tenant_id,
                cost_type=CostType(item.cost_type),
                amount_usd=item.amount_usd,
                details=item.details,
                model=model if item.cost_type == "llm_inference" else None,
                tokens=_tokens(item),
                at=now,
                request_id=request_id,
            )
            for item in items
        ]

    def record(
        self,
        tenant_id: str,
        items: Sequence[CostItem],
        *,
        request_id: str | None,
        model: str | None,
    ) -> None:
        """Emit one cost_event per item: structlog, Prometheus, and the ledger queue."""
        for event in self.events(tenant_id, items, request_id=request_id, model=model):
            self.announce([event])
            with self._lock:
                t, c = self._pending[tenant_id]
                self._pending[tenant_id] = (t + event.tokens, c + event.amount_usd)
            self._queue.put(event)

    def accrue_storage(self, tenant_id: str, stored_bytes: int) -> None:
        """Charge the tenant's stored bytes since the last accrual (idempotent per period)."""
        event = self.ledger.storage_accrual(tenant_id, stored_bytes, now=time.time())
        if event is not None:
            self.announce([event])

    def announce(self, events: Sequence[CostEvent]) -> None:
        """Log and count events: queued ones, and those a change committed with it."""
        for event in events:
            log.info(
                "cost_event",
                tenant_id=event.tenant_id,
                cost_type=str(event.cost_type),
                amount=round(event.amount_usd, 8),
                details=dict(event.details),
            )
            metrics.COST.labels(tenant=event.tenant_id, cost_type=str(event.cost_type)).inc(
                event.amount_usd
            )
            if event.tokens and event.model:
                metrics.TOKENS.labels(tenant=event.tenant_id, model=event.model, kind="total").inc(
                    event.tokens
                )

    def month_to_date(self, tenant_id: str) -> MonthUsage:
        """The ledger's month to date plus this process's not-yet-flushed events."""
        now = time.time()
        with self._lock:
            cached = self._stored.get(tenant_id)
            if cached is None or cached[0] <= time.monotonic() or now >= _ends(cached[1]):
                # Under the lock, so no batch moves from pending to flushed mid-read.
                cached = (
                    time.monotonic() + self.snapshot_s,
                    self.ledger.month_to_date(tenant_id, now=now),
                )
                self._stored[tenant_id] = cached
                self._flushed.pop(tenant_id, None)
            stored = cached[1]
            tokens, cost = self._pending.get(tenant_id, (0, 0.0))
            written_tokens, written_cost = self._flushed.get(tenant_id, (0, 0.0))
        return MonthUsage(
            stored.tokens + written_tokens + tokens,
            stored.cost_usd + written_cost + cost,
            stored.month_start,
            stored.resets_at,
        )

    def check_quota(self, tenant: Tenant) -> QuotaStatus:
        """Raise QuotaExceeded when a monthly budget is used up; warn once at 80%."""
        usage = self.month_to_date(tenant.id)
        status = QuotaStatus(
            usage.tokens,
            tenant.monthly_token_budget,
            usage.cost_usd,
            tenant.monthly_cost_budget_usd,
            usage.resets_at.isoformat(),
        )
        ratios = {
            "tokens": usage.tokens / max(1, tenant.monthly_token_budget),
            "cost": usage.cost_usd / max(1e-9, tenant.monthly_cost_budget_usd),
        }
        for quota, ratio in ratios.items():
            metrics.QUOTA_RATIO.labels(tenant=tenant.id, quota=quota).set(ratio)
            month = usage.month_start.isoformat()
            if ratio >= WARN_RATIO and (tenant.id, quota, month) not in self._warned:
                self._warned.add((tenant.id, quota, month))
                log.warning(
                    "quota_warning", tenant_id=tenant.id, quota=quota, ratio=round(ratio, 3)
                )
            if ratio >= 1.0:
                wait = max(1.0, usage.resets_at.timestamp() - time.time())
                raise QuotaExceeded(
                    f"The monthly {quota} budget is used up; it resets at "
                    f"{usage.resets_at.isoformat()}. Ask your administrator to raise it.",
                    retry_after=wait,
                )
        return status

    def flush(self) -> None:
        """Write every queued event now (shutdown, tests)."""
        self._queue.put(None)
        self._queue.join()

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            if items[0] is not None:
                time.sleep(self.flush_s)  # gather a batch: one transaction per interval
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write([i for i in items if i is not None])
            for _ in items:
                self._queue.task_done()

    def _write(self, batch: list[CostEvent]) -> None:
        if not batch:
            return
        try:
            self.ledger.record(batch)
        except Exception as exc:  # keep serving; the error is loud, and the unwritten events
            # stay in `pending`, so quota checks in this process still count them
            log.error("ledger_write_failed", error=type(exc).__name__, events=len(batch))
            return
        with self._lock:
            for e in batch:
                t, c = self._pending[e.tenant_id]
                self._pending[e.tenant_id] = (t - e.tokens, c - e.amount_usd)
                t, c = self._flushed[e.tenant_id]
                self._flushed[e.tenant_id] = (t + e.tokens, c + e.amount_usd)


def _tokens(item: CostItem) -> int:
    """The tokens an item counts against the monthly budget: the model's, not the embedder's."""
    return int(item.details.get("tokens", 0)) if item.cost_type == "llm_inference" else 0


def _ends(usage: MonthUsage) -> float:
    """When the month of `usage` ends, in epoch seconds."""
    return usage.resets_at.timestamp()
