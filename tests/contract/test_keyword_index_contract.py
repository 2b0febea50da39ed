"""The behaviour every KeywordIndex has: isolation, hostile queries, clearance, filters, atomicity.

Add an implementation by adding a case to `build`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tenantrag.backends import KeywordIndex
from tenantrag.backends.keyword.tantivy import TantivyKeywordIndex
from tenantrag.models import Chunk, Classification, Metadata

ACME, GLOBEX = "acme", "globex"
LEVELS = list(Classification)

HOSTILE_QUERIES = [
    "tenant_id:globex",
    "tenant_id:globex OR secret",
    "rowid:1",
    "rowid:[0 TO 999999]",
    "document_id:g1",
    "classification:3",
    "attrs:team=red",
    "title:secret",
    "*",
    "secret*",
    '"unbalanced secret',
    "((secret",
    "secret))",
    ")(",
    "AND OR",
    "AND",
    "secret AND OR",
    "NOT secret",
    "-secret",
    "- -",
    "secret^100",
    "secret~2",
    "/sec.*/",
    "secret IN [a b]",
    "{a TO b}",
    "\\",
    "",
    "   ",
    "\x00\x01\x1b[31msecret\x7f",
    "sec\u200bret \ufeff",
    "(" * 5000 + "secret" + ")" * 5000,
    "secret " * 20_000,
    "x" * 200_000,
    "🔥 secret 秘密 sécret",
]


def chunk(
    tenant: str,
    document: str,
    rowid: int,
    text: str,
    *,
    title: str = "",
    level: Classification = Classification.PUBLIC,
    metadata: Metadata | None = None,
) -> Chunk:
    """A chunk of `document` in `tenant` with the store rowid `rowid`."""
    return Chunk(
        tenant_id=tenant,
        document_id=document,
        position=rowid,
        text=text,
        title=title,
        classification=level,
        metadata=metadata or {},
        rowid=rowid,
    )


def rowids(hits: list) -> set[int]:  # type: ignore[type-arg]  # IndexHit lists of any index
    """The rowids of `hits`."""
    return {hit.rowid for hit in hits}


IMPLEMENTATIONS = ["tantivy"]


def build(implementation: str, folder: Path) -> KeywordIndex:
    """A new, empty index of `implementation` keeping its files under `folder`."""
    if implementation == "tantivy":
        return TantivyKeywordIndex(folder)
    raise AssertionError(implementation)


@pytest.fixture(params=IMPLEMENTATIONS)
def index(request: pytest.FixtureRequest, tmp_path: Path) -> KeywordIndex:
    """A fresh, empty index of each implementation."""
    return build(request.param, tmp_path / "indexes")


@pytest.fixture
def search(index: KeywordIndex) -> Callable[..., set[int]]:
    """Search with the highest clearance and return the rowids found."""

    def run(tenant: str, query: str, **kwargs: object) -> set[int]:
        kwargs.setdefault("max_classification", Classification.RESTRICTED)
        kwargs.setdefault("limit", 100)
        return rowids(index.search(tenant, query, **kwargs))  # type: ignore[arg-type]

    return run


def fill_two_tenants(index: KeywordIndex) -> tuple[set[int], set[int]]:
    """Give acme and globex chunks with the same words; returns each tenant's rowids."""
    words = "secret plan tenant_id rowid globex acme other"
    acme = [chunk(ACME, f"a{i}", i, f"{words} {i}", title="secret") for i in range(1, 6)]
    globex = [chunk(GLOBEX, f"g{i}", 100 + i, f"{words} {i}", title="secret") for i in range(1, 6)]
    index.apply(ACME, acme, replace_documents=[], seq=1)
    index.apply(GLOBEX, globex, replace_documents=[], seq=1)
    return {c.rowid for c in acme}, {c.rowid for c in globex}


@pytest.fixture
def two_tenants(index: KeywordIndex) -> tuple[set[int], set[int]]:
    """acme and globex hold the same words; returns each tenant's rowids."""
    return fill_two_tenants(index)


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[KeywordIndex, set[int]]:
    """One two-tenant index per implementation for the read-only tests; returns acme's rowids."""
    index = build(request.param, tmp_path_factory.mktemp("keyword"))
    return index, fill_two_tenants(index)[0]


def test_is_a_keyword_index(index: KeywordIndex) -> None:
    """The implementation satisfies the KeywordIndex protocol."""
    assert isinstance(index, KeywordIndex)


def test_tenants_never_see_each_others_chunks(
    search: Callable[..., set[int]], two_tenants: tuple[set[int], set[int]]
) -> None:
    """The same words in two tenants: each tenant finds exactly its own chunks."""
    acme, globex = two_tenants
    assert search(ACME, "secret plan") == acme
    assert search(GLOBEX, "secret plan") == globex
    assert search("initech", "secret plan") == set()


