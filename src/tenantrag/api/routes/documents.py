"""Documents: post JSON or files, list, read, delete.

Another tenant's id is simply not found, and so is a document above the caller's clearance:
every read passes the clearance to the store as `max_classification`, and every write passes it
too, so an editor can neither replace, downgrade nor delete what they cannot read
(docs/security.md, "Document authorization").
"""

from __future__ import annotations

import base64
import binascii
import time
from functools import partial

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tenantrag.api.deps import (
    CanDeleteDocuments,
    CanReadDocuments,
    CanWriteDocuments,
    IdsDep,
    ServicesDep,
    TenantDep,
)
from tenantrag.api.job_schemas import JobAccepted
from tenantrag.api.redaction import count_redactions, reply_tally
from tenantrag.api.schemas import (
    DOCUMENT_ID,
    DocumentList,
    DocumentPublic,
    DocumentsIn,
    DocumentsOut,
    DocumentStatus,
    classification_label,
)
from tenantrag.backends.ledger import StoragePricing
from tenantrag.backends.store import ChangeRecords, StoredDocument
from tenantrag.backends.store.chain import MAX_VALUE_CHARS
from tenantrag.backends.store.jobs import new_job_id
from tenantrag.errors import NotFound, ValidationFailed
from tenantrag.governance.pii import Tally
from tenantrag.ingest.convert import convert
from tenantrag.ingest.jobs import queue_job
from tenantrag.ingest.service import DocumentInput, IngestResult, RecordsFor
from tenantrag.metering import write_bill
from tenantrag.models import (
    DOCUMENT_ID_MAX_CHARS,
    AuditEvent,
    Classification,
    DetailValue,
    Principal,
    RequestIds,
    is_valid_document_id,
)
from tenantrag.services import Services

router = APIRouter(prefix="/api/documents", tags=["documents"])
ASYNC = Query(
    default=False,
    alias="async",
    description="Queue a background job and answer 202 at once (docs/jobs.md)",
)
ACCEPTED: dict[int | str, dict[str, object]] = {
    202: {"model": JobAccepted, "description": "With async=true: the job, at `Location`"}
}


def _records(
    services: Services,
    principal: Principal,
    ids: RequestIds,
    action: str,
    started: float,
    detail: dict[str, DetailValue] | None = None,
) -> RecordsFor:
    """What a write commits with it: its audit record, its bill, the storage it accrues."""

    def make(results: list[IngestResult]) -> ChangeRecords:
        tokens = sum(r.tokens for r in results)
        resource_ids = [r.id for r in results]
        return _change(services, principal, ids, action, resource_ids, started, tokens, detail)

    return make


def _change(
    services: Services,
    principal: Principal,
    ids: RequestIds,
    action: str,
    resource_ids: list[str],
    started: float,
    tokens: int,
    detail: dict[str, DetailValue] | None = None,
) -> ChangeRecords:
    tenant_id = principal.tenant_id
    pricing = services.settings.cost
    bill = write_bill(pricing, seconds=time.perf_counter() - started, tokens=tokens)
    who = principal.user_id
    return ChangeRecords(
        audit=AuditEvent(action, "success", tenant_id, who, ids, tuple(resource_ids), detail or {}),
        costs=services.costs.events(tenant_id, bill, request_id=ids.request_id, model=None),
        storage=StoragePricing(usd_per_gb_month=pricing.storage_per_gb_month),
        on_commit=services.costs.announce,
    )


def _out(results: list[IngestResult]) -> DocumentsOut:
    return DocumentsOut(
        documents=[
            DocumentStatus(
                id=r.id,
                chunks=r.chunks,
                status="replaced" if r.replaced else "created",
                classification=classification_label(r.classification),
            )
            for r in results
        ]
    )


