"""The backends one process uses, built from settings; opened in the app's lifespan."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from opentelemetry import trace
from starlette.requests import Request
from starlette.types import Scope

from tenantrag.auth import resolve_secret
from tenantrag.backends.cache import Cache
from tenantrag.backends.ledger import StoragePricing, open_ledger
from tenantrag.backends.ratelimit import TenantRateLimiter
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.metering import CostRecorder
from tenantrag.models import Chunk, Tenant
from tenantrag.observability import metrics
from tenantrag.observability.audit import AuditLog
from tenantrag.pipeline.context import QueryContext
from tenantrag.pipeline.service import QueryService
from tenantrag.rag import Rag, build_rag
from tenantrag.settings import Settings

log = structlog.get_logger("tenantrag.services")


@dataclass
class Services:
    """Everything a request handler may call, in one place."""

    settings: Settings
    store: SQLiteStore
    limiter: TenantRateLimiter
    audit: AuditLog
    cache: Cache
    secret: str
    tracer: trace.Tracer
    costs: CostRecorder | None = None
    rag: Rag | None = None
    query: QueryService | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, *, tracer: trace.Tracer | None = None) -> Services:
        """Construct (cheaply) every backend the settings ask for."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            store=SQLiteStore(settings.db_path),
            limiter=TenantRateLimiter(settings.redis_url),
            audit=AuditLog(settings.audit_path, fsync_interval_s=settings.audit_fsync_interval_s),
            cache=_cache(settings),
            secret=resolve_secret(settings, create=False),
            tracer=tracer or _tracer(settings),
        )

    @property
    def r(self) -> Rag:
        """The retrieval side; present once start() has run."""
        if self.rag is None:
            raise RuntimeError("Services.start() has not run")
        return self.rag

    @property
    def c(self) -> CostRecorder:
        """The cost recorder; present once start() has run."""
        if self.costs is None:
            raise RuntimeError("Services.start() has not run")
        return self.costs

    def accrue_storage(self, tenant_id: str) -> None:
        """Charge the tenant's stored bytes since the last accrual (idempotent per period)."""
        stored = self.store.usage(tenant_id).bytes
        event = self.c.ledger.storage_accrual(tenant_id, stored, now=time.time())
        if event is not None:
            self.c.announce([event])

    @property
    def q(self) -> QueryService:
        """The query pipeline; present once start() has run."""
        if self.query is None:
            raise RuntimeError("Services.start() has not run")
        return self.query

    async def start(self) -> None:
        """Open the store, load the embedding model and indexes, wire the pipeline."""
        from tenantrag.answering import build_query_service

        self.store.open()
        if self.costs is None:
            pricing = StoragePricing(usd_per_gb_month=self.settings.cost.storage_per_gb_month)
            ledger = await asyncio.to_thread(open_ledger, self.settings.ledger_dsn, pricing=pricing)
            self.costs = CostRecorder(ledger)
        if self.rag is None:
            self.rag = await asyncio.to_thread(
                lambda: build_rag(
                    self.settings, self.store, self.extras.get("embedder"),
                    self.audit_stray_chunk, shared_cache=_shared_embedding_cache(self.settings),
                )
            )  # fmt: skip
        if self.query is None:
            self.query = build_query_service(
                self.settings, self.store, self.rag, self.cache, self.audit_query,
                self.audit_leakage, self.costs,
            )  # fmt: skip

    async def stop(self) -> None:
        """Flush the cost ledger and the audit log, then close what start() opened.

        Records come first: a connection that fails to close (a hung Redis) is logged and
        must not cost an audit record or a cost event.
        """
        if self.costs is not None:
            await asyncio.to_thread(self.costs.flush)
        self.audit.sync()
        closers = [self.cache.close, self.limiter.close]
        if self.rag is not None and self.rag.shared_cache is not None:
            closers.append(self.rag.shared_cache.close)
        for close in closers:
            try:
                await close()
            except Exception as exc:  # shutting down: note it and go on closing the rest
                log.warning("close_failed", what=getattr(close, "__qualname__", "?"),
                            error=type(exc).__name__)  # fmt: skip
        self.store.close()

    def lookup_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None when unknown."""
        return self.store.get_tenant(tenant_id)

    async def check_dependencies(self) -> dict[str, bool]:
        """Whether each dependency answers: the data folder, the store, Redis when configured."""
        checks = {"data_dir": os.access(self.settings.data_dir, os.W_OK)}
        try:
            await asyncio.to_thread(self.store.ping)
            checks["store"] = True
        except Exception:
            checks["store"] = False
        if self.settings.redis_url:
            checks["redis"] = await self.limiter.ping()
            metrics.DEPENDENCY_UP.labels(dependency="redis").set(int(checks["redis"]))
        return checks

    def audit_scope(
        self,
        scope: Scope,
        action: str,
        outcome: str,
        tenant_id: str | None,
        user_id: str | None,
        *,
        resource_ids: Sequence[str] = (),
        detail: Mapping[str, str | int | float | bool] | None = None,
    ) -> None:
        """Append one audit record for the request in `scope`."""
        state = scope.get("state", {})
        try:
            self.audit.record(
                action=action, outcome=outcome, tenant_id=tenant_id, user_id=user_id,
                request_id=state.get("request_id"), trace_id=state.get("trace_id"),
                resource_ids=resource_ids, detail=detail,
            )  # fmt: skip
        except OSError as exc:  # the audit disk failing must be loud, not silent
            log.error("audit_write_failed", error=str(exc), action=action)
            raise

    def audit_event(
        self,
        request: Request,
        action: str,
        outcome: str,
        *,
        resource_ids: Sequence[str] = (),
        detail: Mapping[str, str | int | float | bool] | None = None,
    ) -> None:
        """Append one audit record for an authenticated request."""
        principal = getattr(request.state, "principal", None)
        self.audit_scope(
            request.scope, action, outcome,
            getattr(principal, "tenant_id", None), getattr(principal, "user_id", None),
            resource_ids=resource_ids, detail=detail,
        )  # fmt: skip

    def audit_query(self, ctx: QueryContext) -> None:
        """The audit record of an answered query: the chunk ids it used, never its text."""
        self.audit.record(
            action="query", outcome="success", tenant_id=ctx.tenant.id,
            user_id=ctx.principal.user_id, request_id=ctx.request_id, trace_id=ctx.trace_id,
            resource_ids=[h.chunk.chunk_id for h in ctx.hits],
            detail={"cached": ctx.cached, "degraded": ctx.degraded, "flags": ",".join(ctx.flags)},
        )  # fmt: skip

    def audit_stray_chunk(self, tenant_id: str, chunk: Chunk) -> None:
        """The audit record of a foreign chunk an index returned, caught at retrieval."""
        bound = structlog.contextvars.get_contextvars()
        self.audit.record(
            action="leakage", outcome="denied", tenant_id=tenant_id,
            user_id=bound.get("user_id"), request_id=bound.get("request_id"),
            trace_id=bound.get("trace_id"), resource_ids=[chunk.chunk_id],
            detail={"owner_tenant": chunk.tenant_id, "stage": "retrieve"},
        )  # fmt: skip

    def audit_leakage(self, ctx: QueryContext, chunk: object) -> None:
        """The audit record of a foreign chunk caught before use."""
        owner = chunk.tenant_id if isinstance(chunk, Chunk) else "unknown"
        self.audit.record(
            action="leakage", outcome="denied", tenant_id=ctx.tenant.id,
            user_id=ctx.principal.user_id, request_id=ctx.request_id, trace_id=ctx.trace_id,
            resource_ids=[getattr(chunk, "chunk_id", "?")], detail={"owner_tenant": owner},
        )  # fmt: skip


def _shared_embedding_cache(settings: Settings) -> Cache | None:
    """Redis for query embeddings in distributed mode; None in embedded mode (LRU only)."""
    if not settings.redis_url:
        return None
    from tenantrag.backends.cache.redis import RedisCache

    return RedisCache(
        settings.redis_url,
        name="embeddings",
        on_result=lambda cache, result: metrics.CACHE.labels(cache=cache, result=result).inc(),
    )


def _cache(settings: Settings) -> Cache:
    def count(cache: str, result: str) -> None:
        metrics.CACHE.labels(cache=cache, result=result).inc()

    if settings.redis_url:
        from tenantrag.backends.cache.redis import RedisCache

        return RedisCache(
            settings.redis_url, name="answers", on_result=count,
            on_state_change=lambda dep, state: metrics.set_breaker_state(dep, "", state),
        )  # fmt: skip
    from tenantrag.backends.cache.memory import MemoryCache

    return MemoryCache(name="answers", on_result=count)


def _tracer(settings: Settings) -> trace.Tracer:
    from tenantrag.observability.tracing import setup_tracing

    provider = setup_tracing(
        settings.tracing.service_name,
        otlp_endpoint=settings.tracing.otlp_endpoint,
        sample_ratio=settings.tracing.sample_ratio,
        record_content=settings.tracing.record_content,
    )
    return provider.get_tracer("tenantrag")
