"""Helpers for the index tests: documents with deterministic vectors, stores and syncs."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from tenantrag.backends.keyword.tantivy import TantivyKeywordIndex
from tenantrag.backends.store.sqlite import NewDocument, SQLiteStore
from tenantrag.backends.sync import IndexSync
from tenantrag.backends.vector.faiss import FaissVectorIndex
from tenantrag.models import Chunk, Classification, Tenant

DIMS = 16


def vector_for(text: str) -> np.ndarray:
    """A unit vector that depends only on `text`."""
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    vector = rng.standard_normal(DIMS).astype(np.float32)
    return vector / np.linalg.norm(vector)


def document(
    tenant: str,
    document_id: str,
    *texts: str,
    level: Classification = Classification.INTERNAL,
) -> NewDocument:
    """A document of `tenant` with one chunk per text, each embedded by `vector_for`."""
    chunks = [
        Chunk(tenant, document_id, i, text, title=document_id, classification=level)
        for i, text in enumerate(texts)
    ]
    return NewDocument(
        id=document_id,
        title=document_id,
        chunks=chunks,
        embeddings=np.stack([vector_for(t) for t in texts]),
        classification=level,
    )


def make_store(path: Path, *tenants: str) -> SQLiteStore:
    """An open store at `path` knowing `tenants`."""
    store = SQLiteStore(path)
    store.open()
    for tenant in tenants:
        if store.get_tenant(tenant) is None:
            store.create_tenant(Tenant(id=tenant))
    return store


def make_sync(root: Path, store: SQLiteStore) -> IndexSync:
    """Tantivy and FAISS indexes under `root`, as one worker process holds them, and their sync."""
    keyword = TantivyKeywordIndex(root / "indexes")
    vector = FaissVectorIndex(root / "indexes", dimensions=DIMS)
    return IndexSync(store, keyword, vector, lock_dir=store.path.parent / "locks")