@router.post(
    "",
    status_code=201,
    summary="Store a batch of documents (an existing id is replaced)",
    response_model=DocumentsOut,
    responses=ACCEPTED,
)
async def post_documents(
    body: DocumentsIn,
    principal: CanWriteDocuments,
    tenant: TenantDep,
    services: ServicesDep,
    ids: IdsDep,
    run_async: bool = ASYNC,
) -> DocumentsOut | JSONResponse:
    """Chunk, embed and store up to 256 documents atomically; 201 means they are durable.

    With `async=true` they are queued as one job instead: 202 at once, each document then
    stored (or failed, alone) by a worker, and the job's progress at GET /api/jobs/{id}.
    """
    started = time.perf_counter()
    docs = [
        DocumentInput(
            text=d.text,
            id=d.id,
            title=d.title,
            metadata=d.metadata,
            classification=Classification.parse(d.classification) if d.classification else None,
        )
        for d in body.documents
    ]
    if run_async:
        return await _queue(services, principal, ids, docs, {"documents": len(docs)})
    records = _records(services, principal, ids, "ingest", started)
    results = await run_in_threadpool(
        partial(services.ingestor.ingest, max_classification=principal.clearance),
        tenant,
        docs,
        records,
    )
    return _out(results)


@router.post(
    "/upload",
    status_code=201,
    summary="Store one file: txt, md, html, pdf or docx",
    response_model=DocumentsOut,
    responses=ACCEPTED,
)
async def upload_document(
    principal: CanWriteDocuments,
    tenant: TenantDep,
    services: ServicesDep,
    ids: IdsDep,
    file: UploadFile = File(...),
    id: str | None = Form(default=None, pattern=DOCUMENT_ID, max_length=DOCUMENT_ID_MAX_CHARS),
    title: str | None = Form(default=None, max_length=1000),
    classification: str | None = Form(default=None),
    run_async: bool = ASYNC,
) -> DocumentsOut | JSONResponse:
    """Convert the file to text, then store it like a posted document.

    With `async=true` the converted text is queued as a one-document job: 202 at once (the
    conversion itself still happens in the request, within its limits).
    """
    started = time.perf_counter()
    data = await file.read()
    converted = await services.conversions.run(
        partial(convert, data, filename=file.filename or "upload", content_type=file.content_type)
    )
    try:
        level = Classification.parse(classification) if classification else None
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    doc = DocumentInput(
        text=converted.text,
        id=id,
        title=title or converted.title or file.filename,
        classification=level,
        source=file.filename or "upload",
    )
    # The file name goes into the audit record (redacted like every audit value), cut to fit.
    named: dict[str, DetailValue] = {"filename": (file.filename or "upload")[:MAX_VALUE_CHARS]}
    if run_async:
        return await _queue(services, principal, ids, [doc], {"documents": 1, **named})
    records = _records(services, principal, ids, "ingest", started, named)
    results = await run_in_threadpool(
        partial(services.ingestor.ingest, max_classification=principal.clearance),
        tenant,
        [doc],
        records,
    )
    return _out(results)


async def _queue(
    services: Services,
    principal: Principal,
    ids: RequestIds,
    docs: list[DocumentInput],
    detail: dict[str, DetailValue],
) -> JSONResponse:
    """Queue `docs` as one job with its `job_create` audit record; 202 with its Location."""
    job_id = new_job_id()
    audit = AuditEvent(
        "job_create", "success", principal.tenant_id, principal.user_id, ids, (job_id,), detail
    )
    job = await run_in_threadpool(
        partial(
            queue_job,
            services.store,
            principal.tenant_id,
            docs,
            user_id=principal.user_id,
            request_id=ids.request_id or "",
            clearance=principal.clearance,
            records=ChangeRecords(audit),
            detail=detail,
            job_id=job_id,
        )
    )
    body = JobAccepted(job_id=job.id).model_dump()
    return JSONResponse(body, status_code=202, headers={"Location": f"/api/jobs/{job.id}"})


