"""The audit chain: hash-chained records that show edits, deletions, insertions, reordering
and truncation, checked here through JSON-lines exports of a store's chain."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tenantrag.backends.store.chain import audit_fields
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import AuditEvent
from tenantrag.observability import audit
from tenantrag.observability.audit import (
    ZERO_HASH,
    Auditor,
    Head,
    event_fields,
    export,
    parse_head,
    record_hash,
    scrub_record,
    verify,
    verify_command,
)


class ExportedLog:
    """A store's audit chain and its JSON-lines export at `path`, rewritten after each append."""

    def __init__(self, folder: Path) -> None:
        self.store = SQLiteStore(folder / "tenantrag.db")
        self.store.open()
        self.path = folder / "audit" / "audit.jsonl"

    def record(self, **fields: Any) -> dict[str, Any]:
        (record,) = self.store.append_audit([audit_fields(**fields)])
        export(self.store, self.path)
        return record

    def head(self) -> Head:
        return self.store.audit_head()


def write(log: ExportedLog, n: int, *, tenant: str = "acme") -> list[dict[str, Any]]:
    """Append `n` query records and return them."""
    return [
        log.record(
            action="query",
            outcome="success",
            tenant_id=tenant,
            user_id="u1",
            request_id=f"req-{i}",
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            resource_ids=[f"doc-{i}#0", f"doc-{i}#1"],
            detail={"top_k": 5, "cached": False, "cost_usd": 0.0012},
        )
        for i in range(n)
    ]


def lines(path: Path) -> list[str]:
    """The file's lines, newlines kept."""
    return path.read_text().splitlines(keepends=True)


@pytest.fixture
def log(tmp_path: Path) -> ExportedLog:
    """A new store's chain, exported to a file (made on the first record)."""
    return ExportedLog(tmp_path)


