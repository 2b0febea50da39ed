"""The `tenantrag` command: serve, db, tenant, token, prepare-model, ingest, eval, audit."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tenantrag.models import (
    AutoClassify,
    Classification,
    Permission,
    Tenant,
    TenantStatus,
    is_valid_tenant_id,
)
from tenantrag.settings import Settings, get_settings

if TYPE_CHECKING:
    from tenantrag.backends.store import ChangeRecords, Store
    from tenantrag.backends.store.jobs import Job
    from tenantrag.ingest.service import IngestResult
    from tenantrag.observability.anchor import AnchorVerifier


def _settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic's message names the bad variable
        raise click.ClickException(f"configuration error: {exc}") from None


def _store(settings: Settings) -> Store:
    """The opened store of record; a database behind this release is a clear error."""
    from tenantrag.backends.store import build_store
    from tenantrag.backends.store.schema import SchemaOutdated
    from tenantrag.errors import DependencyUnavailable
    from tenantrag.observability.audit import scrub_record

    store = build_store(settings, audit_scrub=scrub_record)
    try:
        store.open()
    except (SchemaOutdated, DependencyUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    return store


def _anchor(settings: Settings, store: Store) -> None:
    """After a change: sign the chain's new head, when an anchor key is configured."""
    private = settings.audit.anchor_key
    if private is None:
        return
    from tenantrag.observability.anchor import AnchorSigner
    from tenantrag.observability.housekeeping import Anchorer, node_name

    try:
        signer = AnchorSigner(private.get_secret_value())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    Anchorer(store, signer, settings.anchor_file, node_name(settings.data_dir)).sign()


