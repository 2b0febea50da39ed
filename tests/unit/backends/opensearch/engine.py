"""The stand-in's model of an OpenSearch node: what it keeps, what it shows, how it matches.

Stands in for OpenSearch 2.19 where no cluster can run (see standin.py). Modelled after the
behaviour documented in OpenSearch's docs and source (docs/opensearch.md cites both):

- Each index keeps a *live* copy of its documents (what writes and realtime GETs see) and a
  *refreshed* copy (what searches, delete_by_query and `realtime=false` GETs see). Only a
  refresh (`_refresh`, or `refresh=true` on a write) copies live to refreshed; automatic
  refresh is off, as our indexes set it.
- Every write gives the document a new seq_no. delete_by_query deletes each document its query
  finds in the refreshed copy only if the live copy still has that seq_no (if_seq_no), else
  counts a version conflict (conflicts=proceed) or fails with them (the default, abort).
- Analysis follows the index's own `analysis` settings: a `pattern` tokenizer (Java's
  \\p{IsAlphabetic} read as the `regex` module's \\p{Alphabetic}), `length`, `lowercase`, `stop`
  with `_english_`, and `stemmer` with `porter2` (Snowball's English stemmer, from the
  snowballstemmer package). Anything else is refused, so a configuration we do not model fails
  loudly rather than matching wrongly.
- Queries: bool (must, should, must_not, filter, minimum_should_match), term, terms, range,
  match_phrase (positions, with the gaps stop words leave) and knn (matches nothing). Scores are
  Lucene's BM25 (k1 1.2, b 0.75, no (k1+1) factor; a phrase weighs the sum of its terms' idf),
  with statistics from each searched index alone, or summed over all of them for
  `dfs_query_then_fetch`. Simplified: exact field lengths (Lucene stores them lossily) and
  deleted documents leave the statistics at the next refresh (Lucene keeps them until a merge).
"""

from __future__ import annotations

import copy
import fnmatch
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import regex
import snowballstemmer  # type: ignore[import-untyped]  # no type hints shipped

from tenantrag.backends.keyword import ENGLISH_STOP_WORDS

Json = dict[str, Any]
K1, B = 1.2, 0.75


