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

The request path never waits on the database for this (issue 13): once a tenant has a
snapshot, `check_quota` answers from it, and an expired one is refreshed by the background
`cost-snapshots` thread; while the database is away the last snapshot keeps serving. Only a
tenant's first request on this process reads the ledger, and `acheck_quota` does that read
on a worker thread, never on the event loop.

A failed ledger write keeps its events (`_unwritten`, oldest first) and retries them with
exponential backoff (`flush_s` doubling up to `retry_max_s`), in chunks of `WRITE_CHUNK`
committed one by one. At most `max_unwritten` events wait: past that the oldest are dropped,
logged (`cost_events_dropped`) and counted (`tenantrag_cost_events_dropped`); their amounts
stay in this process's quota figures. A write that fails after PostgreSQL committed it (the
acknowledgement lost) is written again: the ledger then bills it twice, never zero times.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import defaultdict, deque
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
MAX_UNWRITTEN = 100_000  # events (~300 bytes each): ~30 MB held through a long outage
WRITE_CHUNK = 1_000  # events per ledger transaction when catching up


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
        self,
        ledger: CostLedger,
        *,
        flush_s: float = 0.1,
        snapshot_s: float = 1.0,
        max_unwritten: int = MAX_UNWRITTEN,
        retry_max_s: float = 30.0,
    ) -> None:
        self.ledger = ledger
        self.flush_s = flush_s
        self.snapshot_s = snapshot_s
        self.max_unwritten = max_unwritten
        self.retry_max_s = retry_max_s
        # events a failed write left, oldest first; only the writer thread touches it
        self._unwritten: deque[CostEvent] = deque()
        self._failures = 0
        self._retry_at = 0.0
        # snapshots to refresh in the background, and one read at a time (see _refresh)
        self._due: set[str] = set()
        self._wake = threading.Event()
        self._read_lock = threading.Lock()
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
        self._refresher = threading.Thread(
            target=self._refresh_loop, name="cost-snapshots", daemon=True
        )
        self._refresher.start()

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
        """The ledger's month to date plus this process's not-yet-flushed events.

        Reads the ledger when the snapshot is missing or expired: for /api/usage and the CLI,
        off the event loop. The request path uses `check_quota`, which does not wait.
        """
        if self._snapshot(tenant_id, fresh=True) is None:
            self._refresh(tenant_id)
        return self._usage(tenant_id)

    def _snapshot(self, tenant_id: str, *, fresh: bool) -> MonthUsage | None:
        """The stored month to date; None when missing, of a past month, or (`fresh`) expired."""
        with self._lock:
            cached = self._stored.get(tenant_id)
        if cached is None or time.time() >= _ends(cached[1]):
            return None
        if fresh and cached[0] <= time.monotonic():
            return None
        return cached[1]

    def _usage(self, tenant_id: str) -> MonthUsage:
        """The snapshot (which must exist) plus what this process wrote or holds since."""
        with self._lock:
            stored = self._stored[tenant_id][1]
            tokens, cost = self._pending.get(tenant_id, (0, 0.0))
            written_tokens, written_cost = self._flushed.get(tenant_id, (0, 0.0))
        return MonthUsage(
            stored.tokens + written_tokens + tokens,
            stored.cost_usd + written_cost + cost,
            stored.month_start,
            stored.resets_at,
        )

    def _refresh(self, tenant_id: str) -> None:
        """Read the tenant's month to date from the ledger (outside `_lock`) and keep it.

        Batches this process flushes during the read may be in the read too: they stay in
        `_flushed` and are counted twice until the next refresh (towards refusing). One read
        at a time, so two reads of one tenant never subtract the same baseline twice.
        """
        with self._read_lock:
            with self._lock:
                base_tokens, base_cost = self._flushed.get(tenant_id, (0, 0.0))
            usage = self.ledger.month_to_date(tenant_id, now=time.time())
            with self._lock:
                tokens, cost = self._flushed.get(tenant_id, (0, 0.0))
                self._flushed[tenant_id] = (tokens - base_tokens, cost - base_cost)
                self._stored[tenant_id] = (time.monotonic() + self.snapshot_s, usage)

    def _refresh_loop(self) -> None:
        """Refresh the snapshots requests found expired; on a failure keep serving the old."""
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                due, self._due = self._due, set()
            for tenant_id in due:
                try:
                    self._refresh(tenant_id)
                except Exception as exc:  # the database is away: the last snapshot serves on
                    log.warning(
                        "quota_snapshot_stale", tenant_id=tenant_id, error=type(exc).__name__
                    )
                    time.sleep(min(self.retry_max_s, max(self.snapshot_s, 0.1)))

    def _current(self, tenant_id: str) -> MonthUsage:
        """The tenant's usage without waiting on the ledger once a snapshot exists."""
        if self._snapshot(tenant_id, fresh=False) is None:
            self._refresh(tenant_id)  # the first request of this tenant on this process
        elif self._snapshot(tenant_id, fresh=True) is None:
            with self._lock:
                self._due.add(tenant_id)
            self._wake.set()
        return self._usage(tenant_id)

    def has_snapshot(self, tenant_id: str) -> bool:
        """True when `check_quota` can answer for the tenant without reading the ledger."""
        return self._snapshot(tenant_id, fresh=False) is not None

    async def acheck_quota(self, tenant: Tenant) -> QuotaStatus:
        """`check_quota` for the event loop: a first read of the ledger goes to a thread."""
        if not self.has_snapshot(tenant.id):
            await asyncio.to_thread(self._current, tenant.id)
        return self.check_quota(tenant)

    def check_quota(self, tenant: Tenant) -> QuotaStatus:
        """Raise QuotaExceeded when a monthly budget is used up; warn once at 80%.

        Answers from the tenant's snapshot (an expired one is refreshed in the background).
        """
        usage = self._current(tenant.id)
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
        """Write every queued event now (shutdown, tests); failed ones stay for a retry."""
        self._queue.put(None)
        self._queue.join()
        if self._unwritten:
            log.error("ledger_events_unwritten", events=len(self._unwritten))

    @property
    def unwritten(self) -> int:
        """How many events a failed write left waiting for the next attempt."""
        return len(self._unwritten)

    def _run(self) -> None:
        while True:
            try:
                # with events waiting for a retry, wake up when it is due even if none arrive
                wait = max(0.0, self._retry_at - time.monotonic()) if self._unwritten else None
                items: list[CostEvent | None] = [self._queue.get(timeout=wait)]
            except queue.Empty:
                items = []
            if items and items[0] is not None:
                time.sleep(self.flush_s)  # gather a batch: one transaction per interval
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            forced = any(i is None for i in items)  # flush(): try now, whatever the backoff
            self._write([i for i in items if i is not None], forced=forced)
            for _ in items:
                self._queue.task_done()

    def _write(self, batch: list[CostEvent], *, forced: bool = False) -> None:
        self._unwritten.extend(batch)
        self._bound()
        if not self._unwritten or (
            not forced and self._failures and time.monotonic() < self._retry_at
        ):
            return  # backing off: the new events wait with the others
        while self._unwritten:
            chunk = [self._unwritten[i] for i in range(min(WRITE_CHUNK, len(self._unwritten)))]
            try:
                self.ledger.record(chunk)
            except Exception as exc:  # keep serving; the events wait in memory for a retry
                self._failures += 1
                delay = min(self.retry_max_s, self.flush_s * 2**self._failures)
                self._retry_at = time.monotonic() + delay
                metrics.COST_EVENTS_UNWRITTEN.set(len(self._unwritten))
                log.error(
                    "ledger_write_failed",
                    error=type(exc).__name__,
                    events=len(self._unwritten),
                    retry_in_s=round(delay, 2),
                )
                return
            for _ in chunk:
                self._unwritten.popleft()
            self._written(chunk)
        if self._failures:
            log.info("ledger_write_recovered", failures=self._failures)
        self._failures = 0
        metrics.COST_EVENTS_UNWRITTEN.set(0)

    def _bound(self) -> None:
        """Drop the oldest unwritten events past `max_unwritten` (logged and counted)."""
        dropped: dict[str, int] = defaultdict(int)
        while len(self._unwritten) > self.max_unwritten:
            dropped[self._unwritten.popleft().tenant_id] += 1
        for tenant_id, count in dropped.items():
            # Their amounts stay in `_pending`: this process still counts them against quotas.
            metrics.COST_EVENTS_DROPPED.labels(tenant=tenant_id).inc(count)
            log.error("cost_events_dropped", tenant_id=tenant_id, events=count)

    def _written(self, batch: list[CostEvent]) -> None:
        """Move a stored batch from this process's pending figures to its flushed ones."""
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
