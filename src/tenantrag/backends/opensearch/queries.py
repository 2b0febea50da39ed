"""The request bodies of OpenSearch searches: the user's words in, the tenant scope around.

Every search is `scoped`: a bool query whose `filter` holds the tenant term, the clearance
ceiling and the metadata terms, all built here from typed arguments. The user's text never
reaches those clauses. It is first reduced to the safe subset Tantivy also sees
(`tenantrag.backends.keyword`): quoted words, AND, OR, a leading `-` and parentheses. That
subset is turned into a bool tree here, with Lucene's classic meaning (`apple -red` is "apple,
but not red"), because a single query string with default_operator OR would read `apple -red` as
"apple, or anything without red". Each leaf is a `match_phrase` on the title and one on the
text: match_phrase reads its text as words only (no operators, fields, wildcards or regexes).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from tenantrag.backends import Filters
from tenantrag.backends.keyword import MAX_DEPTH, indexed_words, plain_query, structured_query
from tenantrag.backends.keyword.tantivy import FIELD_BOOSTS, attribute_term
from tenantrag.models import Classification

Json = dict[str, Any]

TITLE_BOOST = FIELD_BOOSTS["title"]

# As in the Tantivy index (backends/keyword/tantivy.py): the title is also at the head of the text
# field, and the title field adds only a tie-breaking tenth (boost 2 without the title in the
# text scored nDCG@10 0.607 against 0.685 on SciFact with Tantivy; docs/benchmarks/quality.md).
TEXT_FIELDS = ("title", "text")
VECTOR_FIELD = "embedding"
MAX_TERMS_PER_CLAUSE = 65_536  # index.max_terms_count, OpenSearch's default
_TOKEN = re.compile(r'-?"[^"]*"|-?\(|\)|\bAND\b|\bOR\b')


class _Empty(enum.Enum):
    """A clause with no words left after analysis (only stop words): Tantivy leaves it out."""

    ABSENT = enum.auto()


def scope_filters(
    tenant: str,
    max_classification: Classification,
    filters: Filters | None = None,
    allowed: Sequence[int] | None = None,
) -> list[Json]:
    """The filter clauses that confine a search to the tenant, the clearance and the filters."""
    clauses: list[Json] = [
        {"term": {"tenant_id": tenant}},
        {"range": {"classification": {"lte": int(max_classification)}}},
    ]
    clauses += [{"term": {"attrs": attribute_term(k, v)}} for k, v in (filters or {}).items()]
    if allowed is not None:
        ids = sorted({int(rowid) for rowid in allowed})
        parts = [
            {"terms": {"rowid": ids[i : i + MAX_TERMS_PER_CLAUSE]}}
            for i in range(0, len(ids), MAX_TERMS_PER_CLAUSE)
        ]
        clauses.append(parts[0] if len(parts) == 1 else {"bool": {"should": parts}})
    return clauses


def scoped(query: Json, guards: list[Json]) -> Json:
    """`query` inside a bool whose filter clauses (scored zero) are `guards`."""
    return {"bool": {"must": [query], "filter": guards}}


def keyword_body(
    tenant: str,
    text: str,
    *,
    limit: int,
    max_classification: Classification,
    filters: Filters | None,
) -> Json | None:
    """The _search body for a BM25 search, or None when the text has nothing to look for."""
    user = user_query(text)
    if user is None:
        return None
    guards = scope_filters(tenant, max_classification, filters)
    return {
        "size": limit,
        "_source": False,
        "track_total_hits": False,
        "query": scoped(user, guards),
    }


def knn_body(
    tenant: str,
    vector: np.ndarray,
    *,
    limit: int,
    max_classification: Classification,
    allowed: Sequence[int] | None,
    ef_search: int,
) -> Json:
    """The _search body for a filtered k-NN search of one unit vector.

    The scope goes into the knn `filter` (efficient filtering: chunks outside it are never
    candidates, so they cannot crowd permitted ones out of the top k) and, again, into the
    bool around it, so the same wrapper guards every query this backend sends.
    """
    guards = scope_filters(tenant, max_classification, allowed=allowed)
    knn = {
        VECTOR_FIELD: {
            "vector": [float(x) for x in vector],
            "k": limit,
            # Lucene explores max(k, ef_search) candidates; a small k alone would cost recall.
            "method_parameters": {"ef_search": max(limit, ef_search)},
            "filter": {"bool": {"filter": guards}},
        }
    }
    return {
        "size": limit,
        "_source": False,
        "track_total_hits": False,
        "query": scoped({"knn": knn}, guards),
    }


def cosine_from_score(score: float) -> float:
    """The cosine behind an OpenSearch cosinesimil score, which is (2 - (1 - cos)) / 2.

    https://docs.opensearch.org/latest/mappings/supported-field-types/knn-spaces/
    """
    return 2.0 * score - 1.0


def user_query(text: str) -> Json | None:
    """The user's text as a bool tree of phrase leaves; None when it can match nothing."""
    structured = structured_query(text)
    if structured == "":
        return None  # only excluded words: nothing to look for
    rendered = structured if structured is not None else plain_query(text)
    if rendered is None:
        return None
    tree = _Parser(_TOKEN.findall(rendered)).parse()
    return None if tree is _Empty.ABSENT else tree