def _public(d: StoredDocument, tally: Tally | None) -> DocumentPublic:
    """The wire form, with id, title, file name and metadata redacted when `tally` is given.

    The tenant redacts what is read back (its `redact_search_pii`). A redacted id names no
    document: such a document is addressed by the id its writer gave it (docs/governance.md).
    """

    def shown(value: str) -> str:
        return tally.text(value) if tally is not None else value

    metadata = dict(d.metadata)
    return DocumentPublic(
        id=shown(d.id),
        title=shown(d.title),
        source=shown(d.source),
        classification=classification_label(d.classification),
        metadata=tally.metadata(metadata) if tally is not None else metadata,
        bytes=d.bytes,
        chunks=d.chunks,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


async def _audit_read(
    services: Services,
    principal: Principal,
    ids: RequestIds,
    document_ids: list[str],
    outcome: str = "success",
) -> None:
    """A `read` record of the ids shown (group-committed like a search's), before answering."""
    event = AuditEvent(
        "read", outcome, principal.tenant_id, principal.user_id, ids, tuple(document_ids)
    )
    await services.auditor.arecord(event)


@router.get("", summary="List documents, a page at a time")
async def list_documents(
    principal: CanReadDocuments,
    tenant: TenantDep,
    services: ServicesDep,
    ids: IdsDep,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=400),
) -> DocumentList:
    """Documents up to the caller's clearance, by id; pass `next_cursor` back as `cursor`."""
    after = _decode_cursor(cursor) if cursor else None
    docs = await run_in_threadpool(
        partial(services.store.list_documents, max_classification=principal.clearance),
        principal.tenant_id,
        limit=limit + 1,
        after=after,
    )
    more = len(docs) > limit
    page = docs[:limit]
    next_cursor = _encode_cursor(page[-1].id) if more and page else None
    await _audit_read(services, principal, ids, [d.id for d in page])
    tally = reply_tally(tenant)
    shown = [_public(d, tally) for d in page]
    count_redactions(tally)
    return DocumentList(documents=shown, next_cursor=next_cursor)


# `:path`: a document id may hold `/` (a folder path, as bulk ingestion makes them), so the id is
# the rest of the path. No route may therefore sit below /api/documents/{id}.
@router.get("/{document_id:path}", summary="One document's fields and chunk count")
async def get_document(
    document_id: str,
    principal: CanReadDocuments,
    tenant: TenantDep,
    services: ServicesDep,
    ids: IdsDep,
) -> DocumentPublic:
    """The document, or 404 when it is not the caller's tenant's or is above their clearance.

    A 404 is audited as a `read` failure of the id asked.
    """
    if not is_valid_document_id(document_id):
        await _audit_read(services, principal, ids, [_printable(document_id)], "failure")
        raise _no_document(document_id)
    try:
        document = await run_in_threadpool(
            partial(services.store.get_document, max_classification=principal.clearance),
            principal.tenant_id,
            document_id,
        )
    except NotFound:
        await _audit_read(services, principal, ids, [document_id[:MAX_VALUE_CHARS]], "failure")
        raise
    await _audit_read(services, principal, ids, [document.id])
    tally = reply_tally(tenant)
    shown = _public(document, tally)
    count_redactions(tally)
    return shown


@router.delete(
    "/{document_id:path}", status_code=204, summary="Delete from the store, every index and cache"
)
async def delete_document(
    document_id: str, principal: CanDeleteDocuments, services: ServicesDep, ids: IdsDep
) -> None:
    """Remove the document, with its audit record and bill, in one transaction.

    Its corpus version changes, so no cached answer survives it. A document above the caller's
    clearance is 404, exactly as if it did not exist (and nothing is recorded).
    """
    if not is_valid_document_id(document_id):
        # No document can have this id, so nothing is deleted and, as for any 404 here, nothing
        # is recorded; the raw id (it may be 10 kB or hold a NUL) never reaches the store.
        raise _no_document(document_id)
    started = time.perf_counter()
    tenant_id = principal.tenant_id
    records = _change(services, principal, ids, "delete", [document_id], started, 0)
    seq = await run_in_threadpool(
        partial(services.store.delete_document, max_classification=principal.clearance),
        tenant_id,
        document_id,
        records,
    )
    await run_in_threadpool(services.refresh, tenant_id, seq)


def _printable(document_id: str) -> str:
    """An id no document can have, as an audit record can hold it: escaped and cut short."""
    return ascii(document_id)[1:-1][:MAX_VALUE_CHARS]


def _no_document(document_id: str) -> NotFound:
    """The 404 for a path id that cannot name a document (the same answer as an absent one)."""
    return NotFound(f"No document {_printable(document_id)[:DOCUMENT_ID_MAX_CHARS]!r}.")


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