@pytest.mark.parametrize("query", HOSTILE_QUERIES, ids=range(len(HOSTILE_QUERIES)))
def test_hostile_query_never_errors_or_crosses_tenants(
    query: str, shared: tuple[KeywordIndex, set[int]]
) -> None:
    """Field names, wildcards, bad syntax, control characters, huge input: no error, no leak."""
    index, acme = shared
    for ceiling in (Classification.PUBLIC, Classification.RESTRICTED):
        hits = index.search(ACME, query, limit=50, max_classification=ceiling, filters=None)
        assert rowids(hits) <= acme


def test_field_names_are_read_as_words(shared: tuple[KeywordIndex, set[int]]) -> None:
    """`tenant_id:globex` is read as words: acme chunks saying "globex" match, globex chunks not."""
    index, acme = shared
    hits = index.search(
        ACME, "tenant_id:globex", limit=50, max_classification=Classification.PUBLIC
    )
    assert rowids(hits) == acme


def test_operators_and_phrases(index: KeywordIndex, search: Callable[..., set[int]]) -> None:
    """AND needs both words, OR either, -word excludes, and "a phrase" needs the words in order."""
    index.apply(
        ACME,
        [
            chunk(ACME, "d", 1, "red apple pie"),
            chunk(ACME, "d", 2, "green apple"),
            chunk(ACME, "d", 3, "pie apple red"),
            chunk(ACME, "d", 4, "banana"),
        ],
        replace_documents=[],
        seq=1,
    )
    assert search(ACME, "red AND pie") == {1, 3}
    assert search(ACME, "banana OR green") == {2, 4}
    assert search(ACME, "apple -red") == {2}
    assert search(ACME, '"red apple"') == {1}
    assert search(ACME, "(red OR green) AND -pie") == {2}
    assert search(ACME, "-apple") == set()


def test_words_are_stemmed(index: KeywordIndex, search: Callable[..., set[int]]) -> None:
    """English stemming: "running" finds a chunk that says "runs"."""
    index.apply(ACME, [chunk(ACME, "d", 1, "she runs daily")], replace_documents=[], seq=1)
    assert search(ACME, "running") == {1}


def test_title_outranks_text(index: KeywordIndex) -> None:
    """A word in the title scores higher than the same word in the text."""
    index.apply(
        ACME,
        [chunk(ACME, "a", 1, "other", title="zebra"), chunk(ACME, "b", 2, "zebra", title="other")],
        replace_documents=[],
        seq=1,
    )
    hits = index.search(ACME, "zebra", limit=5, max_classification=Classification.RESTRICTED)
    assert [hit.rowid for hit in hits] == [1, 2]
    assert hits[0].score > hits[1].score > 0


@pytest.mark.parametrize("ceiling", LEVELS)
def test_classification_ceiling(
    ceiling: Classification, index: KeywordIndex, search: Callable[..., set[int]]
) -> None:
    """A search never returns a chunk classified above the caller's clearance."""
    index.apply(
        ACME,
        [chunk(ACME, f"d{lv}", int(lv) + 1, "report", level=lv) for lv in LEVELS],
        replace_documents=[],
        seq=1,
    )
    assert search(ACME, "report", max_classification=ceiling) == set(range(1, int(ceiling) + 2))


def test_ceiling_filters_before_ranking(index: KeywordIndex) -> None:
    """Many better-matching restricted chunks do not crowd the permitted one out of the top k.

    Issue 15 item 2's crowd-out case at this layer: twenty restricted chunks that match better
    and one public chunk, top 3 at public clearance. Nothing after the index re-checks here, so
    only the index's own ceiling can return the public chunk.
    """
    restricted = [
        chunk(ACME, f"r{i}", i, "budget budget budget", level=Classification.RESTRICTED)
        for i in range(1, 21)
    ]
    public = chunk(ACME, "p", 99, "budget and many other words here")
    index.apply(ACME, [*restricted, public], replace_documents=[], seq=1)
    hits = index.search(ACME, "budget", limit=3, max_classification=Classification.PUBLIC)
    assert [hit.rowid for hit in hits] == [99]


