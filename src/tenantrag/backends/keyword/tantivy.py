"""BM25 search with Tantivy: one index folder per tenant, shared by every worker process.

Tantivy allows one writer per folder, so writes hold an exclusive flock on the tenant's lock
file. Each apply is one commit that also replaces the record holding the applied seq, so the
data and its seq change together and a document's old and new chunks never show together.
Other processes notice a commit by a stat of meta.json, which Tantivy replaces atomically.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import tantivy

from tenantrag.backends import Filters
from tenantrag.backends.keyword import plain_query, structured_query
from tenantrag.models import Chunk, Classification, IndexHit, MetadataValue, is_valid_tenant_id

SEQ_MARKER = "applied_seq"
# English stemming without stop words: "the" or "of" match nearly every chunk, and a query
# holding them must score nearly every chunk (the tenant and clearance clauses rule out pruning).
ANALYZER = "en_stem_stop"
TEXT_FIELDS = ["title", "text"]
# The title is also indexed at the head of the text field (as BEIR's BM25 reads "title text"),
# and the title field adds only a tie-breaking tenth on top: BM25 sums the two fields' scores,
# and a short title field saturates at once, so a higher weight lets the title outvote the text.
# On SciFact (train split, docs/benchmarks/quality.md) boost 2 without the title in the text gave
# BM25 nDCG@10 0.607; this gives 0.686.
FIELD_BOOSTS = {"title": 0.1}
WRITER_HEAP_BYTES = 50_000_000
MAX_RAW_TERM_CHARS = 1_000
TOP_LEVEL = max(Classification)


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("rowid", fast=True)
    builder.add_text_field("tenant_id", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("document_id", tokenizer_name="raw", index_option="basic")
    builder.add_unsigned_field("classification", indexed=True, fast=True)
    builder.add_text_field("title", tokenizer_name=ANALYZER)
    builder.add_text_field("text", tokenizer_name=ANALYZER)
    builder.add_text_field("attrs", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("marker", tokenizer_name="raw", index_option="basic")
    builder.add_unsigned_field("seq", fast=True)
    return builder.build()


SCHEMA = _schema()


def _analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stopword("english"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def _open_index(folder: Path, *, create: bool) -> tantivy.Index:
    """The index in `folder` (created when `create`), with our analyzer registered."""
    if create:
        index = tantivy.Index(SCHEMA, path=str(folder), reuse=True)
    else:
        index = tantivy.Index.open(str(folder))
    index.register_tokenizer(ANALYZER, _analyzer())
    return index


def raw_term(value: str) -> str:
    """`value` as an untokenized term; long values as their SHA-256.

    Tantivy drops terms of 64 KiB and more, which would make a long document id undeletable.
    """
    if len(value) <= MAX_RAW_TERM_CHARS:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def attribute_term(key: str, value: MetadataValue) -> str:
    """The indexed `key=value` term for one metadata pair; 1 and 1.0 match, True and 1 do not."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    return raw_term(f"{key}={text}")


