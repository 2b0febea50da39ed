"""The backends one process uses, built from settings; opened in the app's lifespan."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from opentelemetry import trace
from starlette.requests import Request
from starlette.types import Scope

from tenantrag.auth import resolve_secret
from tenantrag.backends.ratelimit import TenantRateLimiter
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import Tenant
from tenantrag.observability.audit import AuditLog
from tenantrag.settings import Settings

log = structlog.get_logger("tenantrag.services")


@dataclass
class Services:
    """Everything a request handler may call, in one place."""

    settings: Settings
    store: SQLiteStore
    limiter: TenantRateLimiter
    audit: AuditLog
    secret: str
    tracer: trace.Tracer
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, *, tracer: trace.Tracer | None = None) -> Services:
        """Construct (cheaply) every backend the settings ask for."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            store=SQLiteStore(settings.db_path),
            limiter=TenantRateLimiter(settings.redis_url),
            audit=AuditLog(settings.audit_path),
            secret=resolve_secret(settings, create=False),
            tracer=tracer or _tracer(settings),
        )

    async def start(self) -> None:
        """Open connections and files."""
        self.store.open()

    async def stop(self) -> None:
        """Close what start() opened."""
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


def _tracer(settings: Settings) -> trace.Tracer:
    from tenantrag.observability.tracing import setup_tracing

    provider = setup_tracing(
        settings.tracing.service_name,
        otlp_endpoint=settings.tracing.otlp_endpoint,
        sample_ratio=settings.tracing.sample_ratio,
    )
    return provider.get_tracer("tenantrag")
