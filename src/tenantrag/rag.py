"""The retrieval side of one process: embedder, indexes and their sync, ingestion, retrieval."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tenantrag.backends import Embedder, KeywordIndex, VectorIndex
from tenantrag.backends.cache import Cache, make_key
from tenantrag.backends.embedding import build_embedder
from tenantrag.backends.embedding.cache import CachingEmbedder
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.backends.sync import IndexSync
from tenantrag.ingest.service import Ingestor
from tenantrag.models import Chunk
from tenantrag.observability import metrics
from tenantrag.observability.tracing import span
from tenantrag.pipeline.retrieve import Retriever
from tenantrag.settings import Settings


@dataclass
class Rag:
    """What ingestion and retrieval need, built once per process."""

    embedder: Embedder
    keyword: KeywordIndex
    vector: VectorIndex
    sync: IndexSync
    ingestor: Ingestor
    retriever: Retriever
    query_cache: CachingEmbedder
    shared_cache: Cache | None = None  # Redis in distributed mode: one embedding per worker fleet
    ttl_s: int = 3600

    async def embed_query(self, tenant: str, text: str) -> np.ndarray:
        """The query's vector: this process's LRU, then the shared cache, then the model.

        Every key is the tenant's: `{tenant}:` + a hash of the model, its size and the text.
        """
        cached = self.query_cache.lookup(tenant, text)
        metrics.CACHE.labels(
            cache="embeddings-local", result="miss" if cached is None else "hit"
        ).inc()
        if cached is not None:
            return cached
        key = make_key("embedding", self.embedder.model_name, str(self.embedder.dimensions), text)
        if self.shared_cache is not None:
            with span("cache.get", {"cache": self.shared_cache.name}):
                raw = await self.shared_cache.get(tenant, key)
            if raw is not None and len(raw) == 4 * self.embedder.dimensions:
                vector = np.frombuffer(raw, dtype=np.float32).copy()
                self.query_cache.remember(tenant, text, vector)
                return vector
        vector = await asyncio.to_thread(self.query_cache.inner.embed, [text])
        vector = np.asarray(vector[0], dtype=np.float32)
        self.query_cache.remember(tenant, text, vector)
        if self.shared_cache is not None:
            with span("cache.set", {"cache": self.shared_cache.name}):
                await self.shared_cache.set(tenant, key, vector.tobytes(), ttl_s=self.ttl_s)
        return vector


def build_indexes(settings: Settings, dimensions: int) -> tuple[KeywordIndex, VectorIndex]:
    """OpenSearch when configured, else the embedded engine's per-tenant Tantivy and FAISS."""
    if settings.search_backend == "opensearch":
        from tenantrag.backends.opensearch import OpenSearchIndex

        assert settings.opensearch_url is not None  # the settings validator makes sure
        index = OpenSearchIndex(
            settings.opensearch_url,
            dimensions=dimensions,
            ca_certs=settings.opensearch_ca_certs,
            tls_server_name=settings.opensearch_tls_server_name,
            index_prefix=settings.opensearch_index_prefix,
        )
        return index.keyword, index.vector
    from tenantrag.backends.keyword.tantivy import TantivyKeywordIndex
    from tenantrag.backends.vector.faiss import FaissVectorIndex

    root = settings.data_dir / "indexes"
    r = settings.retrieval
    keyword = TantivyKeywordIndex(root, max_open=r.max_open_tenants)
    vector = FaissVectorIndex(
        root, dimensions=dimensions, max_open=r.max_open_tenants,
        approximate_threshold=r.approximate_threshold,
    )  # fmt: skip
    return keyword, vector


def build_rag(
    settings: Settings,
    store: SQLiteStore,
    embedder: Embedder | None = None,
    on_leakage: Callable[[str, Chunk], None] | None = None,
    *,
    threads: int = 1,
    shared_cache: Cache | None = None,
) -> Rag:
    """Wire the retrieval side for `settings` over `store`.

    `threads` is onnxruntime's per-call thread count: 1 while serving (concurrent queries
    share the cores), all cores for a batch job such as the CLI's ingest.
    """
    embedder = embedder or build_embedder(
        settings.embedding, model_dir=settings.onnx_dir, threads=threads
    )
    keyword, vector = build_indexes(settings, embedder.dimensions)
    sync = IndexSync(store, keyword, vector)
    ingestor = Ingestor(store, embedder, sync, max_tokens=settings.embedding.max_tokens)
    retriever = Retriever(
        store, keyword, vector, sync, candidates=settings.retrieval.candidates,
        on_leakage=on_leakage,
    )  # fmt: skip
    return Rag(
        embedder, keyword, vector, sync, ingestor, retriever,
        CachingEmbedder(embedder, ttl_s=settings.cache_ttl_s), shared_cache, settings.cache_ttl_s,
    )  # fmt: skip