@pytest.mark.parametrize("ceiling", LEVELS[:-1])
def test_no_level_above_the_ceiling_crowds_out(
    ceiling: Classification, index: KeywordIndex
) -> None:
    """Better matches at every level above the ceiling, written before and after, take no slot."""
    above = [lv for lv in LEVELS if lv > ceiling]
    first = [
        chunk(ACME, f"a{lv}{i}", 10 * lv + i, "budget " * 3, level=lv)
        for lv in above
        for i in range(5)
    ]
    mine = chunk(ACME, "mine", 99, "budget and many other words here", level=ceiling)
    later = [
        chunk(ACME, f"b{lv}{i}", 100 + 10 * lv + i, "budget budget", level=lv)
        for lv in above
        for i in range(5)
    ]
    index.apply(ACME, first, replace_documents=[], seq=1)
    index.apply(ACME, [mine], replace_documents=[], seq=2)
    index.apply(ACME, later, replace_documents=[], seq=3)
    hits = index.search(ACME, "budget", limit=3, max_classification=ceiling)
    assert [hit.rowid for hit in hits] == [99]


INTERNAL_TEXTS = [
    "quarterly budget review for the planted project",
    "budget planted planted twice here",
    "an unrelated note about lunch",
    "budget review",
    "budget review",  # ties: the order between equal scores must not move either
    "the planted word in a much longer chunk of internal text about budgets and reviews",
]
PUBLIC_TEXTS = ["public budget summary", "planted in public too"]
SIDE_CHANNEL_QUERIES = [
    "planted",
    "budget",
    "planted budget",
    '"planted project"',
    "planted AND review",
    "budget -planted",
    "(planted OR lunch) AND budget",
    "review",
]


def _world(index: KeywordIndex, tenant: str, restricted_text: str | None) -> None:
    """The same public and internal writes in `tenant`, with restricted documents interleaved
    (None: no restricted documents at all, their applies then carry nothing)."""
    public = [
        chunk(tenant, f"p{i}", 1 + i, t, level=Classification.PUBLIC)
        for i, t in enumerate(PUBLIC_TEXTS)
    ]
    internal = [
        chunk(
            tenant, f"i{i}", 10 + i, t, title="memo" if i % 2 else "", level=Classification.INTERNAL
        )
        for i, t in enumerate(INTERNAL_TEXTS)
    ]

    def restricted(first: int, count: int) -> list[Chunk]:
        if restricted_text is None:
            return []
        return [
            chunk(
                tenant, f"r{i}", 100 + i, f"{restricted_text} {i}", level=Classification.RESTRICTED
            )
            for i in range(first, first + count)
        ]

    index.apply(tenant, [*public, *restricted(0, 6)], replace_documents=[], seq=1)
    index.apply(tenant, internal[:3], replace_documents=[], seq=2)
    index.apply(tenant, restricted(6, 6), replace_documents=[], seq=3)
    index.apply(tenant, internal[3:], replace_documents=["r1", "r7"], seq=4)
    index.apply(tenant, restricted(1, 1), replace_documents=["r1", "r2", "r3"], seq=5)


def test_scores_depend_only_on_what_the_caller_may_read(index: KeywordIndex) -> None:
    """The clearance side channel (issue 15 item 1) is closed.

    An internal user plants a term and reads scores. Whether restricted documents hold that
    term, hold other words, or do not exist at all, every search at internal clearance and
    below returns byte-identical scores, the same hits in the same order and the same count.
    """
    worlds = {
        "world-none": None,
        "world-other": "quiet words only",
        "world-planted": "planted planted budget planted review",
    }
    for tenant, restricted_text in worlds.items():
        _world(index, tenant, restricted_text)
    for ceiling in (Classification.PUBLIC, Classification.INTERNAL):
        for query in SIDE_CHANNEL_QUERIES:
            for filters in (None, {}):
                seen = {
                    tenant: [
                        (hit.rowid, hit.score.hex())  # the exact float, not an approximation
                        for hit in index.search(
                            tenant, query, limit=50, max_classification=ceiling, filters=filters
                        )
                    ]
                    for tenant in worlds
                }
                assert seen["world-planted"] == seen["world-none"] == seen["world-other"], (
                    ceiling,
                    query,
                    seen,
                )
    planted = index.search(
        "world-planted", "planted", limit=50, max_classification=Classification.RESTRICTED
    )
    assert {hit.rowid for hit in planted} >= {100, 101}  # the restricted chunks are there


def test_metadata_filters(index: KeywordIndex, search: Callable[..., set[int]]) -> None:
    """Filters keep chunks whose metadata equals every given value (1 and 1.0 are equal)."""
    index.apply(
        ACME,
        [
            chunk(ACME, "a", 1, "policy", metadata={"team": "red", "year": 2024, "draft": False}),
            chunk(ACME, "b", 2, "policy", metadata={"team": "blue", "year": 2024}),
            chunk(ACME, "c", 3, "policy", metadata={"team": "red", "year": 2023, "draft": True}),
        ],
        replace_documents=[],
        seq=1,
    )
    assert search(ACME, "policy", filters={"team": "red"}) == {1, 3}
    assert search(ACME, "policy", filters={"team": "red", "year": 2024}) == {1}
    assert search(ACME, "policy", filters={"year": 2024.0}) == {1, 2}
    assert search(ACME, "policy", filters={"draft": True}) == {3}
    assert search(ACME, "policy", filters={"team": "green"}) == set()
    assert search(ACME, "policy", filters={}) == {1, 2, 3}


