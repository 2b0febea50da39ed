"""OpenSearchIndex: the keyword and vector indexes of distributed mode, on one cluster.

One object owns the client; `.keyword` (a KeywordIndex over per-tenant, per-level indexes) and
`.vector` (a VectorIndex over one shared index) are thin adapters the app passes where the
embedded Tantivy and FAISS indexes go. The layout is told in mappings.py, an apply in core.py,
and both in docs/opensearch.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
from opensearchpy import OpenSearch

from tenantrag.backends import Filters
from tenantrag.backends.opensearch.core import LENIENT, IndexCore, chunk_id, seq_id
from tenantrag.backends.opensearch.mappings import Engine, Layout
from tenantrag.backends.opensearch.queries import cosine_from_score, keyword_body, knn_body
from tenantrag.backends.opensearch.transport import BulkWriter, build_client, index_operation
from tenantrag.backends.opensearch.writes import check_by_query, keyword_source, vector_source
from tenantrag.backends.vector import check_batch, unit_rows
from tenantrag.errors import UpstreamError
from tenantrag.models import Chunk, Classification, IndexHit, is_valid_tenant_id


class OpenSearchIndex(IndexCore):
    """Both search indexes on an OpenSearch cluster."""

    def __init__(
        self,
        client_or_url: OpenSearch | str,
        *,
        index_prefix: str = "tenantrag",
        dimensions: int = 384,
        ca_certs: str | Path | None = None,
        tls_server_name: str | None = None,
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
        plugin's demo certificates are self-signed); `tls_server_name` is the name the
        certificate must carry when it is not the URL's host (the demo certificate names only
        node-0.example.com and localhost). `shards` (of the vector index), `replicas` and
        `engine` apply when this creates the indexes; `ef_search` is the least number of
        candidates an HNSW search explores. A bulk item refused as overloaded is retried
        `max_attempts` times in all, `backoff_s` apart and doubling.
        """
        client = (
            client_or_url
            if isinstance(client_or_url, OpenSearch)
            else build_client(
                client_or_url,
                ca_certs=ca_certs,
                tls_server_name=tls_server_name,
                timeout_s=timeout_s,
            )
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
    """KeywordIndex (BM25) over the tenant's `<prefix>-keyword.<tenant>.<level>` indexes."""

    def __init__(self, core: IndexCore) -> None:
        self.core = core

    def apply(
        self, tenant: str, chunks: Sequence[Chunk], *, replace_documents: Sequence[str], seq: int
    ) -> None:
        """Drop every chunk of `replace_documents`, add `chunks`, refresh, then record `seq`.

        The tenant's indexes are refreshed first: a no-op after a clean apply, and after a
        failed one it makes its leftovers (deletes, chunks written but never shown) visible to
        this apply's delete, so nothing of it survives the replay.
        """
        _check_tenant(tenant, chunks)
        layout = self.core.layout
        every = layout.keyword_aliases(tenant, Classification.RESTRICTED)
        self.core.ensure(layout.state_alias, layout.state_body)
        try:
            for level in sorted({c.classification for c in chunks}):
                alias = layout.keyword_alias(tenant, level)
                self.core.ensure(alias, partial(layout.keyword_body, alias))
            self.core.refresh(every)
            if replace_documents:
                self.core.delete_documents(every, tenant, replace_documents)
            operations = [
                index_operation(
                    layout.keyword_alias(tenant, c.classification),
                    chunk_id(tenant, c.rowid),
                    tenant,
                    keyword_source(c),
                )
                for c in chunks
            ]
            self.core.write(operations, tenant, None)
            self.core.refresh(every)
        except Exception:
            self.core.forget(every)  # one may have been deleted under us: check again next time
            raise
        self.core.record(layout.state_alias, tenant, tenant, seq)

    def search(
        self,
        tenant: str,
        query: str,
        *,
        limit: int,
        max_classification: Classification,
        filters: Filters | None = None,
    ) -> list[IndexHit]:
        """The tenant's best chunks for `query` by BM25; a malformed query never raises.

        Only the indexes of levels up to the clearance are searched, with
        dfs_query_then_fetch so that BM25 uses their statistics summed, and only theirs.
        """
        _check_tenant(tenant)
        if limit <= 0:
            return []
        body = keyword_body(
            tenant, query, limit=limit, max_classification=max_classification, filters=filters
        )
        if body is None:
            return []
        indexes = self.core.layout.keyword_aliases(tenant, max_classification)
        params = LENIENT | {"search_type": "dfs_query_then_fetch"}
        return [IndexHit(r, s) for r, s in self.core.search(indexes, tenant, body, params=params)]

    def ping(self) -> bool:
        """True when the cluster answers and accepts our credentials (for /ready)."""
        return self.core.ping()

    def applied_seq(self, tenant: str) -> int:
        """The newest store change seq the tenant's keyword indexes show (0 when none)."""
        _check_tenant(tenant)
        return self.core.read_seq(self.core.layout.state_alias, tenant, tenant)

    def drop(self, tenant: str) -> None:
        """Delete the tenant's keyword indexes and its seq record."""
        _check_tenant(tenant)
        core = self.core
        aliases = core.layout.keyword_aliases(tenant, Classification.RESTRICTED)
        found = core.request(
            "finding a tenant's indexes",
            lambda: core.client.indices.get(index=",".join(aliases), params=LENIENT),
        )
        core.forget(aliases)
        if found:
            core.request(
                "deleting a tenant's indexes",
                lambda: core.client.indices.delete(index=",".join(sorted(found))),
            )
        core.request(
            "deleting a seq record",
            lambda: core.client.delete(
                index=core.layout.state_alias, id=tenant, routing=tenant, refresh=True
            ),
            missing=None,  # no record (404 "not_found"), or no state index yet
        )


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
        """Drop every chunk of `replace_documents`, add `chunks`, record `seq`; one refresh.

        The seq record shares the tenant's shard, so the refresh its write makes shows the
        deletes, the chunks and the seq together.
        """
        _check_tenant(tenant)
        check_batch(tenant, chunks, vectors)
        unit = unit_rows(vectors, self.core.dimensions)
        core, alias = self.core, self.core.layout.vector_alias
        operations = [
            index_operation(alias, chunk_id(tenant, c.rowid), tenant, vector_source(c, row))
            for c, row in zip(chunks, unit, strict=True)
        ]
        core.ensure(alias, core.layout.vector_body, check=core.check_width)
        try:
            if replace_documents:
                core.delete_documents([alias], tenant, replace_documents)
            core.write(operations, tenant, alias)
            core.record(alias, seq_id(tenant), tenant, seq)
        except Exception:
            core.forget([alias])
            raise

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
        hits = self.core.search([self.core.layout.vector_alias], tenant, body)
        return [IndexHit(r, min(1.0, max(-1.0, cosine_from_score(s)))) for r, s in hits]

    def applied_seq(self, tenant: str) -> int:
        """The newest store change seq the index shows for the tenant (0 when none)."""
        _check_tenant(tenant)
        return self.core.read_seq(self.core.layout.vector_alias, seq_id(tenant), tenant)

    def drop(self, tenant: str) -> None:
        """Delete the tenant's vectors and seq record, and refresh."""
        _check_tenant(tenant)
        response = self.core.request(
            "dropping a tenant",
            lambda: self.core.client.delete_by_query(
                index=self.core.layout.vector_alias,
                body={"query": {"bool": {"filter": [{"term": {"tenant_id": tenant}}]}}},
                routing=tenant,
                conflicts="proceed",
                refresh=True,
                request_timeout=self.core.write_timeout_s,
            ),
        )
        if response is not None and check_by_query(response, "dropping a tenant"):
            raise UpstreamError("OpenSearch skipped changed documents dropping a tenant; retry")