def phrase(words: str) -> Json | _Empty:
    """A leaf: `words` as one phrase in the title (weighed 0.1) or in the text, scores summed.

    Tantivy's query parser makes a Should clause per default field and sums them; a
    multi-field phrase in simple_query_string or multi_match would be a dis_max (the best
    field only, so the title weight would do nothing). A phrase of stop words only is ABSENT.
    """
    if not indexed_words(words):
        return _Empty.ABSENT
    return {
        "bool": {
            "should": [
                {"match_phrase": {"title": {"query": words, "boost": TITLE_BOOST}}},
                {"match_phrase": {"text": {"query": words}}},
            ],
            "minimum_should_match": 1,
        }
    }


class _Parser:
    """Reads the safe query subset with Lucene's classic rules.

    AND makes both sides required, `-` prohibits, anything else is optional but at least one
    optional clause must match.
    """

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def parse(self) -> Json | None | _Empty:
        return self._group(0)

    def _group(self, depth: int) -> Json | None | _Empty:
        clauses: list[tuple[str, Json | None]] = []
        conjunction: str | None = None
        while self.pos < len(self.tokens):
            item = self.tokens[self.pos]
            self.pos += 1
            if item == ")":
                if depth > 0:
                    break
                continue  # a stray closer at the top (the sanitiser should leave none)
            if item in ("AND", "OR"):
                conjunction = item
                continue
            negated = item.startswith("-")
            body = item[1:] if negated else item
            query: Json | None | _Empty
            if body == "(":
                query = self._group(depth + 1) if depth < MAX_DEPTH else None
            else:
                query = phrase(body[1:-1]) if body[1:-1].strip() else None
            if query is _Empty.ABSENT:
                continue  # as if the clause were not there; a pending AND still applies
            if conjunction == "AND" and clauses and clauses[-1][0] == "should":
                clauses[-1] = ("must", clauses[-1][1])
            occur = "must_not" if negated else "must" if conjunction == "AND" else "should"
            clauses.append((occur, query))
            conjunction = None
        return _combine(clauses)


def _combine(clauses: list[tuple[str, Json | None]]) -> Json | None | _Empty:
    """One bool of `clauses`; None or ABSENT when it cannot be one.

    None (matches nothing) when no positive clause can match, ABSENT when there is no clause.

    A None clause is a group that matches nothing: required, it empties the whole group;
    optional or prohibited, it changes nothing.
    """
    if not clauses:
        return _Empty.ABSENT
    groups: dict[str, list[Json]] = {"must": [], "should": [], "must_not": []}
    for occur, query in clauses:
        if query is None:
            if occur == "must":
                return None
            continue
        groups[occur].append(query)
    if not groups["must"] and not groups["should"]:
        return None  # Lucene's purely negative query matches nothing
    if not groups["must_not"] and len(groups["must"]) + len(groups["should"]) == 1:
        return (groups["must"] or groups["should"])[0]
    out: Json = {name: queries for name, queries in groups.items() if queries}
    if not groups["must"]:
        out["minimum_should_match"] = 1
    return {"bool": out}
