"""The `tenantrag` command: serve, tenant, token, prepare-model, ingest, eval, audit."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from tenantrag.models import Classification, Permission, Tenant, TenantStatus, is_valid_tenant_id
from tenantrag.settings import Settings, get_settings


def _settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic's message names the bad variable
        raise click.ClickException(f"configuration error: {exc}") from None


def _store(settings: Settings):  # type: ignore[no-untyped-def]  # returns SQLiteStore, lazily imported
    from tenantrag.backends.store.sqlite import SQLiteStore

    store = SQLiteStore(settings.db_path)
    store.open()
    return store


@click.group()
def main() -> None:
    """tenantrag: multi-tenant answers from your own documents, with citations."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--demo", is_flag=True, help="Create and load the demo tenants first.")
def serve(host: str, port: int, workers: int, demo: bool) -> None:
    """Start the HTTP service (uvicorn)."""
    import uvicorn

    from tenantrag.auth import resolve_secret

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    created = settings.jwt_secret is None and not settings.secret_file.exists()
    try:
        resolve_secret(settings, create=True)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if created:
        click.echo(f"Created a signing secret in {settings.secret_file} (mode 0600).", err=True)
    _prepare_model(settings)
    if demo:
        from tenantrag.demo import load_demo

        load_demo(settings, host=host, port=port)
    if workers > 1:
        _multiprocess_metrics_dir(settings)
    uvicorn.run(
        "tenantrag.app:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        timeout_graceful_shutdown=30,
        log_config=None,
    )


def _multiprocess_metrics_dir(settings: Settings) -> None:
    path = Path(tempfile.gettempdir()) / f"tenantrag-metrics-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def _prepare_model(settings: Settings) -> Path:
    if settings.embedding.provider != "onnx":
        return settings.onnx_dir
    from tenantrag.backends.embedding.onnx import prepare_model

    return prepare_model(settings.onnx_dir)


@main.command("prepare-model")
@click.option("--dir", "target", type=click.Path(path_type=Path), default=None)
def prepare_model_command(target: Path | None) -> None:
    """Export the embedding model to ONNX once (no download; weights ship in a package)."""
    from tenantrag.backends.embedding.onnx import prepare_model

    path = prepare_model(target or _settings().onnx_dir)
    click.echo(str(path))


@main.group()
def tenant() -> None:
    """Create, list and suspend tenants."""


@tenant.command("create")
@click.argument("tenant_id")
@click.option("--rate-limit", type=click.IntRange(1), default=None, help="Requests per minute.")
@click.option("--storage-quota", type=click.IntRange(1), default=None, help="Bytes of text.")
@click.option("--document-quota", type=click.IntRange(1), default=None)
@click.option("--monthly-token-budget", type=click.IntRange(1), default=None)
@click.option("--monthly-cost-budget", type=click.FloatRange(0.0), default=None, help="US dollars.")
def tenant_create(
    tenant_id: str,
    rate_limit: int | None,
    storage_quota: int | None,
    document_quota: int | None,
    monthly_token_budget: int | None,
    monthly_cost_budget: float | None,
) -> None:
    """Create TENANT_ID with its limits and quotas."""
    if not is_valid_tenant_id(tenant_id):
        raise click.BadParameter("must match ^[a-z0-9][a-z0-9-]{1,62}$", param_hint="TENANT_ID")
    settings = _settings()
    options: dict[str, object] = {
        "rate_limit": rate_limit or settings.rate_limit_per_minute,
        "bm25_weight": settings.retrieval.bm25_weight,
        "vector_weight": settings.retrieval.vector_weight,
        "fusion": settings.retrieval.fusion,
    }
    for name, value in (
        ("storage_quota_bytes", storage_quota),
        ("document_quota", document_quota),
        ("monthly_token_budget", monthly_token_budget),
        ("monthly_cost_budget_usd", monthly_cost_budget),
    ):
        if value is not None:
            options[name] = value
    try:
        created = _store(settings).create_tenant(Tenant(id=tenant_id, **options))  # type: ignore[arg-type]
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created tenant {created.id} (rate limit {created.rate_limit}/min)")


@tenant.command("list")
def tenant_list() -> None:
    """List tenants with their status and limits."""
    for t in _store(_settings()).list_tenants():
        click.echo(
            f"{t.id}\t{t.status.value}\trate={t.rate_limit}/min\tstorage={t.storage_quota_bytes}B"
            f"\tdocuments={t.document_quota}\ttokens/month={t.monthly_token_budget}"
        )


@tenant.command("suspend")
@click.argument("tenant_id")
def tenant_suspend(tenant_id: str) -> None:
    """Suspend TENANT_ID: every request of it is refused with 403."""
    _set_status(tenant_id, TenantStatus.SUSPENDED)


@tenant.command("activate")
@click.argument("tenant_id")
def tenant_activate(tenant_id: str) -> None:
    """Serve a suspended TENANT_ID again."""
    _set_status(tenant_id, TenantStatus.ACTIVE)


def _set_status(tenant_id: str, status: TenantStatus) -> None:
    from tenantrag.errors import NotFound

    try:
        _store(_settings()).set_tenant_status(tenant_id, status)
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{tenant_id} is {status.value}")


@main.command()
@click.option("--tenant", "tenant_id", required=True)
@click.option("--user", required=True)
@click.option("--permissions", default="query", show_default=True, help="Comma-separated.")
@click.option("--role", type=click.Choice(["viewer", "editor", "admin"]), default=None)
@click.option("--clearance", type=click.Choice([c.label for c in Classification]), default="internal")
@click.option("--ttl", type=click.IntRange(1, 86400), default=3600, show_default=True)
def token(
    tenant_id: str, user: str, permissions: str, role: str | None, clearance: str, ttl: int
) -> None:
    """Print a signed JWT for USER in TENANT."""
    from tenantrag.auth import issue_token, resolve_secret
    from tenantrag.models import ROLES

    settings = _settings()
    perms = {p.strip() for p in permissions.split(",") if p.strip()}
    if role:
        perms |= {p.value for p in ROLES[role]}
    valid = {p.value for p in Permission}
    if perms - valid:
        raise click.BadParameter(f"unknown: {sorted(perms - valid)}; use {sorted(valid)}")
    try:
        secret = resolve_secret(settings, create=True)
        click.echo(
            issue_token(
                secret, tenant_id=tenant_id, user_id=user, permissions=perms,
                clearance=Classification.parse(clearance), ttl_s=ttl,
            )  # fmt: skip
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def audit() -> None:
    """Check the audit log."""


@audit.command("verify")
@click.option("--path", type=click.Path(path_type=Path), default=None)
def audit_verify(path: Path | None) -> None:
    """Verify the audit log's hash chain; exit 1 at the first broken record."""
    from tenantrag.observability.audit import verify_command

    sys.exit(verify_command(path or _settings().audit_path))


if __name__ == "__main__":
    main()
