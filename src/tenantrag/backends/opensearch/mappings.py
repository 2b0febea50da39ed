"""Index names, and the bodies that create the indexes (settings, analysis, mappings, alias).

Keyword: one index per tenant and classification level, `<prefix>-keyword.<tenant>.<level>`
(an alias over `...-000001`), made when the level's first chunk arrives. A search at clearance C
reads the tenant's indexes of levels 0..C with `dfs_query_then_fetch`, which scores with the
term and field statistics summed over exactly those indexes (docs/opensearch.md, "Statistics"):
no other tenant's text and nothing above the caller's clearance reaches a BM25 score.

Vector: one index shared by all tenants, `<prefix>-vector` (cosine has no corpus statistics),
every document routed by its tenant.

State: `<prefix>-state` holds one record per tenant with the keyword side's applied seq, apart
from the data so that writing it never touches a level index.

Each name is an alias over a backing index (`...-000001`), so a mapping change can be rolled out
by reindexing into `-000002` and moving the alias. Indexes are created with their whole body
(no index templates): the application then needs no cluster-level write permission.
Automatic refresh is off everywhere: only our explicit refreshes make writes visible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from tenantrag.backends.keyword import MAX_TOKEN_BYTES
from tenantrag.models import Classification, is_valid_tenant_id

Json = dict[str, Any]
Engine = Literal["lucene", "faiss"]

# Short enough that the longest keyword index name stays under OpenSearch's 255 bytes:
# prefix + "-keyword." + tenant (63) + "." + "confidential" + "-000001".
PREFIX_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
FIRST_GENERATION = "000001"
ANALYZER = "tenantrag_text"

# The analysis chain of the Tantivy index (backends/keyword/tantivy.py), step by step:
# - tokenizer: Tantivy's SimpleTokenizer splits on every char that is not char::is_alphanumeric
#   (Unicode Alphabetic, or general category Nd/Nl/No); Java's \p{IsAlphabetic} and \p{N} are
#   exactly those. The `english` analyzer's standard tokenizer kept `user_id` whole and its
#   possessive filter turned `company's` into `compani`, unlike our query sanitiser.
# - length: Tantivy drops tokens of 40 UTF-8 bytes or more; Lucene's length filter counts UTF-16
#   units, the same for ASCII (a non-ASCII word of 20 to 39 characters is kept here only).
# - lowercase, then the `_english_` stop words (Tantivy's English list is Lucene's list).
# - stemmer `porter2`: Lucene's Snowball EnglishStemmer, the algorithm of Tantivy's English
#   stemmer (rust-stemmers). `english` would be the older Porter stemmer.
ANALYSIS: Json = {
    "tokenizer": {
        "tenantrag_words": {"type": "pattern", "pattern": "[^\\p{IsAlphabetic}\\p{N}]+"},
    },
    "filter": {
        "tenantrag_length": {"type": "length", "max": MAX_TOKEN_BYTES - 1},
        "tenantrag_stop": {"type": "stop", "stopwords": "_english_"},
        "tenantrag_stemmer": {"type": "stemmer", "language": "porter2"},
    },
    "analyzer": {
        ANALYZER: {
            "type": "custom",
            "tokenizer": "tenantrag_words",
            "filter": ["tenantrag_length", "lowercase", "tenantrag_stop", "tenantrag_stemmer"],
        }
    },
}


@dataclass(frozen=True, slots=True)
class Layout:
    """How the indexes are named and shaped."""

    prefix: str = "tenantrag"
    dimensions: int = 384
    shards: int = 1  # of the shared vector index; a keyword level index has one shard
    replicas: int = 1
    engine: Engine = "lucene"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 100

    def __post_init__(self) -> None:
        if not PREFIX_PATTERN.fullmatch(self.prefix):
            raise ValueError(f"not a usable index prefix: {self.prefix!r}")
        if self.dimensions < 1:
            raise ValueError("dimensions must be positive")

    # -- names ---------------------------------------------------------------------------------

    def keyword_alias(self, tenant: str, level: Classification) -> str:
        """The alias of the tenant's keyword index for `level` (`.` never occurs in a tenant)."""
        if not is_valid_tenant_id(tenant):
            raise ValueError(f"not a tenant id: {tenant!r}")
        return f"{self.prefix}-keyword.{tenant}.{Classification(level).label}"

    def keyword_aliases(self, tenant: str, ceiling: Classification) -> list[str]:
        """The aliases of the tenant's keyword indexes a search at clearance `ceiling` reads."""
        return [self.keyword_alias(tenant, lv) for lv in Classification if lv <= ceiling]

    @property
    def state_alias(self) -> str:
        """The alias of the index holding each tenant's keyword seq."""
        return f"{self.prefix}-state"

    @property
    def vector_alias(self) -> str:
        """The alias of the shared vector index."""
        return f"{self.prefix}-vector"

    @staticmethod
    def backing(alias: str) -> str:
        """The first concrete index behind an alias."""
        return f"{alias}-{FIRST_GENERATION}"

    # -- bodies --------------------------------------------------------------------------------

    def keyword_body(self, alias: str) -> Json:
        """The PUT body of a keyword level index: one shard, our analyzer, the alias."""
        properties = _common_fields() | {
            "title": {"type": "text", "analyzer": ANALYZER},
            "text": {"type": "text", "analyzer": ANALYZER},
            # `key=value` terms, normalised as in Tantivy (1 == 1.0, True != 1, long values
            # hashed): a flat_object field would keep values as strings and refuse terms over
            # Lucene's 32 KiB limit.
            "attrs": {"type": "keyword"},
        }
        settings = self._settings(shards=1) | {"analysis": ANALYSIS}
        return self._body(alias, settings, properties)

    def state_body(self) -> Json:
        """The PUT body of the state index."""
        properties = {"tenant_id": {"type": "keyword"}, "seq": {"type": "long"}}
        return self._body(self.state_alias, self._settings(shards=1), properties)

    def vector_body(self) -> Json:
        """The PUT body of the shared vector index."""
        properties = _common_fields() | {
            "seq": {"type": "long"},  # only on the per-tenant __seq__ record
            "embedding": {
                "type": "knn_vector",
                "dimension": self.dimensions,
                "method": {
                    "name": "hnsw",
                    "space_type": "cosinesimil",
                    "engine": self.engine,
                    "parameters": {"m": self.hnsw_m, "ef_construction": self.hnsw_ef_construction},
                },
            },
        }
        settings = self._settings(shards=self.shards) | {"knn": True}
        return self._body(self.vector_alias, settings, properties)

    def _settings(self, *, shards: int) -> Json:
        return {
            "number_of_shards": shards,
            "number_of_replicas": self.replicas,
            # Only our explicit refreshes make writes visible, so a searcher never sees an
            # apply's deletes without its additions.
            "refresh_interval": "-1",
        }

    @staticmethod
    def _body(alias: str, settings: Json, properties: Json) -> Json:
        return {
            "settings": {"index": settings},
            "mappings": {
                "dynamic": "strict",
                "_routing": {"required": True},
                "properties": properties,
            },
            "aliases": {alias: {"is_write_index": True}},
        }


def _common_fields() -> Json:
    return {
        "tenant_id": {"type": "keyword"},
        "document_id": {"type": "keyword"},  # long ids are stored as their SHA-256
        "rowid": {"type": "long"},
        "classification": {"type": "byte"},
    }
