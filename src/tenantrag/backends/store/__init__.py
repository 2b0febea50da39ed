"""The store of record, behind one `Store` protocol.

It holds tenants, documents, chunks (with embeddings), the change log, the cost ledger and the
audit chain.

`SQLiteStore` (sqlite.py) is the embedded mode's store, one file under the data folder;
`PostgresStore` (postgres.py) is the distributed mode's (TENANTRAG_DATABASE_URL). Every method
names the tenant, and every row it reads or writes carries that tenant's id.

A change is one transaction with its records: `ChangeRecords` (the audit record, the costs,
the storage accrual) commit with the documents, tenant or feedback they record, or not at all;
a change given no records still commits an audit record (the store's own, without a user), so
no committed change is missing from the chain. Audit values pass the store's `audit_scrub`
(the service's redacts personal data) before the chain's lock is taken. Each
change also appends to the change log; the search indexes are derived from it (sync.py), and
in distributed mode each node copies the log into a local SQLite read model first
(follower.py). Retrieval reads a `CorpusReader` only: the read model, never the database.

Document-level authorization lives here too: the document methods take the caller's clearance
as `max_classification`, and a document above it is absent (NotFound, left out of lists) and
cannot be replaced or deleted. The check is part of the statement or transaction that reads or
writes the row. `None` means no ceiling: only for operator tools (the CLI's ingest, the demo
loader), never for a request.

Schema changes are migrations (schema.py, migrations/versions/); docs/development.md says how
to add one and extend the contract suite (tests/contract/test_store_contract.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tenantrag.backends.ledger import CostEvent, MonthUsage, StoragePricing, UsageReport
from tenantrag.backends.store.chain import AuditScrub, Head
from tenantrag.backends.store.extras import Feedback, FeedbackCounts, SecurityEntry
from tenantrag.backends.store.identity import ApiKey, Erasure
from tenantrag.backends.store.jobs import ClaimedItem, ItemRef, Job, NewJob
from tenantrag.models import AuditEvent, Chunk, Classification, Metadata, Tenant, TenantStatus
from tenantrag.settings import Settings

# What a change log entry is about. 'document': the indexes replay it; 'tenant': nodes refresh
# their copy of the tenant row. Later kinds (an erased tenant, a revoked key) go here too.
DOCUMENT_CHANGE = "document"
TENANT_CHANGE = "tenant"
# The tenant was erased: nodes delete their copy of its rows and its index files.
ERASE_CHANGE = "erase"


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
    # The hash of what it was stored from (a job item's, jobs.content_hash); None otherwise.
    content_hash: str | None = None
    # Per chunk, its sentences' vectors as rows.sentence_blob packs them (for the extractive
    # answerer); empty when ingestion embedded none.
    sentence_vectors: Sequence[bytes | None] = ()

    @property
    def stored_bytes(self) -> int:
        """What storing the document writes, the figure its storage quota counts.

        The document row's id, title, source and metadata, and for every chunk its id, text,
        title, source and metadata (each chunk carries its own copy) and its float32
        embedding and sentence vectors. Every store counts this same figure; the derived search
        indexes are not counted (docs/cache-and-costs.md, "What the storage quota counts").
        """
        row = _utf8(self.id, self.title, self.source, metadata_json(self.metadata))
        dims = self.embeddings.shape[1] if self.embeddings.ndim == 2 else 0
        chunk_rows = sum(
            _utf8(c.document_id, c.text, c.title, c.source, metadata_json(c.metadata)) + 4 * dims
            for c in self.chunks
        )
        return row + chunk_rows + sum(len(b) for b in self.sentence_vectors if b)


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


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change log: seq order is commit order."""

    seq: int
    tenant_id: str
    document_id: str
    kind: str
    at: float


@dataclass(frozen=True, slots=True)
class ChangeRecords:
    """What a change commits with it, or not at all.

    Attributes:
        audit: the change's audit record.
        costs: cost events of the change (its compute and embedding).
        storage: when set, the tenant's storage is accrued after the change, at this price.
        on_commit: called after the commit with every cost event stored (announce them).
        job_items: job items (of background ingestion) the change stores the documents of:
            marked done inside the same transaction, which rolls back whole (`ItemLost`)
            unless the worker still holds every one of them.
        on_jobs_finished: called after the commit with the ids of jobs it finished.
    """

    audit: AuditEvent
    costs: Sequence[CostEvent] = ()
    storage: StoragePricing | None = None
    on_commit: Callable[[Sequence[CostEvent]], None] | None = None
    job_items: Sequence[ItemRef] = ()
    on_jobs_finished: Callable[[list[str]], None] | None = None


