"""The security log: requests refused before a verified credential, apart from every tenant's chain.

A refused request names a tenant only in its own X-Tenant-ID header, which anyone may send, so
its failure is no tenant's record: writing it into the named tenant's chain would let anyone
fill that tenant's audit log, and show one tenant's header to another. It is kept here instead,
with the client's address, and counted rather than written one by one: at most one row per
address per window (TENANTRAG_AUDIT__SECURITY_INTERVAL_S) holding how many failures it sent,
by error code, and at most `max_clients` rows a window (the rest fold into one `*` row). A
flood costs a dictionary increment per request and a bounded number of rows, so it cannot fill
the disk; rows older than the retention are deleted. IPv6 addresses count by their /64, the
block one subscriber usually holds.

Counts live in memory until their window closes (a crash loses at most one window of counts);
`tick` writes closed windows, `flush` (at shutdown) the open one too. See docs/audit.md.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import structlog

from tenantrag.backends.store.extras import SecurityEntry
from tenantrag.models import is_valid_tenant_id
from tenantrag.observability import metrics

AUTH_FAILURE: Final = "auth_failure"
OVERFLOW: Final = "*"  # the row of every address past `max_clients` in one window
MAX_CLAIMED: Final = 5  # tenant ids kept per row, as the requests claimed them
PRUNE_EVERY_S: Final = 3600.0
MAX_PENDING_WINDOWS: Final = 60  # windows of rows kept while the store cannot take them
log = structlog.get_logger("tenantrag.security_log")


class SecuritySink(Protocol):
    """Where rows go: the store of record."""

    def append_security(self, entries: Sequence[SecurityEntry]) -> None:
        """Append rows."""
        ...

    def prune_security(self, *, before: float) -> int:
        """Delete rows whose window ended before `before`."""
        ...


@dataclass
class _Bucket:
    count: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    claimed: set[str] = field(default_factory=set)
    clients: set[str] = field(default_factory=set)  # only the overflow row's


def client_key(host: str | None) -> str:
    """The address a failure is counted under: the IPv4 address, an IPv6 address's /64."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]  # a unix socket's path, a test client's name
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is an IPv4 client
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class SecurityLog:
    """Counts refused requests per client address and window; writes one row per address."""

    def __init__(
        self,
        sink: SecuritySink,
        *,
        interval_s: float,
        max_clients: int,
        retention_days: int,
        node: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sink = sink
        self.interval_s = interval_s
        self.max_clients = max_clients
        self.retention_s = retention_days * 86400.0
        self.node = node
        self.clock = clock
        self._lock = threading.Lock()
        self._window = self._window_of(clock())
        self._buckets: dict[str, _Bucket] = {}
        self._closed: list[SecurityEntry] = []
        self._pruned_at = 0.0

    def _window_of(self, now: float) -> float:
        return now - now % self.interval_s

    def failure(self, host: str | None, code: str, claimed_tenant: str | None) -> None:
        """Count one refused request from `host` (no I/O: safe on every request of a flood)."""
        metrics.AUTH_FAILURES.labels(code=code).inc()
        key = client_key(host)
        with self._lock:
            self._roll(self.clock())
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_clients:
                    key = OVERFLOW
                bucket = self._buckets.setdefault(key, _Bucket())
            bucket.count += 1
            bucket.codes[code] += 1
            if key == OVERFLOW and len(bucket.clients) < 100_000:
                bucket.clients.add(client_key(host))
            claimed = claimed_tenant and is_valid_tenant_id(claimed_tenant)
            if claimed and len(bucket.claimed) < MAX_CLAIMED:
                bucket.claimed.add(str(claimed_tenant))

    def _roll(self, now: float) -> None:
        """Close the window if `now` is past it (the caller holds the lock)."""
        window = self._window_of(now)
        if window != self._window:
            self._closed += self._entries(self._window, self._window + self.interval_s)
            self._window, self._buckets = window, {}

    def _entries(self, start: float, end: float) -> list[SecurityEntry]:
        entries = []
        for key, b in sorted(self._buckets.items()):
            detail: dict[str, object] = {
                "codes": dict(sorted(b.codes.items())),
                "claimed_tenants": sorted(b.claimed),
                "node": self.node,
            }
            if key == OVERFLOW:
                detail["clients"] = len(b.clients)
            entries.append(SecurityEntry(start, end, key, AUTH_FAILURE, b.count, detail))
        return entries

    def tick(self) -> None:
        """Write the windows that have closed; now and then delete rows past the retention."""
        now = self.clock()
        with self._lock:
            self._roll(now)
            pending, self._closed = self._closed, []
        self._write(pending)
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            gone = self.sink.prune_security(before=now - self.retention_s)
            if gone:
                log.info("security_log_pruned", rows=gone)

    def flush(self) -> None:
        """Write everything counted, the open window included (at shutdown)."""
        now = self.clock()
        with self._lock:
            pending = self._closed + self._entries(self._window, now)
            self._closed, self._buckets, self._window = [], {}, self._window_of(now)
        self._write(pending)

    def _write(self, entries: list[SecurityEntry]) -> None:
        if not entries:
            return
        try:
            self.sink.append_security(entries)
        except Exception:
            with self._lock:  # kept for the next tick (bounded): a blip loses no counts
                self._closed = (entries + self._closed)[: self.max_clients * MAX_PENDING_WINDOWS]
            raise
