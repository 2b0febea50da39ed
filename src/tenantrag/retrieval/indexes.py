"""The index factory: the keyword and vector indexes the settings name, kept current by one sync."""

from __future__ import annotations

from dataclasses import dataclass

from tenantrag.backends import KeywordIndex, VectorIndex
from tenantrag.backends.store import CorpusReader
from tenantrag.backends.sync import IndexSync
from tenantrag.settings import Settings


@dataclass(frozen=True, slots=True)
class Indexes:
    """A tenant-partitioned keyword index and vector index, and the sync that feeds both."""

    keyword: KeywordIndex
    vector: VectorIndex
    sync: IndexSync


def build_indexes(settings: Settings, store: CorpusReader, dimensions: int) -> Indexes:
    """OpenSearch when configured, else the embedded engine's per-tenant Tantivy and FAISS."""
    keyword, vector = _engines(settings, dimensions)
    sync = IndexSync(store, keyword, vector, lock_dir=settings.data_dir / "locks")
    return Indexes(keyword, vector, sync)


def _engines(settings: Settings, dimensions: int) -> tuple[KeywordIndex, VectorIndex]:
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
        root,
        dimensions=dimensions,
        max_open=r.max_open_tenants,
        approximate_threshold=r.approximate_threshold,
    )
    return keyword, vector
