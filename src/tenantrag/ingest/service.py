"""Ingestion: validate, chunk, classify, embed, store durably, then bring the indexes up to date.

The store commit is the moment a document becomes durable, together with its audit record and
costs (`ChangeRecords`, made by the caller from the results); the indexes are derived from it
and replay anything they missed, so a crash after the commit loses nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import structlog

from tenantrag.backends import Embedder
from tenantrag.backends.llm.extractive import sentence_texts
from tenantrag.backends.store import ChangeRecords, NewDocument, Store
from tenantrag.backends.store.rows import sentence_blob
from tenantrag.errors import NotFound, ValidationFailed
from tenantrag.ingest.chunking import chunk_text, embedding_text, first_line_title
from tenantrag.ingest.classify import auto_classify
from tenantrag.models import (
    DOCUMENT_ID_MAX_CHARS,
    AutoClassify,
    Chunk,
    Classification,
    Metadata,
    Tenant,
    is_valid_document_id,
)
from tenantrag.observability.tracing import span

log = structlog.get_logger("tenantrag.ingest")


@dataclass(frozen=True, slots=True)
class DocumentInput:
    """A document as a caller hands it over."""

    text: str
    id: str | None = None
    title: str | None = None
    classification: Classification | None = None
    metadata: Metadata = field(default_factory=dict)
    source: str = "api"


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What became of one document."""

    id: str
    chunks: int
    replaced: bool
    classification: Classification
    tokens: int = 0  # word pieces embedded, for the embedding cost


# Makes a write's records from its results (ids, chunks, tokens) before the write commits.
RecordsFor = Callable[[list["IngestResult"]], ChangeRecords]
# Brings this process's copy and indexes up to a change seq: (tenant id, seq).
Refresh = Callable[[str, int], None]


