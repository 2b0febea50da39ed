"""BM25 search with Tantivy: per tenant, one cumulative index per classification level.

A search at clearance C reads one index holding exactly the chunks classified at or below C
(levels.py), so every BM25 statistic (document count, document frequency, average length) and
every tie between equal scores comes from what the caller may read: a restricted document can
neither change an internal user's scores nor crowd their chunks out of the top k. A level index
is written only when a change touches what it holds, so not even the number of writes to higher
levels reaches it (Tantivy counts deleted documents in its statistics until a merge).

Tantivy allows one writer per folder, so writes hold an exclusive flock on the tenant's lock
file. An apply commits each level index it changes (each commit atomic for that index's
readers), then records the seq in a file, so a crash part-way leaves the old seq and the next
replay repeats the whole apply. Other processes notice a commit by a stat of meta.json, which
Tantivy replaces atomically, and a new seq by a stat of the seq file.

Folders written by older versions (one index for every level) are never read: their tenant
reports seq 0, so IndexSync replays the tenant from the store into level indexes and the first
write of that replay deletes the old folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import structlog
import tantivy

from tenantrag.backends import Filters
from tenantrag.backends.keyword import MAX_TOKEN_BYTES, plain_query, structured_query
from tenantrag.backends.keyword.levels import LevelFolders
from tenantrag.models import Chunk, Classification, IndexHit, MetadataValue, is_valid_tenant_id

# English stemming and the Lucene English stop words (tantivy's Language::English list).
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

log = structlog.get_logger(__name__)


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("rowid", fast=True)
    builder.add_text_field("tenant_id", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("document_id", tokenizer_name="raw", index_option="basic")
    builder.add_unsigned_field("classification", indexed=True, fast=True)
    builder.add_text_field("title", tokenizer_name=ANALYZER)
    builder.add_text_field("text", tokenizer_name=ANALYZER)
    builder.add_text_field("attrs", tokenizer_name="raw", index_option="basic")
    return builder.build()


SCHEMA = _schema()


def _analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_BYTES))
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
    """One open level index and the meta.json stamp its reader last loaded."""

    index: tantivy.Index
    folder_ino: int
    stamp: tuple[int, int, int] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class TantivyKeywordIndex:
    """KeywordIndex over per-tenant, per-level Tantivy folders at root/<tenant>/bm25-levels/."""

    def __init__(self, root: Path, *, max_open: int = 256) -> None:
        self.root = root
        self.max_open = max_open  # open level indexes kept, across tenants
        self._open: OrderedDict[tuple[str, int], _Open] = OrderedDict()
        self._open_lock = threading.Lock()
        self._write_locks: dict[str, threading.Lock] = {}
        self._seqs: dict[str, tuple[tuple[int, int, int], int]] = {}

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
        folders = self._folders(tenant)
        level = folders.readable(int(max_classification))
        entry = None if level is None else self._current(tenant, level, folders)
        if entry is None or limit <= 0:
            return []
        user = _user_query(entry.index, query)
        if user is None:
            return []
        # The tenant and filters are Must clauses beside the user's query, never text inside it,
        # and score zero so BM25 scores stay those of the user's words. The clearance needs no
        # clause: this index holds nothing above it.
        guards = [tantivy.Query.term_query(SCHEMA, "tenant_id", tenant)]
        guards += [
            tantivy.Query.term_query(SCHEMA, "attrs", attribute_term(k, v))
            for k, v in (filters or {}).items()
        ]
        clauses = [(tantivy.Occur.Must, user)] + [
            (tantivy.Occur.Must, tantivy.Query.const_score_query(g, 0.0)) for g in guards
        ]
        searcher = entry.index.searcher()
        hits = searcher.search(tantivy.Query.boolean_query(clauses), limit, count=False).hits
        addresses = [address for _, address in hits]
        rowids = searcher.fast_field_values("rowid", addresses)
        levels = searcher.fast_field_values("classification", addresses)
        found = []
        for (score, _), rowid, chunk_level in zip(hits, rowids, levels, strict=True):
            if rowid is None or chunk_level is None or chunk_level > max_classification:
                # The level index makes this impossible; a bug here must not leak a chunk.
                log.error("keyword_level_leak_blocked", tenant_id=tenant, level=level)
                continue
            found.append(IndexHit(rowid=int(rowid), score=float(score)))
        return found

    def applied_seq(self, tenant: str) -> int:
        """The newest store change seq every level index of the tenant reflects (0 when none)."""
        folders = self._folders(tenant)
        stamp = folders.seq_stamp()
        if stamp is None:
            self._seqs.pop(tenant, None)
            return 0
        cached = self._seqs.get(tenant)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        seq = folders.read_seq()
        self._seqs[tenant] = (stamp, seq)
        return seq

    def open_count(self) -> int:
        """How many level indexes this process holds open."""
        return len(self._open)

    # -- writing -------------------------------------------------------------------------------

    def apply(
        self, tenant: str, chunks: Sequence[Chunk], *, replace_documents: Sequence[str], seq: int
    ) -> None:
        """Drop every chunk of `replace_documents`, add `chunks`, record `seq`.

        Each level index changes in one commit; the seq is recorded after all of them.
        """
        for chunk in chunks:
            if chunk.tenant_id != tenant:
                raise ValueError(f"chunk of tenant {chunk.tenant_id!r} given for {tenant!r}")
        folders = self._folders(tenant)
        replaced = [raw_term(d) for d in dict.fromkeys(replace_documents)]
        with self._writing(tenant):
            folders.root.mkdir(parents=True, exist_ok=True)
            folders.remove_leftovers()
            present = folders.present()
            # New levels are copied from the level below *before* any commit of this apply.
            staged = {
                level: folders.stage(level, present)
                for level in sorted({int(c.classification) for c in chunks} - set(present))
            }
            for level in sorted({*present, *staged}):
                mine = [c for c in chunks if c.classification <= level]
                _commit_level(staged.get(level) or folders.folder(level), mine, replaced)
            for level, folder in staged.items():
                folders.publish(level, folder)
            folders.write_seq(seq)

    def drop(self, tenant: str) -> None:
        """Delete every index folder of the tenant and its seq."""
        folders = self._folders(tenant)
        with self._writing(tenant):
            self._forget(tenant)
            folders.remove_all()

    # -- internals -----------------------------------------------------------------------------

    def _folders(self, tenant: str) -> LevelFolders:
        if not is_valid_tenant_id(tenant):
            raise ValueError(f"not a tenant id: {tenant!r}")
        return LevelFolders(self.root / tenant)

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

    def _current(self, tenant: str, level: int, folders: LevelFolders) -> _Open | None:
        """The open level index, reloaded if another writer committed since; None if absent."""
        folder = folders.folder(level)
        try:
            folder_ino = os.stat(folder).st_ino
            meta = os.stat(folder / "meta.json")
        except FileNotFoundError:
            self._forget(tenant)
            return None
        stamp = (meta.st_ino, meta.st_mtime_ns, meta.st_size)
        entry = self._entry((tenant, level), folder, folder_ino)
        if entry is not None and entry.stamp != stamp:
            with entry.lock:
                if entry.stamp != stamp:
                    try:
                        entry.index.reload()
                    except ValueError:
                        self._forget(tenant)  # dropped by another process meanwhile
                        return None
                    entry.stamp = stamp
        return entry

    def _entry(self, key: tuple[str, int], folder: Path, folder_ino: int) -> _Open | None:
        with self._open_lock:
            entry = self._open.get(key)
            if entry is not None and entry.folder_ino == folder_ino:
                self._open.move_to_end(key)
                return entry
        try:
            index = _open_index(folder, create=False)
        except ValueError:
            return None  # removed by another process this very moment
        index.config_reader("manual", 0)
        entry = _Open(index=index, folder_ino=folder_ino)
        with self._open_lock:
            self._open[key] = entry
            self._open.move_to_end(key)
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)
        return entry

    def _forget(self, tenant: str) -> None:
        with self._open_lock:
            for key in [k for k in self._open if k[0] == tenant]:
                del self._open[key]
        self._seqs.pop(tenant, None)


def _commit_level(folder: Path, chunks: Sequence[Chunk], replaced: Sequence[str]) -> None:
    """Delete `replaced` documents from the index in `folder` and add `chunks`, in one commit.

    Nothing is written (not even an empty commit) when neither changes what the index holds, so
    its segments, deleted-document counts and merges follow only its own level's history.
    """
    index = _open_index(folder, create=True)
    if not chunks and not _holds_any(index, replaced):
        return
    writer = index.writer(WRITER_HEAP_BYTES, 1)
    try:
        for document_id in replaced:
            writer.delete_documents_by_term("document_id", document_id)
        for chunk in chunks:
            writer.add_document(_document(chunk))
        writer.commit()
    except BaseException:
        writer.rollback()
        raise
    finally:
        # Ends the writer (and Tantivy's own lock) before our flock is released.
        writer.wait_merging_threads()


def _holds_any(index: tantivy.Index, document_ids: Sequence[str]) -> bool:
    """Whether a live chunk of any of `document_ids` is in the index."""
    if not document_ids:
        return False
    index.reload()
    terms = [
        (tantivy.Occur.Should, tantivy.Query.term_query(SCHEMA, "document_id", d))
        for d in document_ids
    ]
    found = index.searcher().search(tantivy.Query.boolean_query(terms), 1, count=False).hits
    return bool(found)


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