class TestRecording:
    def test_records_form_a_verifiable_chain(self, log: ExportedLog) -> None:
        """Each record holds the previous hash and its own, starting from 64 zeros."""
        first, second, third = write(log, 3)
        assert first["prev_hash"] == ZERO_HASH
        assert (second["prev_hash"], third["prev_hash"]) == (first["hash"], second["hash"])
        assert [r["seq"] for r in (first, second, third)] == [1, 2, 3]
        assert all(record_hash(r) == r["hash"] for r in (first, second, third))
        assert verify(log.path) == verify(log.path, expected_head=log.head())
        result = verify(log.path)
        assert (result.ok, result.records, result.head) == (True, 3, Head(3, third["hash"]))

    def test_a_line_holds_exactly_the_record_returned(self, log: ExportedLog) -> None:
        """The stored line is the returned record, with an RFC 3339 UTC time."""
        (record,) = write(log, 1)
        stored = json.loads(lines(log.path)[0])
        assert stored == record
        assert list(stored) == [
            "seq",
            "time",
            "tenant_id",
            "user_id",
            "action",
            "outcome",
            "resource_ids",
            "request_id",
            "trace_id",
            "detail",
            "prev_hash",
            "hash",
        ]
        assert stored["time"].endswith("Z") and stored["time"][10] == "T"

    def test_head_of_an_empty_or_missing_log_is_zero(self, log: ExportedLog) -> None:
        """Before any record the head is (0, 64 zeros)."""
        assert log.head() == Head(0, ZERO_HASH)

    @pytest.mark.parametrize(
        "bad",
        [
            {"action": "exfiltrate"},
            {"outcome": "maybe"},
            {"detail": {"query": "x" * 201}},
            {"detail": {"chunk": {"text": "nested"}}},
            {"detail": {"Bad Key": 1}},
            {"detail": {"ratio": float("nan")}},
            {"resource_ids": ["c" * 201]},
            {"resource_ids": "doc-1"},
            {"user_id": "u" * 257},
        ],
    )
    def test_free_text_and_unknown_values_are_refused(
        self, log: ExportedLog, bad: dict[str, Any]
    ) -> None:
        """Long strings, nested values and unknown actions raise and write nothing."""
        fields: dict[str, Any] = {
            "action": "search",
            "outcome": "success",
            "tenant_id": "acme",
            "user_id": "u1",
            "request_id": "r",
            "trace_id": None,
        }
        with pytest.raises(ValueError):
            log.record(**{**fields, **bad})
        assert not log.path.exists()

    def test_a_value_of_exactly_the_limit_is_kept(self, log: ExportedLog) -> None:
        """A 200-character detail value is at the limit and is stored."""
        record = log.record(
            action="leakage",
            outcome="denied",
            tenant_id="acme",
            user_id=None,
            request_id=None,
            trace_id=None,
            detail={"pattern": "p" * 200},
        )
        assert record["detail"] == {"pattern": "p" * 200}

    async def test_auditor_appends_from_async_code_and_threads(self, log: ExportedLog) -> None:
        """The Auditor's writer thread commits records from async code and threads alike."""
        auditor = Auditor(log.store)
        event = AuditEvent("rate_limited", "denied", "acme", "u1")
        await auditor.arecord(event)
        auditor.record(event)
        auditor.close()
        export(log.store, log.path)
        assert (verify(log.path).ok, verify(log.path).records) == (True, 2)

    async def test_a_cancelled_caller_neither_loses_its_record_nor_stops_the_writer(
        self, log: ExportedLog
    ) -> None:
        """A request cancelled while its record waits (the client went away): the record is
        written, and the writer thread lives on for the next one."""
        auditor = Auditor(log.store)
        event = AuditEvent("rate_limited", "denied", "acme", "u1")
        gone: Future[None] = Future()
        assert gone.cancel()
        auditor._write([(event_fields(event), gone)])  # what the writer thread does next
        await asyncio.wait_for(auditor.arecord(event), timeout=10)
        auditor.close()
        export(log.store, log.path)
        assert (verify(log.path).ok, verify(log.path).records) == (True, 2)

    def test_a_bad_record_is_refused_in_the_caller(self, log: ExportedLog) -> None:
        """The Auditor checks a record before queueing it: the caller gets the ValueError."""
        auditor = Auditor(log.store)
        with pytest.raises(ValueError):
            auditor.record(AuditEvent("exfiltrate", "success", "acme", "u1"))
        auditor.close()
        assert log.head() == Head(0, ZERO_HASH)


