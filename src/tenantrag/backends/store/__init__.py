"""The store: the durable source of truth for tenants, documents and chunks (with embeddings).

`Store` is the seam the pipeline, the routes, ingestion and the index sync depend on;
`SQLiteStore` (sqlite.py) implements it. Every method names the tenant, and every row it reads
or writes carries that tenant's id.

Document-level authorization lives here too: the document methods take the caller's clearance
as `max_classification`, and a document above it is absent (NotFound, left out of lists) and
cannot be replaced or deleted. `None` means no ceiling: only for operator tools (the CLI's
ingest, the demo loader), never for a request.

The search indexes are derived from the store: each write appends to a change log, and an index
replays the changes it has not seen (backends/sync.py).

A write is one transaction. Records that must agree with a change (the audit record of an
ingest, a storage cost event) belong in that same transaction: a store that can hold them
(PostgreSQL, next) will take them as arguments of the write; `models.AuditEvent` and
`backends.ledger.CostEvent` are the plain values it will be given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from tenantrag.models import Chunk, Classification, Metadata, Tenant, TenantStatus
from tenantrag.settings import Settings


def metadata_json(metadata: Metadata) -> str:
    """Metadata as every store writes it, once per document and once per chunk."""
    return json.dumps(dict(metadata))


@dataclass(frozen=True, slots=True)
class NewDocument:
    """A document ready to store: its chunks and their embeddings, one row per chunk."""

    id: str
    title: str
    chunks: Sequence[Chunk]
    embeddings: np.ndarray
    classification: Classification = Classification.INTERNAL
    source: str = ""
    metadata: Metadata = field(default_factory=dict)

    @property
    def stored_bytes(self) -> int:
        """What storing the document writes, the figure its storage quota counts.

        The document row's id, title, source and metadata, and for every chunk its id, text,
        title, source and metadata (each chunk carries its own copy) and its float32
        embedding. Every store counts this same figure; the derived search indexes are not
        counted (docs/cache-and-costs.md, "What the storage quota counts").
        """
        row = _utf8(self.id, self.title, self.source, metadata_json(self.metadata))
        dims = self.embeddings.shape[1] if self.embeddings.ndim == 2 else 0
        chunk_rows = sum(
            _utf8(c.document_id, c.text, c.title, c.source, metadata_json(c.metadata)) + 4 * dims
            for c in self.chunks
        )
        return row + chunk_rows


def _utf8(*texts: str) -> int:
    return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A document's stored fields, without its text."""

    tenant_id: str
    id: str
    title: str
    source: str
    classification: Classification
    metadata: Metadata
    bytes: int
    chunks: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class TenantUsage:
    """What a tenant stores now."""

    documents: int
    bytes: int
    chunks: int


@runtime_checkable
class Store(Protocol):
    """Tenants, documents and chunks, with a per-tenant change log the indexes replay."""

    def open(self) -> None:
        """Create the schema if needed; call once before use."""
        ...

    def close(self) -> None:
        """Release this thread's connection."""
        ...

    def ping(self) -> None:
        """Raise if the store cannot be read."""
        ...

    # -- tenants

    def create_tenant(self, tenant: Tenant) -> Tenant:
        """Record a new tenant (created_at filled in); ValueError if the id is taken."""
        ...

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None when unknown."""
        ...

    def list_tenants(self) -> list[Tenant]:
        """Every tenant, by id."""
        ...

    def set_tenant_status(self, tenant_id: str, status: TenantStatus) -> None:
        """Suspend or reactivate a tenant; NotFound when unknown."""
        ...

    def update_tenant(self, tenant_id: str, **fields: object) -> None:
        """Change a tenant's limits or retrieval settings; NotFound when unknown."""
        ...

    # -- documents

    def usage(self, tenant_id: str) -> TenantUsage:
        """How many documents, bytes (`NewDocument.stored_bytes`) and chunks the tenant stores."""
        ...

    def put_documents(
        self,
        tenant: Tenant,
        documents: Sequence[NewDocument],
        *,
        max_classification: Classification | None = None,
    ) -> int:
        """Store (or replace) documents in one transaction, quotas checked inside it.

        Returns the tenant's new change seq. With `max_classification`, a batch that would
        replace a document stored above it is refused whole with `Conflict`, inside the same
        transaction, and the message says nothing of that document.
        """
        ...

    def delete_document(
        self, tenant_id: str, document_id: str, *, max_classification: Classification | None = None
    ) -> int:
        """Remove a document and its chunks; returns the change seq.

        NotFound when absent, and, with `max_classification`, when stored above it: the same
        error, so a caller cannot tell the two apart.
        """
        ...

    def get_document(
        self, tenant_id: str, document_id: str, *, max_classification: Classification | None = None
    ) -> StoredDocument:
        """The document's fields; NotFound when absent or above `max_classification`."""
        ...

    def list_documents(
        self,
        tenant_id: str,
        *,
        limit: int,
        after: str | None = None,
        max_classification: Classification | None = None,
    ) -> list[StoredDocument]:
        """Up to `limit` documents ordered by id, starting after the id `after`.

        With `max_classification`, documents above it are left out before the limit applies,
        so pages and cursors never reveal them.
        """
        ...

    # -- chunks and changes, for retrieval and the indexes

    def chunks_by_rowid(self, tenant_id: str, rowids: Sequence[int]) -> dict[int, Chunk]:
        """The tenant's chunks among `rowids`; rows of any other tenant are never returned."""
        ...

    def fetch_chunks(self, rowids: Sequence[int]) -> dict[int, Chunk]:
        """Chunks by rowid whatever their tenant: only for the leakage check, which drops strays."""
        ...

    def rowids_matching(self, tenant_id: str, filters: Metadata) -> list[int]:
        """The tenant's chunk rowids whose metadata equals every (key, value) in `filters`."""
        ...

    def chunks_of_documents(
        self, tenant_id: str, document_ids: Sequence[str]
    ) -> tuple[list[Chunk], np.ndarray]:
        """The current chunks of these documents with their embeddings (rows aligned)."""
        ...

    def iter_chunks(
        self, tenant_id: str, batch: int = 5000
    ) -> Iterator[tuple[list[Chunk], np.ndarray]]:
        """Every chunk of the tenant with its embedding, in batches (for a rebuild)."""
        ...

    def latest_seq(self, tenant_id: str) -> int:
        """The tenant's newest change seq: its corpus version (0 before any write)."""
        ...

    def changed_documents(self, tenant_id: str, after_seq: int) -> tuple[list[str], int]:
        """Ids of documents changed after `after_seq` and the newest seq among those changes."""
        ...


def build_store(settings: Settings) -> Store:
    """The store the settings name: the SQLite file under the data folder (not yet opened)."""
    from tenantrag.backends.store.sqlite import SQLiteStore

    return SQLiteStore(settings.db_path)
