"""Search itself, below the pipeline: used by /api/query, /api/search, evaluation and bench.

retriever.py   Retriever, SearchParams: both retrievers on the caller's tenant, fused, checked
fusion.py      score fusion (z-score, min-max, RRF): pure functions over ranked lists
indexes.py     the index factory: Tantivy + FAISS (embedded) or OpenSearch, with their sync
"""

from __future__ import annotations

from tenantrag.retrieval.retriever import MODES, LeakageHook, Retriever, SearchParams

__all__ = ["MODES", "LeakageHook", "Retriever", "SearchParams"]