class Refused(Exception):
    """A request the node answers with an error: (status, type, reason)."""

    def __init__(self, status: int, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.kind, self.reason = status, kind, reason


@dataclass
class Doc:
    """One stored document."""

    source: Json
    seq_no: int
    routing: str | None


@dataclass
class Index:
    """One index: its creation body and its live and refreshed documents."""

    name: str
    body: Json
    live: dict[str, Doc] = field(default_factory=dict)
    refreshed: dict[str, Doc] = field(default_factory=dict)
    next_seq_no: int = 0
    refreshes: int = 0

    @property
    def mappings(self) -> Json:
        mappings: Json = self.body.get("mappings", {})
        return mappings

    @property
    def analysis(self) -> Json:
        settings = self.body.get("settings", {})
        analysis: Json = settings.get("index", settings).get("analysis", {})
        return analysis

    def write(self, doc_id: str, source: Json, routing: str | None) -> Doc:
        """Index (create or replace) a document in the live copy."""
        self._check(source, routing)
        doc = Doc(copy.deepcopy(source), self.next_seq_no, routing)
        self.next_seq_no += 1
        self.live[doc_id] = doc
        return doc

    def refresh(self) -> None:
        """Make the live copy searchable."""
        self.refreshed = dict(self.live)
        self.refreshes += 1

    def _check(self, source: Json, routing: str | None) -> None:
        if self.mappings.get("_routing", {}).get("required") and routing is None:
            raise Refused(
                400, "routing_missing_exception", f"routing is required for [{self.name}]"
            )
        if self.mappings.get("dynamic") == "strict":
            known = self.mappings.get("properties", {})
            for key in source:
                if key not in known:
                    raise Refused(
                        400,
                        "strict_dynamic_mapping_exception",
                        f"mapping set to strict, dynamic introduction of [{key}] within [_doc] "
                        "is not allowed",
                    )


@dataclass
class Node:
    """Indexes and aliases, and name resolution as OpenSearch does it."""

    indexes: dict[str, Index] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> index

    def resolve(self, expression: str, *, lenient: bool = False) -> list[Index]:
        """The indexes a comma-separated expression names (aliases and `*` wildcards allowed);
        names that match nothing are skipped when `lenient`, else refused."""
        found: dict[str, Index] = {}
        for name in [n for n in expression.split(",") if n]:
            if "*" in name:
                matched = fnmatch.filter([*self.indexes, *self.aliases], name)
                for match in matched:
                    index = self.index_of(match)
                    if index is not None:
                        found[index.name] = index
                continue
            index = self.index_of(name)
            if index is not None:
                found[index.name] = index
            elif not lenient:
                raise Refused(404, "index_not_found_exception", f"no such index [{name}]")
        return list(found.values())

    def index_of(self, name: str) -> Index | None:
        """The index called `name`, or the one the alias `name` points to."""
        if name in self.indexes:
            return self.indexes[name]
        target = self.aliases.get(name)
        return None if target is None else self.indexes.get(target)

    def create(self, name: str, body: Json) -> None:
        """Create an index with its body's settings, mappings and aliases."""
        if name in self.indexes or name in self.aliases:
            raise Refused(
                400, "resource_already_exists_exception", f"index [{name}/abc] already exists"
            )
        self.indexes[name] = Index(name, copy.deepcopy(body))
        Analyzers(self.indexes[name].analysis)  # refuse analysis we cannot model, at creation
        for alias in body.get("aliases", {}):
            self.aliases[alias] = name

    def delete(self, expression: str) -> None:
        """Delete concrete indexes; an alias name is refused, as OpenSearch refuses it."""
        for name in expression.split(","):
            if name in self.aliases:
                raise Refused(
                    400,
                    "illegal_argument_exception",
                    f"The provided expression [{name}] matches an alias, specify the "
                    "corresponding concrete indices instead.",
                )
        for index in self.resolve(expression):
            del self.indexes[index.name]
            self.aliases = {a: i for a, i in self.aliases.items() if i != index.name}


class Analyzers:
    """The custom analyzers an index defines, as token streams with positions."""

    def __init__(self, analysis: Json) -> None:
        self.analysis = analysis
        for name in analysis.get("analyzer", {}):
            self._chain(name)  # validates the whole definition

    def analyze(self, name: str, text: str) -> list[tuple[int, str]]:
        """(position, token) of `text` through the analyzer `name`; removed tokens leave gaps."""
        split, filters = self._chain(name)
        tokens = [(i, t) for i, t in enumerate(t for t in split(text) if t)]
        for step in filters:
            tokens = step(tokens)
        return tokens

    def _chain(self, name: str) -> tuple[Any, list[Any]]:
        if name == "keyword":
            return (lambda text: [text]), []
        definition = self.analysis.get("analyzer", {}).get(name)
        if definition is None or definition.get("type") != "custom":
            raise Refused(400, "illegal_argument_exception", f"analyzer [{name}] not modelled")
        tokenizer = self.analysis.get("tokenizer", {}).get(definition["tokenizer"], {})
        if tokenizer.get("type") != "pattern":
            raise Refused(400, "illegal_argument_exception", "only pattern tokenizers modelled")
        pattern = regex.compile(
            tokenizer["pattern"].replace("\\p{IsAlphabetic}", "\\p{Alphabetic}")
        )
        return pattern.split, [self._filter(f) for f in definition.get("filter", [])]

    def _filter(self, name: str) -> Any:
        spec = {"type": name} if name == "lowercase" else self.analysis["filter"][name]
        kind = spec["type"]
        if kind == "lowercase":
            return lambda tokens: [(p, t.lower()) for p, t in tokens]
        if kind == "length":
            low, high = spec.get("min", 0), spec.get("max", 2**31 - 1)
            # Lucene counts UTF-16 code units
            return lambda tokens: [
                (p, t) for p, t in tokens if low <= len(t.encode("utf-16-le")) // 2 <= high
            ]
        if kind == "stop" and spec.get("stopwords") == "_english_":
            return lambda tokens: [(p, t) for p, t in tokens if t not in ENGLISH_STOP_WORDS]
        if kind == "stemmer" and spec.get("language") == "porter2":
            stemmer = snowballstemmer.stemmer("english")
            return lambda tokens: [(p, stemmer.stemWord(t)) for p, t in tokens]
        raise Refused(400, "illegal_argument_exception", f"token filter {spec} not modelled")


@dataclass
class Stats:
    """BM25 statistics of one text field over a set of documents."""

    doc_count: int = 0
    total_terms: int = 0
    doc_freq: Counter[str] = field(default_factory=Counter)

    def add(self, tokens: list[tuple[int, str]]) -> None:
        if tokens:
            self.doc_count += 1
            self.total_terms += len(tokens)
            self.doc_freq.update({t for _, t in tokens})

    def idf(self, term: str) -> float:
        n = self.doc_freq.get(term, 0)
        return math.log(1 + (self.doc_count - n + 0.5) / (n + 0.5))


class Searcher:
    """Evaluates a query over some indexes' refreshed documents."""

    def __init__(self, indexes: list[Index], *, dfs: bool) -> None:
        self.indexes = indexes
        self.dfs = dfs
        self._tokens: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
        self._stats: dict[tuple[str, str], Stats] = {}

    def hits(self, query: Json) -> list[tuple[Index, str, float]]:
        """(index, id, score) of every refreshed document `query` matches."""
        found = []
        for index in self.indexes:
            for doc_id, doc in index.refreshed.items():
                score = self.score(query, index, doc_id, doc)
                if score is not None:
                    found.append((index, doc_id, score))
        return found

    def score(self, query: Json, index: Index, doc_id: str, doc: Doc) -> float | None:
        """The document's score for `query`, None when it does not match."""
        ((kind, spec),) = query.items()
        if kind == "bool":
            return self._bool(spec, index, doc_id, doc)
        if kind == "term":
            ((name, value),) = spec.items()
            return 0.0 if _scalar(value) in _values(doc.source.get(name)) else None
        if kind == "terms":
            ((name, values),) = spec.items()
            wanted = {_scalar(v) for v in values}
            return 0.0 if wanted & set(_values(doc.source.get(name))) else None
        if kind == "range":
            ((name, bounds),) = spec.items()
            return 0.0 if _in_range(doc.source.get(name), bounds) else None
        if kind == "match_phrase":
            ((name, phrase),) = spec.items()
            phrase = phrase if isinstance(phrase, dict) else {"query": phrase}
            return self._phrase(name, phrase, index, doc_id, doc)
        if kind == "knn":
            return None  # vector search is not modelled: scripted per test
        raise Refused(400, "parsing_exception", f"unknown query [{kind}]")

    def _bool(self, spec: Json, index: Index, doc_id: str, doc: Doc) -> float | None:
        total = 0.0
        for clause in spec.get("filter", []):
            if self.score(clause, index, doc_id, doc) is None:
                return None
        for clause in spec.get("must_not", []):
            if self.score(clause, index, doc_id, doc) is not None:
                return None
        for clause in spec.get("must", []):
            score = self.score(clause, index, doc_id, doc)
            if score is None:
                return None
            total += score
        should = [self.score(c, index, doc_id, doc) for c in spec.get("should", [])]
        matched = [s for s in should if s is not None]
        default = 0 if spec.get("must") or spec.get("filter") else 1
        if should and len(matched) < int(spec.get("minimum_should_match", default)):
            return None
        return total + sum(matched)

    def _phrase(self, name: str, phrase: Json, index: Index, doc_id: str, doc: Doc) -> float | None:
        analyzer = index.mappings["properties"][name].get("analyzer", "keyword")
        wanted = Analyzers(index.analysis).analyze(analyzer, phrase["query"])
        if not wanted:
            return None  # zero_terms_query: none
        tokens = self._analyzed(index, doc_id, name, doc)
        positions = {(p, t) for p, t in tokens}
        start = wanted[0][0]
        freq = sum(
            all((p + w - start, t) in positions for w, t in wanted)
            for p, first in tokens
            if first == wanted[0][1]
        )
        if not freq:
            return None
        stats = self._field_stats(index, name)
        idf = sum(stats.idf(t) for _, t in wanted)
        norm = K1 * (1 - B + B * len(tokens) / (stats.total_terms / stats.doc_count))
        return float(phrase.get("boost", 1.0)) * idf * freq / (freq + norm)

    def _analyzed(self, index: Index, doc_id: str, name: str, doc: Doc) -> list[tuple[int, str]]:
        key = (index.name, doc_id, name)
        if key not in self._tokens:
            analyzer = index.mappings["properties"][name].get("analyzer", "keyword")
            text = doc.source.get(name) or ""
            self._tokens[key] = Analyzers(index.analysis).analyze(analyzer, text) if text else []
        return self._tokens[key]

    def _field_stats(self, index: Index, name: str) -> Stats:
        """Statistics of `name` in this index alone, or in every searched index for DFS."""
        scope = self.indexes if self.dfs else [index]
        key = ("*" if self.dfs else index.name, name)
        if key not in self._stats:
            stats = Stats()
            for each in scope:
                for doc_id, doc in each.refreshed.items():
                    stats.add(self._analyzed(each, doc_id, name, doc))
            self._stats[key] = stats
        return self._stats[key]


def _scalar(value: Any) -> Any:
    return value["value"] if isinstance(value, dict) else value


def _values(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _in_range(value: Any, bounds: Json) -> bool:
    if value is None:
        return False
    checks = {
        "lte": value <= bounds.get("lte", value),
        "gte": value >= bounds.get("gte", value),
        "lt": "lt" not in bounds or value < bounds["lt"],
        "gt": "gt" not in bounds or value > bounds["gt"],
    }
    return all(checks.values())
