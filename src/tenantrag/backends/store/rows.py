"""Rows to domain values and back, and the checks both stores make the same way."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from tenantrag.backends.store import NewDocument, StoredDocument
from tenantrag.backends.store.chain import UNATTRIBUTED, DetailValue
from tenantrag.backends.store.extras import Feedback
from tenantrag.errors import Conflict, QuotaExceeded
from tenantrag.models import (
    AuditEvent,
    AutoClassify,
    Chunk,
    Classification,
    RequestIds,
    Tenant,
    TenantStatus,
)

TENANT_COLUMNS = (
    "id, status, rate_limit, storage_quota_bytes, document_quota, monthly_token_budget,"
    " monthly_cost_budget_usd, bm25_weight, vector_weight, fusion, injection_policy,"
    " redact_search_pii, created_at, auto_classify, tokens_valid_after"
)
DOCUMENT_COLUMNS = (
    "tenant_id, id, title, source, classification, metadata, bytes, chunks, created_at, updated_at"
)
UPDATABLE_TENANT_FIELDS = frozenset(
    {
        "rate_limit",
        "storage_quota_bytes",
        "document_quota",
        "monthly_token_budget",
        "monthly_cost_budget_usd",
        "bm25_weight",
        "vector_weight",
        "fusion",
        "injection_policy",
        "redact_search_pii",
        "auto_classify",
    }
)


def with_created(tenant: Tenant) -> Tenant:
    """The tenant with created_at set to now unless it has one, credentials counted from then.

    `tokens_valid_after` is the creation time: a token minted for this id before the tenant
    existed never becomes valid (docs/identity.md).
    """
    created = tenant if tenant.created_at else replace(tenant, created_at=time.time())
    if created.tokens_valid_after < created.created_at:
        created = replace(created, tokens_valid_after=created.created_at)
    return created


def tenant_values(tenant: Tenant) -> tuple[Any, ...]:
    """The tenant as a row, in TENANT_COLUMNS order."""
    return (
        tenant.id,
        tenant.status.value,
        tenant.rate_limit,
        tenant.storage_quota_bytes,
        tenant.document_quota,
        tenant.monthly_token_budget,
        tenant.monthly_cost_budget_usd,
        tenant.bm25_weight,
        tenant.vector_weight,
        tenant.fusion,
        tenant.injection_policy,
        bool(tenant.redact_search_pii),
        tenant.created_at,
        AutoClassify(tenant.auto_classify).value,
        tenant.tokens_valid_after,
    )


def tenant_placeholders(mark: str) -> str:
    """One `mark` per column of TENANT_COLUMNS, comma-separated, for an INSERT."""
    return ",".join([mark] * len(TENANT_COLUMNS.split(",")))


def tenant_from(row: Sequence[Any]) -> Tenant:
    """A Tenant from a row in TENANT_COLUMNS order."""
    return Tenant(
        id=str(row[0]),
        status=TenantStatus(row[1]),
        rate_limit=int(row[2]),
        storage_quota_bytes=int(row[3]),
        document_quota=int(row[4]),
        monthly_token_budget=int(row[5]),
        monthly_cost_budget_usd=float(row[6]),
        bm25_weight=float(row[7]),
        vector_weight=float(row[8]),
        fusion=str(row[9]),
        injection_policy=str(row[10]),
        redact_search_pii=bool(row[11]),
        created_at=float(row[12]),
        auto_classify=AutoClassify(row[13]),
        tokens_valid_after=float(row[14]),
    )


def checked_tenant_fields(fields: Mapping[str, object]) -> dict[str, object]:
    """The fields as the tenants table stores them; ValueError unless every one may be updated.

    A policy's name is checked here too (ValueError for anything but `off`, `raise`,
    `raise-and-redact`), before the database's CHECK constraint would refuse it less clearly.
    """
    unknown = set(fields) - UPDATABLE_TENANT_FIELDS
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    checked = dict(fields)
    if "auto_classify" in checked:
        checked["auto_classify"] = AutoClassify(str(checked["auto_classify"])).value
    return checked


def metadata_of(value: Any) -> dict[str, Any]:
    """Metadata from a column: JSON text (SQLite) or an already decoded jsonb (PostgreSQL)."""
    return dict(json.loads(value)) if isinstance(value, str | bytes) else dict(value)


def document_from(row: Sequence[Any]) -> StoredDocument:
    """A StoredDocument from a row in DOCUMENT_COLUMNS order."""
    return StoredDocument(
        tenant_id=str(row[0]),
        id=str(row[1]),
        title=str(row[2]),
        source=str(row[3]),
        classification=Classification(row[4]),
        metadata=metadata_of(row[5]),
        bytes=int(row[6]),
        chunks=int(row[7]),
        created_at=float(row[8]),
        updated_at=float(row[9]),
    )


def chunk_from(row: Sequence[Any]) -> Chunk:
    """A Chunk from (rowid, tenant, document, position, text, title, class, source, metadata)."""
    return Chunk(
        rowid=int(row[0]),
        tenant_id=str(row[1]),
        document_id=str(row[2]),
        position=int(row[3]),
        text=str(row[4]),
        title=str(row[5]),
        classification=Classification(row[6]),
        source=str(row[7]),
        metadata=metadata_of(row[8]),
    )


def vectors_from(blobs: Sequence[bytes]) -> np.ndarray:
    """Stacked float32 rows from embedding blobs; (0, 0) for none."""
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([np.frombuffer(bytes(b), dtype=np.float32) for b in blobs])


def embedding_blobs(doc: NewDocument) -> list[bytes]:
    """One float32 blob per chunk of `doc`."""
    vectors = np.ascontiguousarray(doc.embeddings, dtype=np.float32)
    return [vectors[i].tobytes() for i in range(len(doc.chunks))]


def sentence_blobs(doc: NewDocument) -> list[bytes | None]:
    """One sentence-vector blob per chunk of `doc` (None where it has none)."""
    given = list(doc.sentence_vectors)
    return [given[i] if i < len(given) else None for i in range(len(doc.chunks))]


def sentence_blob(vectors: np.ndarray) -> bytes:
    """A chunk's sentence vectors (one row per sentence) as stored: a header, then int8 rows.

    The header is two little-endian uint16s, rows and dimensions. Each row is scaled so its
    largest component is 127 and rounded: only its direction is kept, which is all a cosine
    needs (the error is below 0.005), at a quarter of float32's bytes.
    """
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] > 0xFFFF or matrix.shape[1] > 0xFFFF:
        raise ValueError("sentence vectors are a (rows, dims) matrix of at most 65535 each")
    peak = np.abs(matrix).max(axis=1, initial=0.0, keepdims=True)
    peak[peak == 0.0] = 1.0  # a zero row stays zero
    rows = np.rint(matrix / peak * 127.0).astype(np.int8)
    header = np.array(matrix.shape, dtype="<u2").tobytes()
    return bytes(header + rows.tobytes())


def sentence_vectors_from(blob: bytes) -> np.ndarray:
    """The unit-length float32 rows of a `sentence_blob`."""
    data = bytes(blob)
    rows, dims = (int(n) for n in np.frombuffer(data[:4], dtype="<u2"))
    matrix = np.frombuffer(data[4:], dtype=np.int8, count=rows * dims).astype(np.float32)
    matrix = matrix.reshape(rows, dims)
    norms = np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return np.asarray(matrix / norms, dtype=np.float32)


def check_quotas(
    tenant: Tenant,
    documents: Sequence[NewDocument],
    current: tuple[int, int],
    replaced: tuple[int, int],
) -> None:
    """QuotaExceeded when the write would pass a quota.

    `current` is the tenant's (documents, bytes) now, `replaced` those of the batch's ids that
    already exist (a replacement is not counted twice).
    """
    count = current[0] - replaced[0] + len({d.id for d in documents})
    size = current[1] - replaced[1] + sum(d.stored_bytes for d in documents)
    if count > tenant.document_quota:
        raise QuotaExceeded(
            f"Document quota of {tenant.document_quota} reached;"
            " delete documents or raise the quota.",
            retry_after=3600,
        )
    if size > tenant.storage_quota_bytes:
        raise QuotaExceeded(
            f"Storage quota of {tenant.storage_quota_bytes} bytes reached; delete documents or"
            " raise the quota.",
            retry_after=3600,
        )


def ceiling(max_classification: Classification | None) -> int:
    """The highest classification a query may see: the top level when no ceiling is given."""
    return int(max(Classification) if max_classification is None else max_classification)


def hidden_id_conflict(document_id: str) -> Conflict:
    """The refusal of a batch that names a document stored above the caller's clearance.

    Creating under such an id is impossible (the id is taken) and replacing the document would
    overwrite or downgrade what the caller may not read. Any refusal shows that the id is in
    use, so the message says no more than that: not the title, not the level, not why.
    """
    return Conflict(
        f"The document id {document_id!r} cannot be used; choose another id."
        " Nothing in this batch was stored."
    )


def normalised(value: object) -> str:
    """A metadata value as the keyword index's filter terms hold it (1 == 1.0, true != 1)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