@dataclass(eq=False)
class _Open:
    """A tenant's open index and the meta.json stamp its reader last loaded."""

    index: tantivy.Index
    folder_ino: int
    stamp: tuple[int, int, int] | None = None
    seq: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class TantivyKeywordIndex:
    """KeywordIndex over per-tenant Tantivy folders at root/<tenant>/bm25."""

    def __init__(self, root: Path, *, max_open: int = 256) -> None:
        self.root = root
        self.max_open = max_open
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._open_lock = threading.Lock()
        self._write_locks: dict[str, threading.Lock] = {}

    # -- reading -------------------------------------------------------------------------------

    def search(
        self,
        tenant: str,
        query: str,
        *,
        limit: int,
        max_classification: Classification,
        filters: Filters | None = None,
    ) -> list[IndexHit]:
        """The tenant's best chunks for `query` by BM25; a malformed query never raises."""
        entry = self._current(tenant)
        if entry is None or limit <= 0:
            return []
        user = _user_query(entry.index, query)
        if user is None:
            return []
        # The tenant, clearance and filters are Must clauses beside the user's query, never text
        # inside it, and score zero so BM25 scores stay those of the user's words. Each one costs
        # (a filtered query cannot skip low-scoring blocks), so the ceiling is left out when it is
        # the top level and so excludes nothing.
        guards = [tantivy.Query.term_query(SCHEMA, "tenant_id", tenant)]
        if max_classification < TOP_LEVEL:
            guards.append(
                tantivy.Query.range_query(
                    SCHEMA, "classification", tantivy.FieldType.Unsigned, 0, int(max_classification)
                )
            )
        guards += [
            tantivy.Query.term_query(SCHEMA, "attrs", attribute_term(k, v))
            for k, v in (filters or {}).items()
        ]
        clauses = [(tantivy.Occur.Must, user)] + [
            (tantivy.Occur.Must, tantivy.Query.const_score_query(g, 0.0)) for g in guards
        ]
        searcher = entry.index.searcher()
        hits = searcher.search(tantivy.Query.boolean_query(clauses), limit, count=False).hits
        rowids = searcher.fast_field_values("rowid", [address for _, address in hits])
        return [
            IndexHit(rowid=int(rowid), score=float(score))
            for (score, _), rowid in zip(hits, rowids, strict=True)
            if rowid is not None
        ]

    def applied_seq(self, tenant: str) -> int:
        """The newest store change seq committed to the tenant's index (0 when it has none)."""
        entry = self._current(tenant)
        return entry.seq if entry is not None else 0

    def open_count(self) -> int:
        """How many tenant indexes this process holds open."""
        return len(self._open)

    # -- writing -------------------------------------------------------------------------------

    def apply(
        self, tenant: str, chunks: Sequence[Chunk], *, replace_documents: Sequence[str], seq: int
    ) -> None:
        """In one commit: drop every chunk of `replace_documents`, add `chunks`, record `seq`."""
        for chunk in chunks:
            if chunk.tenant_id != tenant:
                raise ValueError(f"chunk of tenant {chunk.tenant_id!r} given for {tenant!r}")
        folder = self._folder(tenant)
        with self._writing(tenant):
            folder.mkdir(parents=True, exist_ok=True)
            index = _open_index(folder, create=True)
            writer = index.writer(WRITER_HEAP_BYTES, 1)
            try:
                for document_id in dict.fromkeys(replace_documents):
                    writer.delete_documents_by_term("document_id", raw_term(document_id))
                writer.delete_documents_by_term("marker", SEQ_MARKER)
                for chunk in chunks:
                    writer.add_document(_document(chunk))
                writer.add_document(
                    tantivy.Document.from_dict({"marker": SEQ_MARKER, "seq": seq}, SCHEMA)
                )
                writer.commit()
            except BaseException:
                writer.rollback()
                raise
            finally:
                # Ends the writer (and Tantivy's own lock) before our flock is released.
                writer.wait_merging_threads()

    def drop(self, tenant: str) -> None:
        """Delete the tenant's index folder."""
        folder = self._folder(tenant)
        with self._writing(tenant):
            self._forget(tenant)
            shutil.rmtree(folder, ignore_errors=True)

    # -- internals -----------------------------------------------------------------------------

    def _folder(self, tenant: str) -> Path:
        if not is_valid_tenant_id(tenant):
            raise ValueError(f"not a tenant id: {tenant!r}")
        return self.root / tenant / "bm25"

    @contextmanager
    def _writing(self, tenant: str) -> Iterator[None]:
        """Exclusive among this process's threads, then among processes (flock)."""
        with self._open_lock:
            local = self._write_locks.setdefault(tenant, threading.Lock())
        lock_path = self.root / tenant / "bm25.lock"
        with local:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    def _current(self, tenant: str) -> _Open | None:
        """The tenant's open index, reloaded if another writer committed since; None if absent."""
        folder = self._folder(tenant)
        try:
            folder_ino = os.stat(folder).st_ino
            meta = os.stat(folder / "meta.json")
        except FileNotFoundError:
            self._forget(tenant)
            return None
        stamp = (meta.st_ino, meta.st_mtime_ns, meta.st_size)
        entry = self._entry(tenant, folder, folder_ino)
        if entry is not None and entry.stamp != stamp:
            with entry.lock:
                if entry.stamp != stamp:
                    try:
                        entry.index.reload()
                    except ValueError:
                        self._forget(tenant)  # dropped by another process meanwhile
                        return None
                    entry.seq = _read_seq(entry.index)
                    entry.stamp = stamp
        return entry

    def _entry(self, tenant: str, folder: Path, folder_ino: int) -> _Open | None:
        with self._open_lock:
            entry = self._open.get(tenant)
            if entry is not None and entry.folder_ino == folder_ino:
                self._open.move_to_end(tenant)
                return entry
        try:
            index = _open_index(folder, create=False)
        except ValueError:
            return None  # created by another process this very moment; it has nothing yet
        index.config_reader("manual", 0)
        entry = _Open(index=index, folder_ino=folder_ino)
        with self._open_lock:
            self._open[tenant] = entry
            self._open.move_to_end(tenant)
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)
        return entry

    def _forget(self, tenant: str) -> None:
        with self._open_lock:
            self._open.pop(tenant, None)


def _document(chunk: Chunk) -> tantivy.Document:
    return tantivy.Document.from_dict(
        {
            "rowid": chunk.rowid,
            "tenant_id": chunk.tenant_id,
            "document_id": raw_term(chunk.document_id),
            "classification": int(chunk.classification),
            "title": chunk.title,
            "text": f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text,
            "attrs": [attribute_term(k, v) for k, v in chunk.metadata.items()],
        },
        SCHEMA,
    )


def _read_seq(index: tantivy.Index) -> int:
    searcher = index.searcher()
    marker = tantivy.Query.term_query(SCHEMA, "marker", SEQ_MARKER)
    hits = searcher.search(marker, 1, count=False).hits
    if not hits:
        return 0
    value = searcher.fast_field_values("seq", [hits[0][1]])[0]
    return int(value) if value is not None else 0


def _user_query(index: tantivy.Index, text: str) -> tantivy.Query | None:
    """The user's query over title and text; plain words when it cannot be read as structured."""
    structured = structured_query(text)
    if structured == "":
        return None  # only excluded words: nothing to look for
    for rendered in (structured, plain_query(text)):
        if rendered:
            try:
                return index.parse_query(rendered, TEXT_FIELDS, FIELD_BOOSTS)
            except ValueError:
                continue
    return None