def test_replace_and_delete(index: KeywordIndex, search: Callable[..., set[int]]) -> None:
    """Replacing a document drops its old chunks; replacing it with nothing deletes it."""
    index.apply(
        ACME,
        [chunk(ACME, "d", 1, "alpha"), chunk(ACME, "e", 2, "alpha")],
        replace_documents=[],
        seq=1,
    )
    index.apply(ACME, [chunk(ACME, "d", 3, "beta")], replace_documents=["d"], seq=2)
    assert search(ACME, "alpha") == {2}
    assert search(ACME, "beta") == {3}
    index.apply(ACME, [], replace_documents=["d", "never-existed"], seq=3)
    assert search(ACME, "beta") == set()
    assert search(ACME, "alpha") == {2}


def test_replace_is_atomic_for_a_concurrent_searcher(index: KeywordIndex) -> None:
    """A searcher running during many replaces always sees exactly one version of the document."""
    seen: list[set[int]] = []
    done = threading.Event()

    def searcher() -> None:
        while not done.is_set():
            hits = index.search(ACME, "shared", limit=10, max_classification=Classification.PUBLIC)
            seen.append(rowids(hits))

    def version(n: int) -> list[Chunk]:
        return [
            chunk(ACME, "doc", 2 * n + 1, "shared words"),
            chunk(ACME, "doc", 2 * n + 2, "shared"),
        ]

    index.apply(ACME, version(0), replace_documents=[], seq=1)
    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        for n in range(1, 16):
            index.apply(ACME, version(n), replace_documents=["doc"], seq=n + 1)
    finally:
        done.set()
        thread.join()
    assert seen
    for found in seen:
        assert len(found) == 2 and min(found) % 2 == 1 and max(found) == min(found) + 1


def test_applied_seq_is_recorded(index: KeywordIndex) -> None:
    """applied_seq is 0 for an unknown tenant and then the seq of the latest apply."""
    assert index.applied_seq(ACME) == 0
    index.apply(ACME, [chunk(ACME, "d", 1, "x")], replace_documents=[], seq=7)
    index.apply(ACME, [], replace_documents=["d"], seq=9)
    assert index.applied_seq(ACME) == 9
    assert index.applied_seq(GLOBEX) == 0


def test_drop_forgets_only_that_tenant(
    index: KeywordIndex, search: Callable[..., set[int]], two_tenants: tuple[set[int], set[int]]
) -> None:
    """After drop the tenant has no chunks and seq 0; the other tenant is untouched."""
    _, globex = two_tenants
    index.drop(ACME)
    assert search(ACME, "secret") == set()
    assert index.applied_seq(ACME) == 0
    assert search(GLOBEX, "secret") == globex


def test_limit_and_order(index: KeywordIndex) -> None:
    """At most `limit` hits, best score first; a limit of 0 returns nothing."""
    index.apply(
        ACME,
        [chunk(ACME, f"d{i}", i, "word " * i + "filler " * (20 - i)) for i in range(1, 11)],
        replace_documents=[],
        seq=1,
    )
    hits = index.search(ACME, "word", limit=3, max_classification=Classification.PUBLIC)
    assert len(hits) == 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert index.search(ACME, "word", limit=0, max_classification=Classification.PUBLIC) == []


def test_rejects_another_tenants_chunk(index: KeywordIndex) -> None:
    """Applying a chunk tagged with another tenant raises rather than indexing it."""
    with pytest.raises(ValueError, match="tenant"):
        index.apply(ACME, [chunk(GLOBEX, "d", 1, "x")], replace_documents=[], seq=1)


def test_very_long_document_ids_and_values(
    index: KeywordIndex, search: Callable[..., set[int]]
) -> None:
    """A 100 kB document id can still be replaced, and a 100 kB metadata value still filtered on."""
    long_id, long_value = "d" * 100_000, "v" * 100_000
    index.apply(
        ACME,
        [
            chunk(ACME, long_id, 1, "lengthy", metadata={"k": long_value}),
            chunk(ACME, "short", 2, "lengthy"),
        ],
        replace_documents=[],
        seq=1,
    )
    assert search(ACME, "lengthy", filters={"k": long_value}) == {1}
    index.apply(ACME, [], replace_documents=[long_id], seq=2)
    assert search(ACME, "lengthy") == {2}
