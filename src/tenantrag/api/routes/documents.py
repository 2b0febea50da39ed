"""Documents: post JSON or files, list, read, delete. Another tenant's id is simply not found."""

from __future__ import annotations

import base64
import binascii
import time

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from tenantrag.api.deps import (
    CanDeleteDocuments,
    CanReadDocuments,
    CanWriteDocuments,
    ServicesDep,
    TenantDep,
)
from tenantrag.api.schemas import (
    DOCUMENT_ID,
    DocumentList,
    DocumentPublic,
    DocumentsIn,
    DocumentsOut,
    DocumentStatus,
    classification_label,
)
from tenantrag.backends.store.sqlite import StoredDocument
from tenantrag.errors import ValidationFailed
from tenantrag.ingest.convert import convert
from tenantrag.ingest.service import DocumentInput, IngestResult
from tenantrag.models import Classification
from tenantrag.pipeline.context import CostItem
from tenantrag.services import Services

router = APIRouter(prefix="/api/documents", tags=["documents"])


def _bill(
    request: Request, services: Services, tenant_id: str, started: float, tokens: int
) -> None:
    """Record the embedding and compute cost of a write."""
    pricing = services.settings.cost
    seconds = time.perf_counter() - started
    items = [
        CostItem("compute", seconds * pricing.compute_per_second, {"seconds": round(seconds, 4)})
    ]
    if tokens:
        items.append(
            CostItem(
                "embedding", tokens / 1000 * pricing.embedding_per_1k_tokens, {"tokens": tokens}
            )
        )
    services.c.record(
        tenant_id, items, request_id=request.scope.get("state", {}).get("request_id"), model=None
    )


def _out(results: list[IngestResult]) -> DocumentsOut:
    return DocumentsOut(
        documents=[
            DocumentStatus(
                id=r.id,
                chunks=r.chunks,
                status="replaced" if r.replaced else "created",
                classification=classification_label(r.classification),
            )  # fmt: skip
            for r in results
        ]
    )


@router.post("", status_code=201, summary="Store a batch of documents (an existing id is replaced)")
async def post_documents(
    body: DocumentsIn, request: Request, principal: CanWriteDocuments, tenant: TenantDep,
    services: ServicesDep,
) -> DocumentsOut:  # fmt: skip
    """Chunk, embed and store up to 256 documents atomically; 201 means they are durable."""
    started = time.perf_counter()
    docs = [
        DocumentInput(
            text=d.text,
            id=d.id,
            title=d.title,
            metadata=d.metadata,
            classification=Classification.parse(d.classification) if d.classification else None,
        )  # fmt: skip
        for d in body.documents
    ]
    results = await run_in_threadpool(services.r.ingestor.ingest, tenant, docs)
    services.audit_event(request, "ingest", "success", resource_ids=[r.id for r in results])
    await run_in_threadpool(services.accrue_storage, tenant.id)
    _bill(request, services, tenant.id, started, sum(r.tokens for r in results))
    return _out(results)


@router.post("/upload", status_code=201, summary="Store one file: txt, md, html, pdf or docx")
async def upload_document(
    request: Request,
    principal: CanWriteDocuments,
    tenant: TenantDep,
    services: ServicesDep,
    file: UploadFile = File(...),
    id: str | None = Form(default=None, pattern=DOCUMENT_ID),
    title: str | None = Form(default=None, max_length=1000),
    classification: str | None = Form(default=None),
) -> DocumentsOut:
    """Convert the file to text, then store it like a posted document."""
    started = time.perf_counter()
    data = await file.read()
    converted = await run_in_threadpool(
        convert, data, filename=file.filename or "upload", content_type=file.content_type
    )
    try:
        level = Classification.parse(classification) if classification else None
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    doc = DocumentInput(
        text=converted.text, id=id, title=title or converted.title or file.filename,
        classification=level, source=file.filename or "upload",
    )  # fmt: skip
    results = await run_in_threadpool(services.r.ingestor.ingest, tenant, [doc])
    services.audit_event(request, "ingest", "success", resource_ids=[r.id for r in results])
    await run_in_threadpool(services.accrue_storage, tenant.id)
    _bill(request, services, tenant.id, started, sum(r.tokens for r in results))
    return _out(results)


def _public(d: StoredDocument) -> DocumentPublic:
    return DocumentPublic(
        id=d.id, title=d.title, source=d.source,
        classification=classification_label(d.classification), metadata=dict(d.metadata),
        bytes=d.bytes, chunks=d.chunks, created_at=d.created_at, updated_at=d.updated_at,
    )  # fmt: skip


@router.get("", summary="List documents, a page at a time")
async def list_documents(
    principal: CanReadDocuments,
    services: ServicesDep,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=400),
) -> DocumentList:
    """Documents ordered by id; pass `next_cursor` back as `cursor` for the next page."""
    after = _decode_cursor(cursor) if cursor else None
    docs = services.store.list_documents(principal.tenant_id, limit=limit + 1, after=after)
    more = len(docs) > limit
    page = docs[:limit]
    next_cursor = _encode_cursor(page[-1].id) if more and page else None
    return DocumentList(documents=[_public(d) for d in page], next_cursor=next_cursor)


@router.get("/{document_id}", summary="One document's fields and chunk count")
async def get_document(
    document_id: str, principal: CanReadDocuments, services: ServicesDep
) -> DocumentPublic:
    """The document, or 404 when it is not the caller's tenant's."""
    return _public(services.store.get_document(principal.tenant_id, document_id))


@router.delete(
    "/{document_id}", status_code=204, summary="Delete from the store, every index and cache"
)
async def delete_document(
    document_id: str, request: Request, principal: CanDeleteDocuments, services: ServicesDep
) -> Response:
    """Remove the document; its corpus version changes, so no cached answer survives it."""
    started = time.perf_counter()
    await run_in_threadpool(services.store.delete_document, principal.tenant_id, document_id)
    await run_in_threadpool(services.r.sync.ensure_current, principal.tenant_id)
    services.audit_event(request, "delete", "success", resource_ids=[document_id])
    await run_in_threadpool(services.accrue_storage, principal.tenant_id)
    _bill(request, services, principal.tenant_id, started, 0)
    return Response(status_code=204)


def _encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        value = raw.decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationFailed("The cursor is not one this API returned.") from None
    if not value:
        raise ValidationFailed("The cursor is not one this API returned.")
    return value
