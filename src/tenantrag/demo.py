"""`make run`'s demo: two tenants with different documents, and a ready-to-use token."""

from __future__ import annotations

import threading
from functools import partial
from importlib import resources
from pathlib import Path

import click

from tenantrag.auth import issue_token, resolve_secret
from tenantrag.backends.store import ChangeRecords, Store, build_store
from tenantrag.ingest.bulk import batches, read_documents
from tenantrag.ingest.service import IngestResult
from tenantrag.models import AuditEvent, Classification, Permission, Tenant
from tenantrag.observability.audit import scrub_record
from tenantrag.settings import Settings

DEMO_TENANTS = {"demo": "handbook.jsonl", "globex": "scifact-sample.jsonl"}


def _resource(name: str) -> Path:
    return Path(str(resources.files("tenantrag.resources.demo").joinpath(name)))


def start_demo(settings: Settings, *, host: str, port: int) -> threading.Thread | None:
    """Create the demo tenants, print a token, and load their documents in the background.

    The service answers at once; the documents become searchable as each batch is stored
    (the first run embeds about 3,400 chunks, a few minutes on two cores).
    """
    store = build_store(settings, audit_scrub=scrub_record)
    store.open()
    pending = []
    for tenant_id, corpus in DEMO_TENANTS.items():
        tenant = store.get_tenant(tenant_id)
        if tenant is None:
            tenant = store.create_tenant(
                Tenant(
                    id=tenant_id,
                    rate_limit=settings.rate_limit_per_minute,
                    fusion=settings.retrieval.fusion,
                ),
                _records("tenant_created", tenant_id),
            )
        if not store.usage(tenant_id).documents:
            pending.append((tenant, corpus))
    _print_token(settings, host=host, port=port)
    if not pending:
        return None
    thread = threading.Thread(
        target=_load, args=(settings, store, pending), name="demo-loader", daemon=True
    )
    thread.start()
    return thread


def _load(settings: Settings, store: Store, pending: list[tuple[Tenant, str]]) -> None:
    from tenantrag.services import build_corpus

    # With a database the nodes follow the change log; this process only writes.
    ingestor = build_corpus(settings, store, follow=False).ingestor
    for tenant, corpus in pending:
        docs = list(read_documents(_resource(corpus)))
        click.echo(
            f"demo: loading {len(docs)} documents into {tenant.id} (first run only)", err=True
        )
        for batch in batches(iter(docs), 16):
            ingestor.ingest(tenant, batch, partial(_ingested, tenant.id))
        click.echo(f"demo: {tenant.id} is loaded", err=True)


def _records(action: str, tenant_id: str, ids: tuple[str, ...] = ()) -> ChangeRecords:
    return ChangeRecords(AuditEvent(action, "success", tenant_id, "demo-loader", resource_ids=ids))


def _ingested(tenant_id: str, results: list[IngestResult]) -> ChangeRecords:
    return _records("ingest", tenant_id, tuple(r.id for r in results))


def _print_token(settings: Settings, *, host: str, port: int) -> None:
    secret = resolve_secret(settings, create=True)
    token = issue_token(
        secret,
        tenant_id="demo",
        user_id="demo-user",
        permissions=[p.value for p in Permission],
        clearance=Classification.CONFIDENTIAL,
        ttl_s=24 * 3600,
    )
    base = f"http://{host}:{port}"
    click.echo(
        f"\nDemo tenants: demo (18F handbook), globex (SciFact sample).\n"
        f"A token for demo-user in tenant demo (24 h):\n\n  export TOKEN={token}\n\n"
        f'Try:\n  curl -s {base}/api/search -H "Authorization: Bearer $TOKEN"'
        f" -H 'X-Tenant-ID: demo' -H 'Content-Type: application/json'"
        f' -d \'{{"query": "How do I request leave?", "top_k": 3}}\'\n'
        f'  curl -s {base}/api/query -H "Authorization: Bearer $TOKEN"'
        f" -H 'X-Tenant-ID: demo' -H 'Content-Type: application/json'"
        f' -d \'{{"query": "How do I request leave?"}}\'\n',
        err=True,
    )
