"""OpenSearchIndex: the keyword and vector indexes of distributed mode, on one cluster.

One object owns the client and the two shared indexes; `.keyword` (a KeywordIndex) and
`.vector` (a VectorIndex) are thin adapters the app passes where the embedded Tantivy and FAISS
indexes go. How an apply works is told in core.py and docs/opensearch.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from opensearchpy import OpenSearch

from tenantrag.backends import Filters
from tenantrag.backends.opensearch.core import IndexCore, chunk_id
from tenantrag.backends.opensearch.mappings import Engine, Layout
from tenantrag.backends.opensearch.queries import cosine_from_score, keyword_body, knn_body
from tenantrag.backends.opensearch.transport import BulkWriter, build_client, index_operation
from tenantrag.backends.opensearch.writes import keyword_source, vector_source
from tenantrag.backends.vector import check_batch, unit_rows
from tenantrag.models import Chunk, Classification, IndexHit, is_valid_tenant_id


class OpenSearchIndex(IndexCore):
    """Both search indexes on an OpenSearch cluster, shared by all tenants."""

    def __init__(
        self,
        client_or_url: OpenSearch | str,
        *,
        index_prefix: str = "tenantrag",
        dimensions: int = 384,
        ca_certs: str | Path | None = None,
        timeout_s: float = 10.0,
        write_timeout_s: float = 120.0,
        shards: int = 1,
        replicas: int = 1,
        engine: Engine = "lucene",
        ef_search: int = 100,
        max_attempts: int = 3,
        backoff_s: float = 0.5,
        bulk_max_bytes: int = 8_000_000,
    ) -> None:
        """Connect lazily to `client_or_url`; nothing is sent until the first call.

        `ca_certs` is the PEM file of the CA that signed the cluster's certificate (the security
        plugin's demo certificates are self-signed). `shards`, `replicas` and `engine` apply
        when this creates the indexes; `ef_search` is the least number of candidates an HNSW
        search explores. A bulk item refused as overloaded is retried `max_attempts` times in
        all, `backoff_s` apart and doubling.
        """
        client = (
            client_or_url
            if isinstance(client_or_url, OpenSearch)
            else build_client(client_or_url, ca_certs=ca_certs, timeout_s=timeout_s)
        )
        writer = BulkWriter(
            client,
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            max_bytes=bulk_max_bytes,
            timeout_s=write_timeout_s,
        )
        layout = Layout(index_prefix, dimensions, shards, replicas, engine)
        super().__init__(
            client,
            layout,
            writer,
            timeout_s=timeout_s,
            write_timeout_s=write_timeout_s,
            ef_search=ef_search,
        )
        self.keyword = OpenSearchKeywordIndex(self)
        self.vector = OpenSearchVectorIndex(self)

    def drop(self, tenant: str) -> None:
        """Forget everything of the tenant in both indexes."""
        self.keyword.drop(tenant)
        self.vector.drop(tenant)


def _check_tenant(tenant: str, chunks: Sequence[Chunk] = ()) -> None:
    if not is_valid_tenant_id(tenant):
        raise ValueError(f"not a tenant id: {tenant!r}")
    for chunk in chunks:
        if chunk.tenant_id != tenant:
            raise ValueError(f"chunk of tenant {chunk.tenant_id!r} given for {tenant!r}")


class OpenSearchKeywordIndex:
    """KeywordIndex (BM25, english analyzer) over the shared `<prefix>-keyword` index."""

    def __init__(self, core: IndexCore) -> None:
        self.core = core

    def apply(
        self, tenant: str, chunks: Sequence[Chunk], *, replace_documents: Sequence[str], seq: int
    ) -> None:
        """Drop every chunk of `replace_documents`, add `chunks`, record `seq`; one refresh."""
        _check_tenant(tenant, chunks)
        alias = self.core.layout.alias("keyword")
        operations = [
            index_operation(alias, chunk_id(tenant, c.rowid), tenant, keyword_source(c))
            for c in chunks
        ]
        self.core.replace("keyword", tenant, replace_documents, operations, seq)

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
        _check_tenant(tenant)
        if limit <= 0:
            return []
        body = keyword_body(
            tenant, query, limit=limit, max_classification=max_classification, filters=filters
        )
        if body is None:
            return []
        return [IndexHit(r, s) for r, s in self.core.search("keyword", tenant, body)]

    def applied_seq(self, tenant: str) -> int:
        """The newest store change seq the index shows for the tenant (0 when none)."""
        _check_tenant(tenant)
        return self.core.applied_seq("keyword", tenant)

    def drop(self, tenant: str) -> None:
        """Delete the tenant's chunks and seq record."""
        _check_tenant(tenant)
        self.core.drop_tenant("keyword", tenant)


class OpenSearchVectorIndex:
    """VectorIndex (HNSW, cosine) over the shared `<prefix>-vector` index."""

    def __init__(self, core: IndexCore) -> None:
        self.core = core

    def apply(
        self,
        tenant: str,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        *,
        replace_documents: Sequence[str],
        seq: int,
    ) -> None:
        """Drop every chunk of `replace_documents`, add `chunks`, record `seq`; one refresh."""
        _check_tenant(tenant)
        check_batch(tenant, chunks, vectors)
        unit = unit_rows(vectors, self.core.dimensions)
        alias = self.core.layout.alias("vector")
        operations = [
            index_operation(alias, chunk_id(tenant, c.rowid), tenant, vector_source(c, row))
            for c, row in zip(chunks, unit, strict=True)
        ]
        self.core.replace("vector", tenant, replace_documents, operations, seq)

    def search(
        self,
        tenant: str,
        vector: np.ndarray,
        *,
        limit: int,
        max_classification: Classification,
        allowed: Sequence[int] | None = None,
    ) -> list[IndexHit]:
        """The tenant's nearest chunks with their cosines, never above `max_classification`."""
        _check_tenant(tenant)
        query = unit_rows(vector, self.core.dimensions)[:1]
        if limit <= 0 or (allowed is not None and len(allowed) == 0) or not query.any():
            return []  # OpenSearch rejects a zero vector under cosinesimil; it matches nothing
        body = knn_body(
            tenant,
            query[0],
            limit=limit,
            max_classification=max_classification,
            allowed=allowed,
            ef_search=self.core.ef_search,
        )
        hits = self.core.search("vector", tenant, body)
        return [IndexHit(r, min(1.0, max(-1.0, cosine_from_score(s)))) for r, s in hits]

    def applied_seq(self, tenant: str) -> int:
        """The newest store change seq the index shows for the tenant (0 when none)."""
        _check_tenant(tenant)
        return self.core.applied_seq("vector", tenant)

    def drop(self, tenant: str) -> None:
        """Delete the tenant's vectors and seq record."""
        _check_tenant(tenant)
        self.core.drop_tenant("vector", tenant)