class TestTamperDetection:
    def test_an_edited_field_is_caught_on_its_line(self, log: ExportedLog) -> None:
        """Changing one field without fixing the hash breaks that line's hash."""
        write(log, 4)
        text = lines(log.path)
        text[1] = text[1].replace('"acme"', '"globex"')
        log.path.write_text("".join(text))
        result = verify(log.path)
        assert (result.ok, result.first_bad_line, result.records) == (False, 2, 1)
        assert result.reason is not None and "hash mismatch" in result.reason

    def test_an_edit_with_a_recomputed_hash_is_caught_on_the_next_line(
        self, log: ExportedLog
    ) -> None:
        """Re-hashing an edited record breaks the next record's prev_hash."""
        write(log, 4)
        text = lines(log.path)
        record = json.loads(text[1])
        record["user_id"] = "someone-else"
        record["hash"] = record_hash(record)
        text[1] = json.dumps(record) + "\n"
        log.path.write_text("".join(text))
        result = verify(log.path)
        assert (result.ok, result.first_bad_line) == (False, 3)
        assert result.reason is not None and "prev_hash" in result.reason

    def test_a_deleted_line_is_caught_where_it_was(self, log: ExportedLog) -> None:
        """Removing a record leaves a seq gap on the line that took its place."""
        write(log, 4)
        text = lines(log.path)
        del text[1]
        log.path.write_text("".join(text))
        result = verify(log.path)
        assert (result.ok, result.first_bad_line) == (False, 2)
        assert result.reason is not None and "seq 3 where 2 was expected" in result.reason

    def test_swapped_lines_are_caught_at_the_first_of_them(self, log: ExportedLog) -> None:
        """Reordering two records breaks the sequence at the earlier line."""
        write(log, 4)
        text = lines(log.path)
        text[1], text[2] = text[2], text[1]
        log.path.write_text("".join(text))
        assert verify(log.path).first_bad_line == 2

    def test_a_naively_forged_line_is_caught_on_its_own_line(self, log: ExportedLog) -> None:
        """An inserted record with a made-up hash fails at the line where it was inserted."""
        records = write(log, 3)
        forged = {**records[1], "seq": 3, "prev_hash": records[1]["hash"], "hash": "f" * 64}
        text = lines(log.path)
        text.insert(2, json.dumps(forged) + "\n")
        log.path.write_text("".join(text))
        assert verify(log.path).first_bad_line == 3

    def test_a_well_forged_line_is_caught_on_the_line_after_it(self, log: ExportedLog) -> None:
        """A forged record with a valid hash and link still pushes the next seq out of place."""
        records = write(log, 3)
        forged = {**records[1], "seq": 3, "prev_hash": records[1]["hash"], "detail": {}}
        forged["hash"] = record_hash(forged)
        text = lines(log.path)
        text.insert(2, json.dumps(forged) + "\n")
        log.path.write_text("".join(text))
        result = verify(log.path)
        assert (result.first_bad_line, result.records) == (4, 3)

    def test_a_cut_tail_is_caught_only_with_an_anchor(self, log: ExportedLog) -> None:
        """Without an anchor a truncated log still verifies; with one, the cut shows."""
        write(log, 3)
        anchor = log.head()
        log.path.write_text("".join(lines(log.path)[:2]))
        assert verify(log.path).ok
        result = verify(log.path, expected_head=anchor)
        assert (result.ok, result.first_bad_line, result.records) == (False, 3, 2)
        assert result.reason is not None and "cut from the end" in result.reason

    def test_a_rewritten_tail_is_caught_by_the_anchor(self, log: ExportedLog) -> None:
        """A re-hashed last record is consistent with its chain but not with the anchor."""
        write(log, 3)
        anchor = log.head()
        text = lines(log.path)
        record = json.loads(text[2])
        record["outcome"] = "denied"
        record["hash"] = record_hash(record)
        text[2] = json.dumps(record) + "\n"
        log.path.write_text("".join(text))
        assert verify(log.path).ok
        assert verify(log.path, expected_head=anchor).first_bad_line == 3

    def test_an_older_anchor_still_verifies_a_longer_log(self, log: ExportedLog) -> None:
        """An anchor taken earlier matches its record even after more appends."""
        write(log, 2)
        anchor = log.head()
        write(log, 2)
        assert verify(log.path, expected_head=anchor).ok

    def test_a_missing_log_does_not_verify(self, tmp_path: Path) -> None:
        """A deleted audit file is reported, not taken as an empty log."""
        result = verify(tmp_path / "gone.jsonl")
        assert not result.ok and result.reason is not None and "no audit log" in result.reason


