"""OpenSearch as the keyword and vector index of distributed mode (docs/opensearch.md).

index = OpenSearchIndex("https://opensearch:9200", ca_certs="/etc/tenantrag/opensearch-ca.pem")
keyword, vector = index.keyword, index.vector  # where TantivyKeywordIndex and FAISS go
"""

from tenantrag.backends.opensearch.index import (
    OpenSearchIndex,
    OpenSearchKeywordIndex,
    OpenSearchVectorIndex,
)

__all__ = ["OpenSearchIndex", "OpenSearchKeywordIndex", "OpenSearchVectorIndex"]