@runtime_checkable
class CorpusReader(Protocol):
    """What retrieval and the index sync read: a tenant's chunks and its change log.

    Embedded mode reads the SQLite store itself; distributed mode a node's local copy of it.
    """

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None when unknown."""
        ...

    def latest_seq(self, tenant_id: str) -> int:
        """The tenant's newest document change seq: its corpus version (0 before any)."""
        ...

    def changed_documents(self, tenant_id: str, after_seq: int) -> tuple[list[str], int]:
        """Ids of documents changed after `after_seq` and the newest seq among those changes."""
        ...

    def chunks_of_documents(
        self, tenant_id: str, document_ids: Sequence[str]
    ) -> tuple[list[Chunk], np.ndarray]:
        """The current chunks of these documents with their embeddings (rows aligned)."""
        ...

    def chunks_by_rowid(self, tenant_id: str, rowids: Sequence[int]) -> dict[int, Chunk]:
        """The tenant's chunks among `rowids`; rows of any other tenant are never returned."""
        ...

    def sentence_vectors(self, tenant_id: str, rowids: Sequence[int]) -> dict[int, np.ndarray]:
        """The tenant's chunks' sentence vectors among `rowids`; those without any are absent."""
        ...

    def fetch_chunks(self, rowids: Sequence[int]) -> dict[int, Chunk]:
        """Chunks by rowid whatever their tenant: only for the leakage check, which drops strays."""
        ...

    def rowids_matching(self, tenant_id: str, filters: Metadata) -> list[int]:
        """The tenant's chunk rowids whose metadata equals every (key, value) in `filters`."""
        ...


