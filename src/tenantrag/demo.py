"""`make run`'s demo: two tenants with different documents, and a ready-to-use token."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from tenantrag.auth import issue_token, resolve_secret
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.ingest.bulk import batches, read_documents
from tenantrag.models import Classification, Permission, Tenant
from tenantrag.rag import build_rag
from tenantrag.settings import Settings

DEMO_TENANTS = {"demo": "handbook.jsonl", "globex": "scifact-sample.jsonl"}


def _resource(name: str) -> Path:
    return Path(str(resources.files("tenantrag.resources.demo").joinpath(name)))


def load_demo(settings: Settings, *, host: str, port: int) -> None:
    """Create the demo tenants and load their documents once; print a token and a curl line."""
    store = SQLiteStore(settings.db_path)
    store.open()
    rag = None
    for tenant_id, corpus in DEMO_TENANTS.items():
        tenant = store.get_tenant(tenant_id)
        if tenant is None:
            tenant = store.create_tenant(
                Tenant(id=tenant_id, rate_limit=settings.rate_limit_per_minute,
                       fusion=settings.retrieval.fusion)  # fmt: skip
            )
        if store.usage(tenant_id).documents:
            continue
        rag = rag or build_rag(settings, store)
        click.echo(f"Loading {corpus} into tenant {tenant_id} (first run only)...", err=True)
        for batch in batches(read_documents(_resource(corpus))):
            rag.ingestor.ingest(tenant, batch)
    secret = resolve_secret(settings, create=True)
    token = issue_token(
        secret, tenant_id="demo", user_id="demo-user", permissions=[p.value for p in Permission],
        clearance=Classification.CONFIDENTIAL, ttl_s=24 * 3600,
    )  # fmt: skip
    base = f"http://{host}:{port}"
    click.echo(
        f"\nDemo tenants: demo (18F handbook), globex (SciFact sample).\n"
        f"A token for demo-user in tenant demo (24 h):\n\n  export TOKEN={token}\n\n"
        f"Try:\n  curl -s {base}/api/search -H \"Authorization: Bearer $TOKEN\""
        f" -H 'X-Tenant-ID: demo' -H 'Content-Type: application/json'"
        f" -d '{{\"query\": \"How do I request leave?\", \"top_k\": 3}}'\n"
        f"  curl -s {base}/api/query -H \"Authorization: Bearer $TOKEN\""
        f" -H 'X-Tenant-ID: demo' -H 'Content-Type: application/json'"
        f" -d '{{\"query\": \"How do I request leave?\"}}'\n",
        err=True,
    )