# -- the records a store writes itself when a change comes without its own ------------------------

ERASED = "The tenant has been erased; nothing more can be stored for it."
NO_ANSWER = (
    "No answered request of your tenant has this request_id; send the X-Request-ID of a"
    " /api/query answer."
)


def store_event(action: str, tenant_id: str, resource_ids: Sequence[str] = ()) -> AuditEvent:
    """The store's own record of a change that came without one: no user, marked as such."""
    return AuditEvent(
        action, "success", tenant_id, None, RequestIds(), tuple(resource_ids), UNATTRIBUTED
    )


def status_event(tenant_id: str, status: TenantStatus) -> AuditEvent:
    """The store's own record of a suspension or reactivation."""
    action = "tenant_suspended" if status is TenantStatus.SUSPENDED else "tenant_activated"
    return AuditEvent(action, "success", tenant_id, None, detail=UNATTRIBUTED)


def status_change(status: TenantStatus, now: float) -> tuple[str, tuple[object, ...]]:
    """The SET clause (with `?` marks) and values of a status change, for both stores.

    A suspension moves `tokens_valid_after` to now: reactivating must not revive the tokens
    and keys issued before it. An erased tenant's tombstone never changes status here.
    """
    if status is TenantStatus.DELETED:
        raise ValueError("a tenant is deleted by erasing it, not by a status change")
    if status is TenantStatus.SUSPENDED:
        return "status = ?, tokens_valid_after = ?", (status.value, now)
    return "status = ?", (status.value,)


def update_event(tenant_id: str, fields: Mapping[str, object]) -> AuditEvent:
    """The store's own record of changed limits: the new values (numbers and names only)."""
    detail: dict[str, DetailValue] = dict(UNATTRIBUTED)
    for name, value in fields.items():
        if isinstance(value, str | int | float | bool):
            detail[name] = value
    return AuditEvent("tenant_updated", "success", tenant_id, None, detail=detail)


def feedback_event(feedback: Feedback) -> AuditEvent:
    """The store's own record of a rating: never its comment."""
    return AuditEvent(
        "feedback",
        "success",
        feedback.tenant_id,
        feedback.user_id,
        RequestIds(),
        (feedback.request_id,),
        {**UNATTRIBUTED, "rating": feedback.rating},
    )
