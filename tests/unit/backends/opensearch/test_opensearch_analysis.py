"""The OpenSearch keyword index analyses and matches text as the Tantivy index does.

The analysis is read by the stand-in from the index body we send (engine.py interprets the
pattern tokenizer, length, lowercase, `_english_` stop and porter2 filters); Tantivy's side is
the real analyzer. A live cluster repeats the query comparisons in the contract suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.backends.opensearch.standin import OpenSearchStandIn

from tenantrag.backends.keyword.tantivy import TantivyKeywordIndex, _analyzer
from tenantrag.backends.opensearch import OpenSearchIndex
from tenantrag.backends.opensearch.mappings import ANALYZER
from tenantrag.models import Chunk, Classification

ACME = "acme"
TOP = Classification.RESTRICTED
TEXTS = [
    "user_id and company's policy",
    "The Running of the bulls; runs, ran, runner",
    "naïve café déjà-vu Straße ÉCOLE",
    "x² ½ ④ 3.14 v1.2 2024-01-02 e-mail foo@bar.com",
    "a" * 39 + " " + "b" * 40 + " " + "é" * 19 + " " + "é" * 20,
    "Generously generalized organizations' organizational operatives",
    "日本語のテキスト 中文 العربية русский текст",
    "it is not the end of this, or that; to be or not to be",
    "HTTP/2 TLS1.3 IPv6 COVID-19 mRNA-1273 IL-6",
]
CORPUS = [
    "the user_id field and the company's policy",
    "company policy for every user",
    "red apple pie with the best apples",
    "green apple",
    "pie apple red",
    "running shoes for runners",
    "the end of the story",
    "COVID-19 vaccines and mRNA-1273 trials",
    "IL-6 levels in patients",
    "naïve café owners",
]
QUERIES = [
    "user_id",
    "company's",
    "the AND apple",
    "apple AND the",
    "(the) AND pie",
    "the OR green",
    '"red the apple"',
    '"red of apple"',
    '"the end"',
    "-the apple",
    "running",
    "runs",
    "COVID-19",
    "mRNA-1273 OR IL-6",
    "naïve",
    "cafe",
    "apple -red",
    "(red OR green) AND -pie",
    "tenant_id:globex apple",
    "policy AND (user OR company)",
]


@pytest.fixture(scope="module")
def node() -> Iterator[OpenSearchStandIn]:
    """A stand-in holding acme's internal keyword index over CORPUS."""
    with OpenSearchStandIn() as standin:
        index = OpenSearchIndex(standin.url, index_prefix="tr", dimensions=4)
        index.keyword.apply(ACME, _chunks(), replace_documents=[], seq=1)
        index.close()
        yield standin


@pytest.fixture(scope="module")
def tantivy(tmp_path_factory: pytest.TempPathFactory) -> TantivyKeywordIndex:
    """The Tantivy index over CORPUS."""
    index = TantivyKeywordIndex(tmp_path_factory.mktemp("tantivy"))
    index.apply(ACME, _chunks(), replace_documents=[], seq=1)
    return index


def _chunks() -> list[Chunk]:
    return [Chunk(ACME, f"d{i}", 0, text, rowid=i + 1) for i, text in enumerate(CORPUS)]


def _opensearch_tokens(node: OpenSearchStandIn, text: str) -> list[str]:
    import httpx

    answer = httpx.post(
        f"{node.url}/tr-keyword.acme.internal/_analyze", json={"analyzer": ANALYZER, "text": text}
    )
    answer.raise_for_status()
    return [t["token"] for t in answer.json()["tokens"]]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_the_analyzer_tokenizes_as_tantivy_does(node: OpenSearchStandIn, text: str) -> None:
    """user_id splits, `company's` keeps `s`, stop words go, porter2 stems, as in Tantivy.

    One known difference: Tantivy drops tokens of 40 UTF-8 bytes or more, Lucene's length
    filter counts characters; non-ASCII tokens of 20 to 39 characters differ (last text).
    """
    expected = _analyzer().analyze(text)
    if "é" * 20 in text:
        expected = [*expected, "é" * 20]  # 40 bytes: dropped by Tantivy, kept by OpenSearch
    assert _opensearch_tokens(node, text) == expected


@pytest.mark.parametrize("query", QUERIES, ids=range(len(QUERIES)))
def test_queries_find_what_tantivy_finds(
    node: OpenSearchStandIn, tantivy: TantivyKeywordIndex, query: str
) -> None:
    """Operators, stop words inside AND and phrases, possessives, hyphens: the same chunks."""
    index = OpenSearchIndex(node.url, index_prefix="tr", dimensions=4)
    found = {h.rowid for h in index.keyword.search(ACME, query, limit=20, max_classification=TOP)}
    index.close()
    assert found == {h.rowid for h in tantivy.search(ACME, query, limit=20, max_classification=TOP)}


def test_the_title_weight_adds_to_a_phrase(tmp_path: Path) -> None:
    """A phrase in the title and the text outscores the same text without that title: the two
    fields' scores are summed (a dis_max, as simple_query_string builds, would ignore the title)."""
    chunks = [
        Chunk(ACME, "a", 0, "red apple pie", title="red apple", rowid=1),
        Chunk(ACME, "b", 0, "red apple pie", title="something else", rowid=2),
    ]
    with OpenSearchStandIn() as standin:
        index = OpenSearchIndex(standin.url, index_prefix="tr", dimensions=4)
        index.keyword.apply(ACME, chunks, replace_documents=[], seq=1)
        ours = index.keyword.search(ACME, '"red apple"', limit=5, max_classification=TOP)
        index.close()
    theirs = TantivyKeywordIndex(tmp_path)
    theirs.apply(ACME, chunks, replace_documents=[], seq=1)
    tantivy = theirs.search(ACME, '"red apple"', limit=5, max_classification=TOP)
    assert [h.rowid for h in ours] == [h.rowid for h in tantivy] == [1, 2]
    assert ours[0].score > ours[1].score
