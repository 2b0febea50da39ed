"""TantivyKeywordIndex's per-level indexes: which exist, what each holds, what writes touch them."""

from __future__ import annotations

from pathlib import Path

import pytest
import tantivy
from tests.unit.backends.index.index_helpers import document, make_sync

from tenantrag.backends.keyword import tantivy as tantivy_module
from tenantrag.backends.keyword.tantivy import TantivyKeywordIndex
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import Chunk, Classification, Tenant

PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED = Classification
ACME = "acme"
ACME_TENANT = Tenant(id=ACME)


def chunk(rowid: int, text: str, level: Classification, document: str | None = None) -> Chunk:
    """A chunk of acme at `level` (its own document unless `document` is given)."""
    return Chunk(ACME, document or f"d{rowid}", rowid, text, rowid=rowid, classification=level)


def found(index: TantivyKeywordIndex, query: str, ceiling: Classification) -> set[int]:
    """Rowids acme finds for `query` at clearance `ceiling`."""
    return {h.rowid for h in index.search(ACME, query, limit=50, max_classification=ceiling)}


def levels_on_disk(root: Path) -> list[str]:
    """The level folders of acme, by name."""
    return sorted(p.name for p in (root / ACME / "bm25-levels").iterdir() if p.is_dir())


def file_stamps(folder: Path) -> dict[str, int]:
    """Modification time of every file in `folder`."""
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_a_tenant_of_one_level_keeps_one_index(tmp_path: Path) -> None:
    """All chunks internal: only the internal index exists, and public callers find nothing."""
    index = TantivyKeywordIndex(tmp_path)
    index.apply(
        ACME,
        [chunk(1, "alpha", INTERNAL), chunk(2, "alpha beta", INTERNAL)],
        replace_documents=[],
        seq=1,
    )
    assert levels_on_disk(tmp_path) == ["1"]
    assert found(index, "alpha", PUBLIC) == set()
    for ceiling in (INTERNAL, CONFIDENTIAL, RESTRICTED):
        assert found(index, "alpha", ceiling) == {1, 2}


def test_new_levels_are_materialized_from_the_level_below(tmp_path: Path) -> None:
    """A first confidential chunk copies the internal index; a first public one starts empty."""
    index = TantivyKeywordIndex(tmp_path)
    index.apply(ACME, [chunk(1, "alpha", INTERNAL)], replace_documents=[], seq=1)
    index.apply(ACME, [chunk(2, "alpha", CONFIDENTIAL)], replace_documents=[], seq=2)
    assert levels_on_disk(tmp_path) == ["1", "2"]
    assert found(index, "alpha", INTERNAL) == {1}
    assert found(index, "alpha", CONFIDENTIAL) == found(index, "alpha", RESTRICTED) == {1, 2}
    index.apply(
        ACME,
        [chunk(3, "alpha", PUBLIC), chunk(4, "alpha", RESTRICTED)],
        replace_documents=[],
        seq=3,
    )
    assert levels_on_disk(tmp_path) == ["0", "1", "2", "3"]
    assert found(index, "alpha", PUBLIC) == {3}
    assert found(index, "alpha", INTERNAL) == {1, 3}
    assert found(index, "alpha", CONFIDENTIAL) == {1, 2, 3}
    assert found(index, "alpha", RESTRICTED) == {1, 2, 3, 4}
    assert index.applied_seq(ACME) == 3


def test_reclassifying_a_document_moves_it_between_levels(tmp_path: Path) -> None:
    """An internal document replaced as restricted leaves the internal index."""
    index = TantivyKeywordIndex(tmp_path)
    index.apply(ACME, [chunk(1, "alpha", INTERNAL, "doc")], replace_documents=[], seq=1)
    index.apply(ACME, [chunk(2, "alpha", RESTRICTED, "doc")], replace_documents=["doc"], seq=2)
    assert found(index, "alpha", CONFIDENTIAL) == set()
    assert found(index, "alpha", RESTRICTED) == {2}


def test_writes_above_a_level_never_touch_its_index(tmp_path: Path) -> None:
    """Adding, replacing and deleting restricted documents leaves the internal index's files as
    they were (Tantivy counts deleted documents until a merge, so a commit would show)."""
    index = TantivyKeywordIndex(tmp_path)
    index.apply(
        ACME,
        [chunk(1, "alpha", INTERNAL), chunk(2, "alpha", RESTRICTED)],
        replace_documents=[],
        seq=1,
    )
    internal = tmp_path / ACME / "bm25-levels" / "1"
    before = file_stamps(internal)
    index.apply(ACME, [chunk(3, "alpha beta", RESTRICTED, "d2")], replace_documents=["d2"], seq=2)
    index.apply(ACME, [], replace_documents=["d2", "never-existed"], seq=3)
    assert file_stamps(internal) == before
    assert index.applied_seq(ACME) == 3
    index.apply(ACME, [], replace_documents=["d1"], seq=4)  # now it changes what internal holds
    assert file_stamps(internal) != before
    assert found(index, "alpha", RESTRICTED) == set()


