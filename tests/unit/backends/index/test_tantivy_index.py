"""TantivyKeywordIndex beyond the contract: many tenants, several readers of one folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenantrag.backends.keyword import plain_query, structured_query
from tenantrag.backends.keyword.tantivy import TantivyKeywordIndex
from tenantrag.models import Chunk, Classification

TOP = Classification.RESTRICTED


def chunk(tenant: str, rowid: int, text: str) -> Chunk:
    """A one-chunk document of `tenant`."""
    return Chunk(tenant, f"d{rowid}", 0, text, rowid=rowid)


def found(index: TantivyKeywordIndex, tenant: str, query: str) -> set[int]:
    """Rowids found for `query` in `tenant`."""
    return {h.rowid for h in index.search(tenant, query, limit=50, max_classification=TOP)}


def test_least_recently_used_tenants_are_closed(tmp_path: Path) -> None:
    """With room for three open tenants, twelve tenants all stay searchable and correct."""
    index = TantivyKeywordIndex(tmp_path, max_open=3)
    tenants = [f"tenant-{i:02d}" for i in range(12)]
    for i, tenant in enumerate(tenants):
        index.apply(tenant, [chunk(tenant, i, f"shared word{i}")], replace_documents=[], seq=i + 1)
        assert found(index, tenant, "shared") == {i}
    for i, tenant in reversed(list(enumerate(tenants))):
        assert found(index, tenant, "shared") == {i}
        assert index.applied_seq(tenant) == i + 1
        assert index.open_count() <= 3


def test_another_instance_sees_commits_replacements_and_drops(tmp_path: Path) -> None:
    """A second instance on the same folder (another worker) follows every commit and drop."""
    writer, reader = TantivyKeywordIndex(tmp_path), TantivyKeywordIndex(tmp_path)
    assert found(reader, "acme", "alpha") == set() and reader.applied_seq("acme") == 0
    writer.apply("acme", [chunk("acme", 1, "alpha")], replace_documents=[], seq=1)
    assert found(reader, "acme", "alpha") == {1} and reader.applied_seq("acme") == 1
    writer.apply("acme", [chunk("acme", 2, "beta")], replace_documents=["d1"], seq=2)
    assert found(reader, "acme", "alpha") == set() and found(reader, "acme", "beta") == {2}
    writer.drop("acme")
    assert found(reader, "acme", "beta") == set() and reader.applied_seq("acme") == 0
    writer.apply("acme", [chunk("acme", 3, "gamma")], replace_documents=[], seq=5)
    assert found(reader, "acme", "gamma") == {3} and reader.applied_seq("acme") == 5


@pytest.mark.parametrize("tenant", ["../escape", "a/b", "", "UPPER", "x"])
def test_malformed_tenant_ids_are_refused(tmp_path: Path, tenant: str) -> None:
    """A tenant id that is not well formed never becomes a path."""
    index = TantivyKeywordIndex(tmp_path)
    with pytest.raises(ValueError, match="tenant"):
        index.search(tenant, "x", limit=5, max_classification=TOP)
    with pytest.raises(ValueError, match="tenant"):
        index.apply(tenant, [], replace_documents=[], seq=1)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("apple", '"apple"'),
        ("red AND pie", '"red" AND "pie"'),
        ("apple -red", '"apple" -"red"'),
        ('-"red apple" pie', '-"red apple" "pie"'),
        ("-(a b) c", '-( "a" "b" ) "c"'),
        ("foo-bar", '"foo bar"'),
        ("AND OR", ""),
        ("-apple", ""),
        ("a AND OR b", '"a" OR "b"'),
        ("OR a AND", '"a"'),
        ("(a", '"a"'),
        ("a ( ) b", '"a" "b"'),
        ("*", ""),
        ("apple^3 pie~2", '"apple 3" "pie 2"'),
        ("tenant_id:globex", None),
        ('"unbalanced', None),
    ],
)
def test_structured_query_rendering(query: str, expected: str | None) -> None:
    """Users' operators survive; syntax that could reach fields or fail is repaired or refused."""
    assert structured_query(query) == expected


def test_plain_query_keeps_only_words() -> None:
    """The fallback is every word as a quoted term, capped in number; no words gives None."""
    assert plain_query("tenant_id:globex rowid:1") == '"tenant" "id" "globex" "rowid" "1"'
    assert plain_query("*** ::: ()") is None
    assert plain_query("w " * 1_000) == " ".join(['"w"'] * 64)