def _cli_records(
    action: str,
    tenant_id: str | None,
    resource_ids: tuple[str, ...] = (),
    detail: Mapping[str, str | int | float | bool] | None = None,
) -> ChangeRecords:
    """A CLI change's audit record: the operator is the OS user who ran the command."""
    import getpass

    from tenantrag.backends.store import ChangeRecords
    from tenantrag.models import AuditEvent

    try:
        user = f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container's)
        user = f"cli:uid-{os.getuid()}"
    return ChangeRecords(
        AuditEvent(
            action, "success", tenant_id, user, resource_ids=resource_ids, detail=detail or {}
        )
    )


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
    if problem := settings.metrics_token_missing():
        raise click.ClickException(problem)
    if workers > 1 and not settings.redis_url:
        raise click.ClickException(
            "--workers above 1 needs TENANTRAG_REDIS_URL: rate limits and the answer cache must"
            " be shared by every worker (start Redis, or serve with one worker)."
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _store(settings).close()  # embedded: migrate once, before any worker; a database: check it
    if settings.audit.anchor_key is None:
        click.echo(
            "No TENANTRAG_AUDIT__ANCHOR_KEY: the audit chain's head will not be signed, so"
            " `tenantrag audit verify` cannot show records cut from its end (docs/audit.md).",
            err=True,
        )
    _anchor_verifier(settings)  # a malformed key stops here, not in every worker
    created = settings.jwt_secret is None and not settings.secret_file.exists()
    try:
        resolve_secret(settings, create=True)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if created:
        click.echo(f"Created a signing secret in {settings.secret_file} (mode 0600).", err=True)
    _prepare_model(settings)
    if demo:
        from tenantrag.demo import start_demo

        start_demo(settings, host=host, port=port)
    if workers > 1:
        _multiprocess_metrics_dir(settings)
    from tenantrag.middleware.connections import GuardedHttpProtocol

    uvicorn.run(
        "tenantrag.app:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # the header deadline and size, the connection cap (TENANTRAG_SERVER__*, security.md)
        http=GuardedHttpProtocol,
        timeout_keep_alive=settings.server.keep_alive_timeout_s,
        access_log=False,
        lifespan="on",  # ServedApp opens the services there; a failure must stop the server
        server_header=False,  # do not advertise the server software
        timeout_graceful_shutdown=30,
        timeout_worker_healthcheck=settings.worker_healthcheck_timeout_s,
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
    from tenantrag.backends.embedding.onnx import ModelNotExported, prepare_int8, prepare_model

    try:
        folder = prepare_model(settings.onnx_dir)
    except ModelNotExported as exc:
        raise click.ClickException(str(exc)) from exc
    if settings.embedding.query_precision == "int8":
        try:
            prepare_int8(folder)  # once, before the workers start
        except ModelNotExported as exc:
            # the default falls back to fp32 at start-up (logged); asked for, int8 is required
            if "query_precision" in settings.embedding.model_fields_set:
                raise click.ClickException(str(exc)) from exc
    return folder


@main.command("prepare-model")
@click.option("--dir", "target", type=click.Path(path_type=Path), default=None)
@click.option(
    "--int8",
    is_flag=True,
    help="Also write the int8 query model (questions are embedded in int8 by default).",
)
def prepare_model_command(target: Path | None, int8: bool) -> None:
    """Export the embedding model to ONNX once (no download; weights ship in a package)."""
    from tenantrag.backends.embedding.onnx import ModelNotExported, prepare_int8, prepare_model

    try:
        path = prepare_model(target or _settings().onnx_dir)
        if int8:
            prepare_int8(path)
    except ModelNotExported as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(path))


@main.group()
def db() -> None:
    """The store's schema (TENANTRAG_DATABASE_URL, or the data folder's SQLite file)."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations this release has and the store lacks."""
    from tenantrag.backends.store import schema

    settings = _settings()
    url = settings.store_url
    if not settings.postgres_store:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        before, after = schema.upgrade(url)
    except Exception as exc:  # the database's own message says what failed
        raise click.ClickException(f"upgrade failed: {type(exc).__name__}: {exc}") from None
    where = "the database" if settings.postgres_store else str(settings.db_path)
    if before == after:
        click.echo(f"{where} is at schema {after}, this release's newest; nothing to do")
    else:
        click.echo(f"upgraded {where} from schema {before or 'none'} to {after}")


@main.group()
def tenant() -> None:
    """Create, update, list, suspend, activate and delete (erase) tenants."""


def _tenant_options(command: Callable[..., None]) -> Callable[..., None]:
    """The limits, quotas and policies `tenant create` sets and `tenant update` changes."""
    options = [
        click.option(
            "--rate-limit", type=click.IntRange(1), default=None, help="Requests per minute."
        ),
        click.option(
            "--storage-quota",
            type=click.IntRange(1),
            default=None,
            help="Bytes stored: text, metadata (per chunk) and embeddings.",
        ),
        click.option("--document-quota", type=click.IntRange(1), default=None),
        click.option("--monthly-token-budget", type=click.IntRange(1), default=None),
        click.option(
            "--monthly-cost-budget", type=click.FloatRange(0.0), default=None, help="US dollars."
        ),
        click.option(
            "--auto-classify",
            type=click.Choice([p.value for p in AutoClassify]),
            default=None,
            help="Documents holding personal data: keep their label (off), raise them to"
            " confidential (raise, the default), or raise them and store the values redacted"
            " (raise-and-redact).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _given(**options: object) -> dict[str, object]:
    """The tenant fields named on the command line (None: not given), by their store names."""
    names = {
        "storage_quota": "storage_quota_bytes",
        "monthly_cost_budget": "monthly_cost_budget_usd",
    }
    return {names.get(k, k): v for k, v in options.items() if v is not None}


def _scalars(fields: dict[str, object]) -> dict[str, str | int | float | bool]:
    """The changed fields as an audit record's detail (limits and policy names: no free text)."""
    return {k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in fields.items()}


@tenant.command("create")
@click.argument("tenant_id")
@_tenant_options
def tenant_create(tenant_id: str, **options: object) -> None:
    """Create TENANT_ID with its limits, quotas and auto-classification policy."""
    if not is_valid_tenant_id(tenant_id):
        raise click.BadParameter("must match ^[a-z0-9][a-z0-9-]{1,62}$", param_hint="TENANT_ID")
    settings = _settings()
    fields: dict[str, object] = {
        "rate_limit": settings.rate_limit_per_minute,
        "bm25_weight": settings.retrieval.bm25_weight,
        "vector_weight": settings.retrieval.vector_weight,
        "fusion": settings.retrieval.fusion,
        **_given(**options),
    }
    if "auto_classify" in fields:
        fields["auto_classify"] = AutoClassify(str(fields["auto_classify"]))
    store = _store(settings)
    try:
        created = store.create_tenant(
            Tenant(id=tenant_id, **fields),  # type: ignore[arg-type]  # checked click options
            _cli_records("tenant_created", tenant_id),
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _anchor(settings, store)
    click.echo(
        f"created tenant {created.id} (rate limit {created.rate_limit}/min,"
        f" auto-classify {created.auto_classify.value})"
    )


@tenant.command("update")
@click.argument("tenant_id")
@_tenant_options
def tenant_update(tenant_id: str, **options: object) -> None:
    """Change TENANT_ID's limits, quotas or auto-classification policy (given options only).

    A new auto-classification policy applies to documents stored from now on; stored documents
    keep their labels until they are posted again.
    """
    from tenantrag.errors import NotFound

    fields = _given(**options)
    if not fields:
        raise click.UsageError("name at least one option to change")
    settings = _settings()
    store = _store(settings)
    try:
        records = _cli_records("tenant_updated", tenant_id, detail=_scalars(fields))
        store.update_tenant(tenant_id, records, **fields)
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    _anchor(settings, store)
    click.echo(f"updated tenant {tenant_id}: " + ", ".join(f"{k}={v}" for k, v in fields.items()))


@tenant.command("list")
def tenant_list() -> None:
    """List tenants with their status and limits."""
    for t in _store(_settings()).list_tenants():
        click.echo(
            f"{t.id}\t{t.status.value}\trate={t.rate_limit}/min\tstorage={t.storage_quota_bytes}B"
            f"\tdocuments={t.document_quota}\ttokens/month={t.monthly_token_budget}"
            f"\tauto-classify={t.auto_classify.value}"
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


@tenant.command("delete")
@click.argument("tenant_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def tenant_delete(tenant_id: str, yes: bool) -> None:
    """Erase TENANT_ID: documents, chunks, vectors, index files, cache entries and keys.

    Cost and audit records are kept, and the id is never given to another tenant. Every node
    deletes its copy and index files when it reads the erasure from the change log.
    """
    import asyncio

    from tenantrag.backends.erasure import remove_index_files, remove_redis_entries
    from tenantrag.errors import NotFound

    if not is_valid_tenant_id(tenant_id):
        raise click.BadParameter("must match ^[a-z0-9][a-z0-9-]{1,62}$", param_hint="TENANT_ID")
    if not yes:
        click.confirm(
            f"Erase every document and key of {tenant_id}? This cannot be undone", abort=True
        )
    settings = _settings()
    store = _store(settings)
    try:
        erasure = store.erase_tenant(tenant_id, _cli_records("tenant_erased", tenant_id))
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    removed = dict(erasure.removed)
    # Embedded mode: the server reads this same data folder, so its index files go here.
    # Distributed mode: each node deletes its own when it reads the erase entry.
    removed["index_files"] = remove_index_files(settings.data_dir / "indexes", tenant_id)
    if settings.redis_url:
        try:
            removed["cache_entries"] = asyncio.run(
                remove_redis_entries(settings.redis_url, tenant_id)
            )
        except Exception as exc:  # the rows are gone; the cache entries wait for a retry
            raise click.ClickException(
                f"{tenant_id} is erased from the store, but Redis could not be reached to remove"
                f" its cache entries ({type(exc).__name__}); run this command again."
            ) from None
    _anchor(settings, store)
    click.echo(
        f"erased tenant {tenant_id}: " + ", ".join(f"{k}={v}" for k, v in sorted(removed.items()))
    )


def _set_status(tenant_id: str, status: TenantStatus) -> None:
    from tenantrag.errors import NotFound

    settings = _settings()
    store = _store(settings)
    try:
        action = "tenant_suspended" if status is TenantStatus.SUSPENDED else "tenant_activated"
        store.set_tenant_status(tenant_id, status, _cli_records(action, tenant_id))
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    _anchor(settings, store)
    click.echo(f"{tenant_id} is {status.value}")


@main.group(invoke_without_command=True)
@click.option("--tenant", "tenant_id", default=None, help="The tenant (not with --platform-admin).")
@click.option("--user", default=None)
@click.option("--permissions", default="query", show_default=True, help="Comma-separated.")
@click.option("--role", type=click.Choice(["viewer", "editor", "admin"]), default=None)
@click.option(
    "--clearance", type=click.Choice([c.label for c in Classification]), default="internal"
)
@click.option("--ttl", type=click.IntRange(1, 86400), default=3600, show_default=True)
@click.option(
    "--platform-admin",
    is_flag=True,
    help="A platform operator's token: manages tenants on /api/admin, nothing else.",
)
@click.pass_context
def token(
    ctx: click.Context,
    tenant_id: str | None,
    user: str | None,
    permissions: str,
    role: str | None,
    clearance: str,
    ttl: int,
    platform_admin: bool,
) -> None:
    """Print a signed JWT for USER in TENANT (or a platform operator's, --platform-admin)."""
    if ctx.invoked_subcommand is not None:
        return
    from tenantrag.auth import issue_platform_token, issue_token, resolve_secret
    from tenantrag.models import ROLES

    if user is None:
        raise click.UsageError("Missing option '--user'.")
    if platform_admin == (tenant_id is not None):
        raise click.UsageError("Name either '--tenant' or '--platform-admin'.")
    settings = _settings()
    try:
        secret = resolve_secret(settings, create=True)
        if platform_admin:
            click.echo(issue_platform_token(secret, user_id=user, ttl_s=ttl))
            return
        perms = {p.strip() for p in permissions.split(",") if p.strip()}
        if role:
            perms |= {p.value for p in ROLES[role]}
        valid = {p.value for p in Permission}
        if perms - valid:
            raise click.BadParameter(f"unknown: {sorted(perms - valid)}; use {sorted(valid)}")
        assert tenant_id is not None
        click.echo(
            issue_token(
                secret,
                tenant_id=tenant_id,
                user_id=user,
                permissions=perms,
                clearance=Classification.parse(clearance),
                ttl_s=ttl,
            )
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@token.command("revoke")
@click.argument("jti")
def token_revoke(jti: str) -> None:
    """Refuse the token whose jti is JTI on every node (within a second), until it expires."""
    import time

    from tenantrag.auth import MAX_LIFETIME_S

    if not 0 < len(jti) <= 128:
        raise click.BadParameter("a jti is 1 to 128 characters", param_hint="JTI")
    settings = _settings()
    store = _store(settings)
    # A token lives at most 24 hours (plus the clock leeway): refused that long, then pruned.
    expires_at = time.time() + MAX_LIFETIME_S + 60
    store.revoke_token(jti, expires_at, _cli_records("token_revoked", None, (jti,)))
    _anchor(settings, store)
    click.echo(f"revoked token {jti}")


def _ingest_records(tenant_id: str, results: list[IngestResult]) -> ChangeRecords:
    return _cli_records("ingest", tenant_id, tuple(r.id for r in results))


def _tenant_or_fail(settings: Settings, tenant_id: str) -> tuple[Store, Tenant]:
    store = _store(settings)
    tenant = store.get_tenant(tenant_id)
    if tenant is None:
        raise click.ClickException(
            f"no tenant {tenant_id!r}; create it with `tenantrag tenant create`"
        )
    return store, tenant


@main.command()
@click.option("--tenant", "tenant_id", required=True)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--async",
    "run_async",
    is_flag=True,
    help="Queue one background job (run by `serve` or `tenantrag worker`), print its id and"
    " follow it with a progress bar.",
)
@click.option(
    "--no-follow", is_flag=True, help="With --async: print the job id and return at once."
)
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def ingest(tenant_id: str, batch_size: int, run_async: bool, no_follow: bool, path: Path) -> None:
    """Load PATH (a folder of files or a BEIR corpus.jsonl) into TENANT, with a progress bar."""
    from tqdm import tqdm

    from tenantrag.ingest.bulk import batches, count_documents, read_documents
    from tenantrag.services import build_corpus

    settings = _settings()
    store, tenant = _tenant_or_fail(settings, tenant_id)
    if run_async:
        _ingest_async(settings, store, tenant_id, path, follow=not no_follow)
        return
    corpus = build_corpus(settings, store, threads=os.cpu_count() or 1, follow=False)
    ingestor = corpus.ingestor
    skipped: list[str] = []
    chunks = 0
    with tqdm(total=count_documents(path), unit="doc", desc=f"ingest {tenant_id}") as bar:
        docs = read_documents(path, on_skip=lambda name, why: skipped.append(f"{name}: {why}"))
        for batch in batches(docs, batch_size):
            results = ingestor.ingest(tenant, batch, partial(_ingest_records, tenant_id))
            chunks += sum(r.chunks for r in results)
            bar.update(len(batch))
    _anchor(settings, store)
    for line in skipped:
        click.echo(f"skipped {line}", err=True)
    click.echo(f"ingested {bar.n} documents ({chunks} chunks) into {tenant_id}")


def _ingest_async(
    settings: Settings, store: Store, tenant_id: str, path: Path, *, follow: bool
) -> None:
    """Queue PATH's documents as one job, say its id, then follow it unless told not to."""
    import uuid

    from tenantrag.backends.store.jobs import new_job_id
    from tenantrag.ingest.bulk import read_documents
    from tenantrag.ingest.jobs import queue_job

    skipped: list[str] = []
    docs = list(read_documents(path, on_skip=lambda name, why: skipped.append(f"{name}: {why}")))
    for line in skipped:
        click.echo(f"skipped {line}", err=True)
    if not docs:
        raise click.ClickException(f"no documents to ingest in {path}")
    job_id = new_job_id()
    records = _cli_records("job_create", tenant_id, (job_id,), {"documents": len(docs)})
    try:
        job = queue_job(
            store,
            tenant_id,
            docs,
            user_id=records.audit.user_id or "cli",
            request_id=f"cli-{uuid.uuid4().hex}",
            clearance=Classification.RESTRICTED,  # an operator's tool: no ceiling, as ingest
            records=records,
            detail={"documents": len(docs), "source": path.name[:200]},
            job_id=job_id,
        )
    except ValueError as exc:  # ValidationFailed: two documents with one id
        raise click.ClickException(str(exc)) from None
    _anchor(settings, store)
    click.echo(f"job {job.id} queued: {job.total} documents into {tenant_id}")
    if follow:
        _follow(store, tenant_id, job.id)


def _follow(store: Store, tenant_id: str, job_id: str, every_s: float = 0.5) -> None:
    """A progress bar of the job until it is over; exits non-zero if it failed."""
    import time

    from tqdm import tqdm

    job = store.get_job(tenant_id, job_id)
    click.echo(
        "Following it (Ctrl-C stops following, not the job); a worker runs it: `tenantrag"
        " serve` in embedded mode, or `tenantrag worker`.",
        err=True,
    )
    with tqdm(total=job.total, unit="doc", desc=f"job {job_id[:12]}") as bar:
        while True:
            job = store.get_job(tenant_id, job_id)
            bar.update(job.done + job.failed - bar.n)
            bar.set_postfix(status=job.status, failed=job.failed, refresh=False)
            if job.finished:
                break
            time.sleep(every_s)
    _print_job(job)
    if job.status == "failed":
        raise SystemExit(1)


def _print_job(job: Job) -> None:
    """A job's status, counts and failed documents, as text."""
    click.echo(f"{job.id}  {job.status}  done {job.done}/{job.total}  failed {job.failed}")
    for error in job.errors:
        click.echo(f"  failed {error.id}: {error.code}: {error.message}")


@main.command()
@click.option(
    "--concurrency",
    default=None,
    type=click.IntRange(1, 64),
    help="Worker threads [default: TENANTRAG_JOBS__CONCURRENCY, 1].",
)
@click.option(
    "--metrics-port",
    default=None,
    type=click.IntRange(1, 65535),
    help="Serve this worker's Prometheus metrics on --metrics-host:PORT.",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
def worker(concurrency: int | None, metrics_port: int | None, metrics_host: str) -> None:
    """Run background ingestion jobs until stopped (SIGTERM or Ctrl-C).

    Any number may run, on any node: each item is claimed under a lease, so none is done
    twice, and a worker killed mid-job leaves its items to the others after the lease.
    """
    import signal

    from prometheus_client import start_http_server

    from tenantrag.ingest.jobs import publish_depth
    from tenantrag.metering import CostRecorder
    from tenantrag.services import build_corpus, job_worker

    settings = _settings()
    if concurrency is not None:
        settings = settings.model_copy(
            update={"jobs": settings.jobs.model_copy(update={"concurrency": concurrency})}
        )
    store = _store(settings)
    corpus = build_corpus(settings, store, threads=1, follow=False)
    costs = CostRecorder(store)
    jobs = job_worker(settings, store, corpus.ingestor, costs, priority=None)

    def stop(signum: int, frame: object) -> None:
        jobs.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host)
    jobs.start()
    click.echo(f"worker {jobs.name}: {settings.jobs.concurrency} thread(s) running jobs", err=True)
    try:
        while jobs.running:
            publish_depth(store)
            time.sleep(5)
    finally:
        jobs.stop()
        costs.flush()
        _anchor(settings, store)
        store.close()


@main.group()
def jobs() -> None:
    """Background ingestion jobs of a tenant: list, status, cancel."""


@jobs.command("list")
@click.option("--tenant", "tenant_id", required=True)
@click.option(
    "--status",
    type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]),
    default=None,
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100))
def jobs_list(tenant_id: str, status: str | None, limit: int) -> None:
    """The tenant's newest jobs, one a line: id, status, done/total, failed."""
    store, _ = _tenant_or_fail(_settings(), tenant_id)
    for job in store.list_jobs(tenant_id, limit=limit, status=status):
        click.echo(f"{job.id}  {job.status:<9}  done {job.done}/{job.total}  failed {job.failed}")


@jobs.command("status")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--follow", is_flag=True, help="Follow it with a progress bar until it is over.")
@click.argument("job_id")
def jobs_status(tenant_id: str, follow: bool, job_id: str) -> None:
    """One job's status, counts and failed documents."""
    from tenantrag.errors import NotFound

    store, _ = _tenant_or_fail(_settings(), tenant_id)
    try:
        if follow:
            _follow(store, tenant_id, job_id)
        else:
            _print_job(store.get_job(tenant_id, job_id))
    except NotFound:
        raise click.ClickException(f"no job {job_id!r} in {tenant_id}") from None


@jobs.command("cancel")
@click.option("--tenant", "tenant_id", required=True)
@click.argument("job_id")
def jobs_cancel(tenant_id: str, job_id: str) -> None:
    """Stop a queued or running job; the documents it already stored stay."""
    from tenantrag.errors import NotFound

    settings = _settings()
    store, _ = _tenant_or_fail(settings, tenant_id)
    try:
        job = store.cancel_job(tenant_id, job_id, _cli_records("job_cancel", tenant_id, (job_id,)))
    except NotFound:
        raise click.ClickException(f"no job {job_id!r} in {tenant_id}") from None
    _anchor(settings, store)
    _print_job(job)


@main.command("eval")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--split", default="train", show_default=True)
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def eval_command(tenant_id: str, split: str, dataset_dir: Path) -> None:
    """nDCG@10, Recall@100, P@5, Success@5 and MRR@10 per mode on DATASET_DIR's judged queries."""
    from tenantrag.backends.embedding import build_query_embedder
    from tenantrag.evaluation import evaluate, load_qrels, load_queries
    from tenantrag.services import build_corpus

    settings = _settings()
    store, tenant = _tenant_or_fail(settings, tenant_id)
    corpus = build_corpus(settings, store)
    if corpus.follower is not None:  # with a database: copy it here first
        corpus.follower.catch_up()
    queries, qrels = load_queries(dataset_dir, split), load_qrels(dataset_dir, split)
    # questions are embedded as the service embeds them (TENANTRAG_EMBEDDING__QUERY_PRECISION)
    embed = build_query_embedder(
        settings.embedding, model_dir=settings.onnx_dir, documents=corpus.embedder
    ).embed
    results = evaluate(corpus.retriever, tenant, queries, qrels, lambda t: embed([t])[0])
    click.echo(f"{'mode':<16}{'nDCG@10':>9}{'R@100':>8}{'P@5':>8}{'S@5':>8}{'MRR@10':>8}{'n':>6}")
    for name, sc in results.items():
        click.echo(
            f"{name:<16}{sc.ndcg_at_10:>9.4f}{sc.recall_at_100:>8.4f}{sc.p_at_5:>8.4f}"
            f"{sc.success_at_5:>8.4f}{sc.mrr_at_10:>8.4f}{sc.queries:>6}"
        )


@main.command("eval-answers")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 20))
@click.option(
    "--clearance",
    type=click.Choice([c.label for c in Classification]),
    default="internal",
    show_default=True,
    help="The asking user's clearance.",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Ask only the first N.")
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write every question's outcome and the scores here.",
)
@click.option(
    "--off-topic",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help='JSONL of {"text": question} the documents do not answer: refusing them is right.',
)
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def eval_answers_command(
    tenant_id: str,
    top_k: int,
    clearance: str,
    limit: int | None,
    json_out: Path | None,
    off_topic: Path | None,
    dataset: Path,
) -> None:
    """Answer quality on DATASET (SQuAD JSON) through the /api/query pipeline.

    Ingests the dataset's contexts into TENANT unless they are there, asks every question as
    `serve` would answer it (its question model and answerer; no answer cache, no bill), and
    prints contains-gold, token F1, refusals, wrong refusals, citation precision, answer length
    and latency for all articles and each half (tune, check), then the refusal-threshold curve.
    """
    import asyncio

    from tenantrag.evaluation_answers import load_off_topic, load_squad, report
    from tenantrag.evaluation_answers_run import evaluate_answers
    from tenantrag.services import build_corpus

    settings = _settings()
    store, tenant = _tenant_or_fail(settings, tenant_id)
    try:
        articles = load_squad(dataset)
        if off_topic is not None:
            articles.append(load_off_topic(off_topic))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    corpus = build_corpus(settings, store)
    run = asyncio.run(
        evaluate_answers(
            settings,
            store,
            corpus,
            tenant,
            articles,
            top_k=top_k,
            clearance=Classification.parse(clearance),
            limit=limit,
        )
    )
    click.echo(report(run))
    if json_out is not None:
        json_out.write_text(json.dumps(run.to_json(), indent=1) + "\n")


@main.group()
def audit() -> None:
    """Check, export and anchor the audit chain; read the security log."""


@audit.command("verify")
@click.option(
    "--path",
    type=click.Path(path_type=Path),
    default=None,
    help="A JSON-lines export to check instead of the store's chain.",
)
@click.option(
    "--anchor",
    "anchor_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A signed anchor the chain must hold (default: TENANTRAG_AUDIT__ANCHOR_PATH, else"
    " <data folder>/audit.anchor, when it exists). Needs the anchor's public key.",
)
def audit_verify(path: Path | None, anchor_path: Path | None) -> None:
    """Verify the audit chain; exit 1 on a broken, missing, reordered or rewritten record.

    Each record's hash and link are checked. With a signed anchor (and its key:
    TENANTRAG_AUDIT__ANCHOR_PUBLIC_KEY, or the private _ANCHOR_KEY) deletion, rehashing and
    truncation up to the anchored head show too; checking the store, each node's newest
    anchor kept in it is checked as well. Exit 2 when an anchor is given but no key is.
    """
    from tenantrag.observability.anchor import trusted_heads
    from tenantrag.observability.audit import verify, verify_command, verify_records

    settings = _settings()
    verifier = _anchor_verifier(settings)
    if anchor_path is not None and verifier is None:
        click.echo(
            "cannot check an anchor without its key: set TENANTRAG_AUDIT__ANCHOR_PUBLIC_KEY",
            err=True,
        )
        sys.exit(2)
    store = None if path is not None else _store(settings)
    trusted = trusted_heads(
        verifier,
        anchor_path or settings.anchor_file,
        explicit=anchor_path is not None,
        kept=store.audit_anchors() if store is not None else (),
    )
    for note in trusted.notes:
        click.echo(f"note: {note}", err=True)
    if trusted.problem is not None:
        click.echo(f"audit log BROKEN: {trusted.problem}")
        sys.exit(1)
    if store is None:
        assert path is not None  # one of the two is given
        sys.exit(verify_command(verify(path, anchors=trusted.heads), str(path)))
    where = "database" if settings.postgres_store else str(settings.db_path)
    result = verify_records(store.iter_audit(), anchors=trusted.heads)
    sys.exit(verify_command(result, where))


def _anchor_verifier(settings: Settings) -> AnchorVerifier | None:
    from tenantrag.observability.anchor import verifier_from

    private = settings.audit.anchor_key
    try:
        return verifier_from(
            private.get_secret_value() if private else None, settings.audit.anchor_public_key
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@audit.command("keygen")
def audit_keygen() -> None:
    """Print a new Ed25519 key pair for signing the audit chain's head.

    Keep the private key (TENANTRAG_AUDIT__ANCHOR_KEY) in the service's environment or secret
    store, never in its data folder; give verifiers the public key.
    """
    from tenantrag.observability.anchor import generate_key_pair

    private, public = generate_key_pair()
    click.echo(f"TENANTRAG_AUDIT__ANCHOR_KEY={private}")
    click.echo(f"TENANTRAG_AUDIT__ANCHOR_PUBLIC_KEY={public}")


@audit.command("security-log")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
def audit_security_log(limit: int) -> None:
    """Print the newest rows of the security log (refusals before a verified credential).

    Counted per client address and window, kept apart from every tenant's audit chain.
    """
    from datetime import UTC, datetime

    for entry in _store(_settings()).security_log(limit=limit):
        start = datetime.fromtimestamp(entry.window_start, UTC).isoformat(timespec="seconds")
        codes = ",".join(f"{code}={n}" for code, n in entry.detail.get("codes", {}).items())
        claimed = ",".join(entry.detail.get("claimed_tenants", [])) or "-"
        click.echo(f"{start}\t{entry.client}\t{entry.count}\t{codes}\ttenants={claimed}")


@audit.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def audit_export(path: Path) -> None:
    """Write the audit chain to PATH as JSON lines (`audit verify --path PATH` checks it)."""
    from tenantrag.observability.audit import export

    head = export(_store(_settings()), path)
    click.echo(f"exported {head.seq} records to {path}, head {head.seq}:{head.hash}")


if __name__ == "__main__":
    main()