@runtime_checkable
class Store(Protocol):
    """The store of record. It is also the `CostLedger` (backends/ledger)."""

    def open(self) -> None:
        """Connect; embedded SQLite migrates itself, PostgreSQL must be at this release's schema.

        Raises:
            schema.SchemaOutdated: the database needs `tenantrag db upgrade`.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    def ping(self) -> None:
        """Raise if the store cannot be read."""
        ...

    # -- tenants

    def create_tenant(self, tenant: Tenant, records: ChangeRecords | None = None) -> Tenant:
        """Record a new tenant (created_at filled in); ValueError if the id is taken."""
        ...

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None when unknown."""
        ...

    def list_tenants(self) -> list[Tenant]:
        """Every tenant, by id."""
        ...

    def set_tenant_status(
        self, tenant_id: str, status: TenantStatus, records: ChangeRecords | None = None
    ) -> None:
        """Suspend or reactivate a tenant; NotFound when unknown."""
        ...

    def update_tenant(
        self, tenant_id: str, records: ChangeRecords | None = None, **fields: object
    ) -> None:
        """Change a tenant's limits, retrieval settings or policies; NotFound when unknown.

        ValueError for a field that cannot be changed or a policy that does not exist.
        """
        ...

    # -- documents

    def usage(self, tenant_id: str) -> TenantUsage:
        """How many documents, bytes (`NewDocument.stored_bytes`) and chunks the tenant stores."""
        ...

    def put_documents(
        self,
        tenant: Tenant,
        documents: Sequence[NewDocument],
        records: ChangeRecords | None = None,
        *,
        max_classification: Classification | None = None,
    ) -> int:
        """Store (or replace) documents in one transaction, quotas checked inside it.

        Returns the new change seq (the corpus version the write made). With
        `max_classification`, a batch that would replace a document stored above it is refused
        whole with `Conflict`, inside the same transaction, and the message says nothing of
        that document.
        """
        ...

    def delete_document(
        self,
        tenant_id: str,
        document_id: str,
        records: ChangeRecords | None = None,
        *,
        max_classification: Classification | None = None,
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

    def document_hashes(self, tenant_id: str, document_ids: Sequence[str]) -> dict[str, str]:
        """The content hash of each of these documents stored from a job (others are absent)."""
        ...

    # -- background ingestion (jobs.py)

    def create_job(self, job: NewJob, records: ChangeRecords | None = None) -> Job:
        """Queue a job with its documents, and its audit record, in one transaction."""
        ...

    def get_job(self, tenant_id: str, job_id: str) -> Job:
        """The tenant's job; NotFound for an unknown id and another tenant's job alike."""
        ...

    def list_jobs(
        self,
        tenant_id: str,
        *,
        limit: int,
        before: str | None = None,
        status: str | None = None,
    ) -> list[Job]:
        """The tenant's jobs, newest first, with ids below `before`, of `status` if given."""
        ...

    def cancel_job(self, tenant_id: str, job_id: str, records: ChangeRecords | None = None) -> Job:
        """Stop a queued or running job (its documents done stay); the job as it now stands.

        NotFound as `get_job`. A job already over is left as it is (and nothing recorded).
        """
        ...

    def claim_job_items(
        self, owner: str, *, limit: int, lease_s: float
    ) -> tuple[list[ClaimedItem], list[str]]:
        """Lease up to `limit` items of one job to `owner`, tenants in turn; (items, jobs over)."""
        ...

    def renew_job_items(self, refs: Sequence[ItemRef], *, lease_s: float) -> int:
        """Extend the leases `refs` still hold; how many they still hold."""
        ...

    def settle_job_items(
        self, refs: Sequence[ItemRef], error: tuple[str, str] | None = None
    ) -> list[str]:
        """Mark held items failed with (code, message), or done with nothing stored; jobs over.

        Raises jobs.ItemLost, changing nothing, if an item is no longer its worker's.
        """
        ...

    def job_depth(self) -> dict[str, float]:
        """Queue depth (`items_queued`, ...) and when an active job last moved (jobs.depth)."""
        ...

    # -- the corpus and its change log

    def latest_seq(self, tenant_id: str) -> int:
        """The tenant's newest document change seq (0 before any write)."""
        ...

    def changed_documents(self, tenant_id: str, after_seq: int) -> tuple[list[str], int]:
        """Ids of documents changed after `after_seq` and the newest seq among those changes."""
        ...

    def chunks_of_documents(
        self, tenant_id: str, document_ids: Sequence[str]
    ) -> tuple[list[Chunk], np.ndarray]:
        """The current chunks of these documents with their embeddings (rows aligned)."""
        ...

    def changes_after(self, seq: int, *, limit: int) -> list[Change]:
        """Up to `limit` entries of every tenant's change log after `seq`, oldest first."""
        ...

    # -- the cost ledger (CostLedger)

    def record(self, events: Sequence[CostEvent]) -> None:
        """Store all `events` in one transaction, or none of them."""
        ...

    def totals(self, tenant: str, *, start: date, end: date) -> UsageReport:
        """The tenant's totals by cost type, model and day, `start` to `end` inclusive."""
        ...

    def month_to_date(self, tenant: str, *, now: datetime | float) -> MonthUsage:
        """The tenant's tokens and cost in the UTC month holding `now`."""
        ...

    def storage_accrual(
        self, tenant: str, stored_bytes: int, *, now: datetime | float
    ) -> CostEvent | None:
        """Record the storage cost accrued since the tenant's last accrual (the latest event)."""
        ...

    # -- the audit chain

    def append_audit(
        self, events: Sequence[AuditEvent | Mapping[str, Any]], *, durable: bool = True
    ) -> list[dict[str, Any]]:
        """Chain and store records for `events` in one transaction; returns them.

        `durable=False` lets the commit return before its log reaches the disk (records of
        reads: a crash of the database host, not of ours, may lose the last fraction of a
        second); a change's own records always commit durably with it.
        """
        ...

    def audit_head(self) -> Head:
        """The chain's last (seq, hash); (0, 64 zeros) when empty."""
        ...

    def audit_records(
        self, tenant_id: str, *, limit: int, before: int | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's newest `limit` records with seq below `before`, newest first."""
        ...

    def iter_audit(self, *, after: int = 0) -> Iterator[tuple[dict[str, Any] | str, str | None]]:
        """Every record after seq `after` in seq order, for verification and export.

        Each is (the parsed record, or its raw text when it is not JSON; its tenant_id column).
        """
        ...

    def keep_anchor(self, node: str, seq: int, digest: str, text: str) -> None:
        """Keep `node`'s newest signed anchor of the head (seq, digest), committed durably.

        The durable commit also flushes every record before it, so a head is on disk before
        its anchor file is written; an older head never replaces a newer one.
        """
        ...

    def audit_anchors(self) -> list[str]:
        """Every node's newest signed anchor (their text as written), by node."""
        ...

    # -- the security log (apart from every tenant's chain)

    def append_security(self, entries: Sequence[SecurityEntry]) -> None:
        """Append rows to the security log."""
        ...

    def security_log(self, *, limit: int, before: int | None = None) -> list[SecurityEntry]:
        """The newest `limit` rows with an id below `before`, newest first."""
        ...

    def prune_security(self, *, before: float) -> int:
        """Delete rows whose window ended before `before` (epoch seconds); how many went."""
        ...

    # -- feedback on answers

    def put_feedback(self, feedback: Feedback, records: ChangeRecords | None = None) -> bool:
        """Store a rating of an answered request with its records; True when it is new.

        NotFound unless the feedback's tenant was answered that request id (its own `query`
        record); a user's second rating of one request replaces the first.
        """
        ...

    def feedback_counts(self, tenant_id: str, *, start: float, end: float) -> FeedbackCounts:
        """Ratings of the tenant last changed in [start, end) (epoch seconds)."""
        ...

    def feedback_between(self, tenant_id: str, *, start: float, end: float) -> list[Feedback]:
        """The tenant's ratings last changed in [start, end), oldest first."""
        ...

    # -- credentials (docs/identity.md)

    def create_api_key(self, key: ApiKey, secret_hash: str, records: ChangeRecords) -> None:
        """Store a new key (only the keyed hash of its secret) with its audit record.

        NotFound unless the key's tenant exists and is not erased.
        """
        ...

    def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        """The tenant's keys, revoked ones included, oldest first."""
        ...

    def find_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key with this lookup id (any tenant) and its secret's hash; None when unknown."""
        ...

    def revoke_api_key(self, tenant_id: str, key_id: str, records: ChangeRecords) -> None:
        """Revoke the tenant's key with its audit record; NotFound for another tenant's."""
        ...

    def touch_api_key(self, key_id: str, at: float) -> None:
        """Record that the key was used at `at` (best effort, no audit record)."""
        ...

    def revoke_token(self, jti: str, expires_at: float, records: ChangeRecords) -> None:
        """Refuse the token with this `jti` until `expires_at`, with its audit record."""
        ...

    def revoked_token_ids(self, *, now: float) -> frozenset[str]:
        """Every revoked `jti` whose token may still be unexpired at `now`."""
        ...

    def erase_tenant(self, tenant_id: str, records: ChangeRecords) -> Erasure:
        """Delete the tenant's documents, chunks, feedback, keys and change log in one transaction.

        Its row stays as a tombstone (status `deleted`), and cost and audit records stay. An
        erase entry in the change log tells every node to delete its copy and index files.
        NotFound when no such tenant was ever created; erasing again is harmless.
        """
        ...


def store_at(
    url: str, *, pricing: StoragePricing | None = None, audit_scrub: AuditScrub | None = None
) -> Store:
    """The store at `url` (sqlite:///path or postgresql://...), not yet opened."""
    if url.startswith(("postgresql://", "postgres://")):
        from tenantrag.backends.store.postgres import PostgresStore

        return PostgresStore(url, pricing=pricing, audit_scrub=audit_scrub)
    if url.startswith("sqlite:///"):
        from pathlib import Path

        from tenantrag.backends.store.sqlite import SQLiteStore

        path = Path(url.removeprefix("sqlite:///"))
        return SQLiteStore(path, pricing=pricing, audit_scrub=audit_scrub)
    raise ValueError("a store url starts with sqlite:/// or postgresql://")


def build_store(settings: Settings, *, audit_scrub: AuditScrub | None) -> Store:
    """The store of record the settings name (not yet opened), pricing storage as they say.

    `audit_scrub` is required on purpose: the service and the CLI pass the PII redactor
    (observability.audit.scrub_record), so their audit values are redacted like their logs.
    """
    pricing = StoragePricing(usd_per_gb_month=settings.cost.storage_per_gb_month)
    return store_at(settings.store_url, pricing=pricing, audit_scrub=audit_scrub)