class TestVerifyCommand:
    def test_intact_log_prints_ok_and_its_head(
        self, log: ExportedLog, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit code 0 and one line naming the record count and the head to keep."""
        write(log, 2)
        assert verify_command(verify(log.path), str(log.path)) == 0
        out = capsys.readouterr().out
        assert out.count("\n") == 1
        assert out.startswith("audit log OK: 2 records, head 2:")
        assert parse_head(out.split("head ")[1].split()[0]) == log.head()

    def test_broken_log_prints_the_line_and_fails(
        self, log: ExportedLog, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit code 1 and the first bad line number."""
        write(log, 3)
        text = lines(log.path)
        log.path.write_text(text[0] + text[2])
        assert verify_command(verify(log.path), str(log.path)) == 1
        assert capsys.readouterr().out.startswith("audit log BROKEN at record 2:")

    def test_anchor_text_must_be_seq_and_hash(self) -> None:
        """An anchor in any other shape than SEQ:HASH is refused."""
        with pytest.raises(ValueError):
            parse_head("3:abc")


class TestAnchors:
    def test_every_anchor_given_is_checked(self, log: ExportedLog) -> None:
        """Several kept heads: each must match, and the chain must reach the highest."""
        records = write(log, 4)
        heads = [Head(r["seq"], r["hash"]) for r in records]
        assert verify(log.path, anchors=heads[1:3]).ok
        wrong = Head(2, "f" * 64)
        result = verify(log.path, anchors=[heads[3], wrong])
        assert (result.ok, result.first_bad_line) == (False, 2)
        assert result.reason is not None and "signed anchor of seq 2" in result.reason
        log.path.write_text("".join(lines(log.path)[:3]))
        result = verify(log.path, anchors=heads)
        assert result.reason is not None and "cut from the end" in result.reason

    def test_two_anchors_disagreeing_on_one_seq_fail(self, log: ExportedLog) -> None:
        """Two heads naming one seq with two hashes cannot both hold."""
        write(log, 2)
        result = verify(log.path, anchors=[Head(1, "a" * 64), Head(1, "b" * 64)])
        assert not result.ok and result.reason is not None and "different hashes" in result.reason


class TestScrub:
    def test_personal_data_is_redacted_like_in_logs(self) -> None:
        """User ids, resource ids and detail strings lose emails, phones, IPs and cards."""
        fields = audit_fields(
            action="ingest",
            outcome="success",
            tenant_id="acme",
            user_id="alice@example.com",
            request_id="0123456789abcdef",
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            resource_ids=["cv-of-bob@example.org", "doc-7#0"],
            detail={"filename": "call 415-555-0132 from 10.0.0.7.pdf", "top_k": 5},
        )
        scrubbed = scrub_record(fields)
        assert scrubbed["user_id"] == "[REDACTED_EMAIL]"
        assert scrubbed["resource_ids"] == ["[REDACTED_EMAIL]", "doc-7#0"]
        assert scrubbed["detail"] == {
            "filename": "call [REDACTED_PHONE] from [REDACTED_IP].pdf",
            "top_k": 5,
        }
        unchanged = ("tenant_id", "action", "outcome", "request_id", "trace_id")
        assert all(scrubbed[k] == fields[k] for k in unchanged)
        assert fields["user_id"] == "alice@example.com"  # the input is not modified

    def test_redactions_are_counted_every_time_even_when_kept(self) -> None:
        """A repeated record's scrubbing is kept, yet its redactions count again each time."""
        event = AuditEvent("search", "success", "acme", "dave@example.com")
        fields = event_fields(event) | {"resource_ids": ["call 415-555-0132.pdf"]}
        before = emails_and_phones()
        first, second = scrub_record(fields), scrub_record(fields)
        assert first == second and emails_and_phones() - before == 4

    def test_a_record_without_a_tenant_is_scrubbed_and_counted_too(self) -> None:
        """A platform record (no tenant) is redacted and counted like a tenant's, and its raw
        ids are not kept: a kept entry belongs to a tenant, whose erasure drops it."""
        fields = event_fields(AuditEvent("tenant_created", "success", None, "op@example.com"))
        before = emails_and_phones()
        assert scrub_record(fields)["user_id"] == "[REDACTED_EMAIL]"
        assert emails_and_phones() - before == 1
        assert "" not in audit._SCRUBBED.tenants()

    def test_a_store_with_the_scrub_chains_redacted_records(self, tmp_path: Path) -> None:
        """The stored record is the redacted one, and the chain over it verifies."""
        store = SQLiteStore(tmp_path / "tenantrag.db", audit_scrub=scrub_record)
        store.open()
        auditor = Auditor(store)
        auditor.record(AuditEvent("search", "success", "acme", "carol@example.com"))
        auditor.close()
        ((record, _),) = store.iter_audit()
        assert isinstance(record, dict) and record["user_id"] == "[REDACTED_EMAIL]"
        path = tmp_path / "export.jsonl"
        export(store, path)
        assert verify(path).ok and "carol" not in path.read_text()


def emails_and_phones() -> float:
    """How many emails and phones the redaction counter has counted."""
    return sum(
        REGISTRY.get_sample_value("tenantrag_pii_redactions_total", {"type": kind}) or 0.0
        for kind in ("email", "phone")
    )