def test_a_failed_apply_keeps_the_old_seq_and_a_replay_heals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A level commit failing part-way leaves the seq where it was; repeating the apply works."""
    index = TantivyKeywordIndex(tmp_path)
    index.apply(ACME, [chunk(1, "alpha", PUBLIC)], replace_documents=[], seq=1)
    real = tantivy_module._commit_level
    calls: list[Path] = []

    def fail_second(folder: Path, *args: object) -> None:
        calls.append(folder)
        if len(calls) == 2:
            raise OSError("disk full")
        real(folder, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(tantivy_module, "_commit_level", fail_second)
    batch = [chunk(2, "alpha", PUBLIC, "d1"), chunk(3, "alpha", CONFIDENTIAL)]
    with pytest.raises(OSError, match="disk full"):
        index.apply(ACME, batch, replace_documents=["d1"], seq=2)
    assert index.applied_seq(ACME) == 1
    assert (tmp_path / ACME / "bm25-levels" / ".2.new").exists()  # the half-built level
    monkeypatch.setattr(tantivy_module, "_commit_level", real)
    index.apply(ACME, batch, replace_documents=["d1"], seq=2)
    assert index.applied_seq(ACME) == 2
    assert not (tmp_path / ACME / "bm25-levels" / ".2.new").exists()
    assert found(index, "alpha", PUBLIC) == {2}
    assert found(index, "alpha", RESTRICTED) == {2, 3}


def test_another_process_sees_new_levels_and_seqs(tmp_path: Path) -> None:
    """A second instance on the same folder follows materialized levels, commits and drops."""
    writer, reader = TantivyKeywordIndex(tmp_path), TantivyKeywordIndex(tmp_path)
    writer.apply(ACME, [chunk(1, "alpha", INTERNAL)], replace_documents=[], seq=1)
    assert found(reader, "alpha", RESTRICTED) == {1} and reader.applied_seq(ACME) == 1
    writer.apply(ACME, [chunk(2, "alpha", RESTRICTED)], replace_documents=[], seq=2)
    assert found(reader, "alpha", RESTRICTED) == {1, 2} and found(reader, "alpha", INTERNAL) == {1}
    assert reader.applied_seq(ACME) == 2
    writer.drop(ACME)
    assert found(reader, "alpha", RESTRICTED) == set() and reader.applied_seq(ACME) == 0


def _legacy_index(folder: Path) -> None:
    """An index as versions before the per-level layout wrote it: every level, a seq marker."""
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("rowid", fast=True)
    builder.add_text_field("tenant_id", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("text")
    builder.add_text_field("marker", tokenizer_name="raw", index_option="basic")
    builder.add_unsigned_field("seq", fast=True)
    schema = builder.build()
    folder.mkdir(parents=True)
    index = tantivy.Index(schema, path=str(folder))
    writer = index.writer(15_000_000, 1)
    writer.add_document(
        tantivy.Document.from_dict({"rowid": 1, "tenant_id": ACME, "text": "alpha"}, schema)
    )
    writer.add_document(tantivy.Document.from_dict({"marker": "applied_seq", "seq": 9}, schema))
    writer.commit()
    writer.wait_merging_threads()


def test_an_older_single_index_is_never_read_and_goes_at_the_rebuild(tmp_path: Path) -> None:
    """A pre-level folder reports seq 0 (so IndexSync replays) and serves no search."""
    _legacy_index(tmp_path / ACME / "bm25")
    index = TantivyKeywordIndex(tmp_path)
    assert index.applied_seq(ACME) == 0
    assert found(index, "alpha", RESTRICTED) == set()
    index.apply(ACME, [chunk(5, "alpha", INTERNAL)], replace_documents=[], seq=9)
    assert not (tmp_path / ACME / "bm25").exists()
    assert found(index, "alpha", RESTRICTED) == {5}


def test_index_sync_rebuilds_a_tenant_left_by_an_older_version(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """After an upgrade, the first ensure_current replays the store into level indexes."""
    seq = store.put_documents(
        ACME_TENANT,
        [document(ACME, "d1", "zebra"), document(ACME, "d2", "zebra", level=RESTRICTED)],
    )
    _legacy_index(tmp_path / "indexes" / ACME / "bm25")
    sync = make_sync(tmp_path, store)
    assert sync.ensure_current(ACME) == seq
    assert sync.keyword.applied_seq(ACME) == seq
    assert not (tmp_path / "indexes" / ACME / "bm25").exists()
    hits = sync.keyword.search(ACME, "zebra", limit=5, max_classification=INTERNAL)
    assert len(hits) == 1