class Ingestor:
    """Turns documents into stored, indexed chunks for one tenant at a time."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        refresh: Refresh,
        *,
        max_tokens: int = 256,
        sentences: Embedder | None = None,
    ) -> None:
        self.store, self.embedder, self.refresh = store, embedder, refresh
        self.max_tokens = max_tokens
        # With a model, also embed every chunk's sentences for the extractive answerer
        # (migration 0007): the questions' model, so sentence and question share its space.
        self.sentences = sentences

    def ingest(
        self,
        tenant: Tenant,
        documents: Sequence[DocumentInput],
        records: RecordsFor | None = None,
        *,
        max_classification: Classification | None = None,
    ) -> list[IngestResult]:
        """Store `documents` (same ids replaced) with their records; index them, then return.

        `records` is None only where no one is audited (tests, bench). `max_classification` is
        the writer's clearance: the store refuses (Conflict) a batch that would replace a
        document above it. None, for operator tools only, means no ceiling.
        """
        ids = [d.id or uuid.uuid4().hex for d in documents]
        if len(set(ids)) != len(ids):
            raise ValidationFailed("Two documents in the batch share an id; send each id once.")
        for n, doc_id in enumerate(ids):  # the API checks too; this covers every other caller
            if not is_valid_document_id(doc_id):
                raise ValidationFailed(
                    f"documents[{n}]: the id {doc_id[:200]!r} is not a valid document id: up to"
                    f" {DOCUMENT_ID_MAX_CHARS} letters, digits and ._:@- in /-separated segments,"
                    " starting with a letter or digit, with no empty or dot-only segment"
                )
        for n, given in enumerate(documents):
            if field_name := _holding_nul(given):
                # PostgreSQL text cannot hold NUL and SQLite can: refused on both stores, so a
                # batch never works in embedded mode and fails in distributed mode. (A NUL in
                # the text is dropped in _prepare: it is content, not a name.)
                raise ValidationFailed(f"documents[{n}]: the {field_name} holds a NUL character")
        existing = {i for i in ids if self._exists(tenant.id, i, max_classification)}
        prepared = [
            self._prepare(tenant, i, d, f"documents[{n}] ({i})")
            for n, (i, d) in enumerate(zip(ids, documents, strict=True))
        ]
        texts = [t for _, ts in prepared for t in ts]
        with span("ingest.embed", {"gen_ai.request.model": self.embedder.model_name}):
            vectors = (
                self.embedder.embed(texts) if texts else np.zeros((0, self.embedder.dimensions))
            )
        tokens = {doc.id: sum(map(self.embedder.count_tokens, ts)) for doc, ts in prepared}
        new_docs, offset = [], 0
        for doc, chunk_texts in prepared:
            count = len(chunk_texts)
            embedded = _with_vectors(doc, vectors[offset : offset + count])
            new_docs.append(self._with_sentences(embedded))
            offset += count
        results = [
            IngestResult(d.id, len(d.chunks), d.id in existing, d.classification, tokens[d.id])
            for d in new_docs
        ]
        with span("ingest.store"):
            seq = self.store.put_documents(
                tenant,
                new_docs,
                records(results) if records else None,
                max_classification=max_classification,
            )
        try:
            with span("ingest.index"):
                self.refresh(tenant.id, seq)
        except Exception as exc:  # durable already: the next search replays the change
            log.error("index_update_deferred", tenant_id=tenant.id, error=type(exc).__name__)
        return results

    def _exists(
        self, tenant_id: str, document_id: str, max_classification: Classification | None
    ) -> bool:
        try:
            self.store.get_document(tenant_id, document_id, max_classification=max_classification)
        except NotFound:
            return False
        return True

    def embed_document(
        self,
        tenant: Tenant,
        doc_id: str,
        doc: DocumentInput,
        *,
        between: Callable[[], None] | None = None,
        content_hash: str | None = None,
    ) -> tuple[NewDocument, IngestResult]:
        """One document chunked, classified and embedded, for `store_documents` (a job step).

        `between` is called before each text is embedded: background ingestion yields there
        to queries and renews its lease. ValidationFailed when there is nothing to index.
        `replaced` is not looked up (a job reports done or failed, not created or replaced).
        """
        record, texts = self._prepare(tenant, doc_id, doc, doc_id)
        rows = []
        with span("ingest.embed", {"gen_ai.request.model": self.embedder.model_name}):
            for text in texts:  # one text per call, as `ingest` embeds them
                if between is not None:
                    between()
                rows.append(self.embedder.embed([text]))
        vectors = np.vstack(rows) if rows else np.zeros((0, self.embedder.dimensions))
        tokens = sum(map(self.embedder.count_tokens, texts))
        stored = replace(record, embeddings=vectors, content_hash=content_hash)
        stored = self._with_sentences(stored, between)
        return stored, IngestResult(doc_id, len(texts), False, record.classification, tokens)

    def store_documents(
        self,
        tenant: Tenant,
        documents: Sequence[NewDocument],
        records: ChangeRecords | None,
        *,
        max_classification: Classification | None,
        index: bool = True,
    ) -> int:
        """Store embedded documents with their records, then index them; the change seq.

        `index=False` leaves the indexes to the caller (a job refreshes them every few
        seconds, not every batch: each refresh rewrites the tenant's vector snapshot) and to
        the next search, which replays what they miss.
        """
        with span("ingest.store"):
            seq = self.store.put_documents(
                tenant, documents, records, max_classification=max_classification
            )
        if not index:
            return seq
        try:
            with span("ingest.index"):
                self.refresh(tenant.id, seq)
        except Exception as exc:  # durable already: the next search replays the change
            log.error("index_update_deferred", tenant_id=tenant.id, error=type(exc).__name__)
        return seq

    def _with_sentences(
        self, doc: NewDocument, between: Callable[[], None] | None = None
    ) -> NewDocument:
        """`doc` with each chunk's sentence vectors, when this ingestor stores them.

        One chunk's sentences per call (`between` before each, as for chunks). Not counted as
        embedding tokens: the tokens billed are the document's, whatever the answerer keeps.
        """
        if self.sentences is None:
            return doc
        blobs: list[bytes | None] = []
        with span("ingest.embed_sentences", {"gen_ai.request.model": self.sentences.model_name}):
            for chunk in doc.chunks:
                texts = sentence_texts(chunk.text)
                if not texts:
                    blobs.append(None)
                    continue
                if between is not None:
                    between()
                blobs.append(sentence_blob(self.sentences.embed(texts)))
        return replace(doc, sentence_vectors=tuple(blobs))

    def _prepare(
        self, tenant: Tenant, doc_id: str, doc: DocumentInput, label: str
    ) -> tuple[NewDocument, list[str]]:
        given = doc.text.replace("\x00", "")
        labelled = auto_classify(
            AutoClassify(tenant.auto_classify),
            doc.classification,
            text=given,
            title=(doc.title or "").strip() or first_line_title(given, self.embedder.count_tokens),
            source=doc.source,
            metadata=doc.metadata,
        )
        title, text, classification = labelled.title, labelled.text, labelled.classification
        try:
            pieces = chunk_text(
                text,
                title=title,
                count_tokens=self.embedder.count_tokens,
                max_tokens=self.max_tokens,
            )
        except ValidationFailed as exc:
            raise ValidationFailed(f"{label}: {exc.message}") from None
        if not pieces:
            raise ValidationFailed(f"{label}: no text to index")
        chunks = [
            Chunk(
                tenant_id=tenant.id,
                document_id=doc_id,
                position=p.position,
                text=f"{p.heading}\n{p.text}" if p.heading else p.text,
                title=title,
                classification=classification,
                source=labelled.source,
                metadata=dict(labelled.metadata),
            )
            for p in pieces
        ]
        texts = [embedding_text(p, title) for p in pieces]
        record = NewDocument(
            id=doc_id,
            title=title,
            chunks=chunks,
            embeddings=np.zeros((0, 0)),
            classification=classification,
            source=labelled.source,
            metadata=dict(labelled.metadata),
        )
        return record, texts


def _with_vectors(doc: NewDocument, vectors: np.ndarray) -> NewDocument:
    return replace(doc, embeddings=vectors)


def _holding_nul(doc: DocumentInput) -> str | None:
    """The first field of `doc` (but its text) that holds a NUL character, or None."""
    if "\x00" in (doc.title or ""):
        return "title"
    if "\x00" in doc.source:
        return "source"
    for key, value in doc.metadata.items():
        if "\x00" in key or (isinstance(value, str) and "\x00" in value):
            return "metadata"
    return None
