"""Index names and the index templates of the two shared indexes (keyword and vector).

Each role has an alias (`<prefix>-keyword`, `<prefix>-vector`) over one backing index
(`...-000001`) created from a template, so a mapping change can be rolled out by reindexing into
`-000002` and moving the alias. All tenants share each index; every document is routed by its
tenant, so a tenant lives on one shard and an explicit refresh of that shard shows a whole
apply at once (see docs/opensearch.md). Automatic refresh is off for the same reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

Json = dict[str, Any]
Engine = Literal["lucene", "faiss"]

PREFIX_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,200}")
FIRST_GENERATION = "000001"


@dataclass(frozen=True, slots=True)
class Layout:
    """How the indexes are named and shaped."""

    prefix: str = "tenantrag"
    dimensions: int = 384
    shards: int = 1
    replicas: int = 1
    engine: Engine = "lucene"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 100

    def __post_init__(self) -> None:
        if not PREFIX_PATTERN.fullmatch(self.prefix):
            raise ValueError(f"not a usable index prefix: {self.prefix!r}")
        if self.dimensions < 1:
            raise ValueError("dimensions must be positive")

    def alias(self, role: str) -> str:
        """The alias every request of `role` ("keyword" or "vector") goes to."""
        return f"{self.prefix}-{role}"

    def backing_index(self, role: str) -> str:
        """The first concrete index behind the alias."""
        return f"{self.prefix}-{role}-{FIRST_GENERATION}"

    def template_name(self, role: str) -> str:
        """The index template's name."""
        return f"{self.prefix}-{role}"

    def template(self, role: str) -> Json:
        """The PUT _index_template body for `role`."""
        index_settings: Json = {
            "number_of_shards": self.shards,
            "number_of_replicas": self.replicas,
            # Only our explicit refreshes (one per apply) make writes visible, so a searcher
            # never sees an apply's deletes without its additions.
            "refresh_interval": "-1",
        }
        if role == "vector":
            index_settings["knn"] = True
        return {
            "index_patterns": [f"{self.prefix}-{role}-*"],
            "priority": 100,
            "template": {
                "settings": {"index": index_settings},
                "mappings": self.mappings(role),
            },
        }

    def mappings(self, role: str) -> Json:
        """The field mappings of `role`'s index."""
        properties: Json = {
            "tenant_id": {"type": "keyword"},
            "document_id": {"type": "keyword"},  # long ids are stored as their SHA-256
            "rowid": {"type": "long"},
            "classification": {"type": "byte"},
            "seq": {"type": "long"},  # only on the per-tenant __seq__ record
        }
        if role == "keyword":
            properties |= {
                "title": {"type": "text", "analyzer": "english"},
                "text": {"type": "text", "analyzer": "english"},
                # `key=value` terms, normalised as in Tantivy (1 == 1.0, True != 1, long values
                # hashed): a flat_object field would keep values as strings and refuse terms
                # over Lucene's 32 KiB limit.
                "attrs": {"type": "keyword"},
            }
        elif role == "vector":
            properties["embedding"] = {
                "type": "knn_vector",
                "dimension": self.dimensions,
                "method": {
                    "name": "hnsw",
                    "space_type": "cosinesimil",
                    "engine": self.engine,
                    "parameters": {"m": self.hnsw_m, "ef_construction": self.hnsw_ef_construction},
                },
            }
        else:
            raise ValueError(f"unknown role {role!r}")
        return {"dynamic": "strict", "_routing": {"required": True}, "properties": properties}
