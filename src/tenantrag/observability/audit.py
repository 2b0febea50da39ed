"""The audit chain: security events as hash-chained records in the store of record.

The record format and the hashing are backends/store/chain.py's; the stores append records in
one global order (SQLite's write lock, PostgreSQL's commit-order lock), a change's own record
inside the change's transaction. `Auditor` is how the service writes the others (queries,
searches, refusals): group-committed by one writer thread per process, and the caller waits
for its record's commit, so a request is never answered before its record is stored.

Values are redacted like logs (`scrub_record`, which the service gives its store): user ids,
resource ids (document and chunk ids, file names) and detail strings pass the PII redactor.

`verify` checks a chain, from the store (`tenantrag audit verify`) or from a JSON-lines export
(`tenantrag audit export`, `audit verify --path FILE`). See docs/audit.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import structlog

from tenantrag.backends.store.chain import (
    GENESIS,
    MAX_VALUE_CHARS,
    ZERO_HASH,
    Action,
    Head,
    Outcome,
    canonical_json,
    event_fields,
    line,
    record_hash,
)
from tenantrag.governance.pii import RedactionCache, Tally
from tenantrag.models import AuditEvent, Chunk, RequestIds
from tenantrag.observability import metrics

__all__ = [
    "MAX_VALUE_CHARS",
    "ZERO_HASH",
    "Action",
    "AuditChain",
    "Auditor",
    "Head",
    "Outcome",
    "VerifyResult",
    "canonical_json",
    "export",
    "parse_head",
    "record_hash",
    "scrub_record",
    "verify",
    "verify_command",
    "verify_records",
]
RECORD_KEYS: Final = frozenset(
    {"seq", "time", "tenant_id", "user_id", "action", "outcome", "resource_ids"}
    | {"request_id", "trace_id", "detail", "prev_hash", "hash"}
)
MAX_BATCH: Final = 500
log = structlog.get_logger("tenantrag.audit")


class AuditChain(Protocol):
    """Where records are chained and kept: the store of record."""

    def append_audit(
        self, events: Sequence[AuditEvent | Mapping[str, Any]], *, durable: bool = True
    ) -> list[dict[str, Any]]:
        """Chain and store records for `events` in one transaction."""
        ...

    def audit_head(self) -> Head:
        """The chain's last (seq, hash)."""
        ...

    def iter_audit(self, *, after: int = 0) -> Iterator[tuple[dict[str, Any] | str, str | None]]:
        """Every record in seq order, with its tenant_id column."""
        ...


_Item = tuple[dict[str, Any], "Future[None]"]


# The ids a search or query reads come back request after request: their scrubbing is kept,
# by tenant (a pure function of the text; counted every time all the same).
_SCRUBBED = RedactionCache()


def scrub_record(fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` with personal data redacted as the logs redact it (the store's `audit_scrub`).

    User ids (an identity provider's may be an email), resource ids (document ids, file names)
    and detail strings pass the redactor. Tenant ids, actions and outcomes are ours and
    patterned; request and trace ids are patterned too, and the request-id middleware never
    keeps a client's id that holds personal data, so they stay exactly as sent back.
    """
    out = dict(fields)
    tenant = str(out.get("tenant_id") or "")
    # A platform record (no tenant) is not kept: a cache's entries belong to a tenant.
    tally = Tally(_SCRUBBED, tenant) if tenant else Tally()
    if isinstance(out.get("user_id"), str):
        out["user_id"] = tally.text(out["user_id"])
    out["resource_ids"] = [tally.text(rid) for rid in out.get("resource_ids", ())]
    out["detail"] = {
        key: tally.text(value) if isinstance(value, str) else value
        for key, value in out.get("detail", {}).items()
    }
    metrics.count_redactions(tally.counts)
    return out


def _tell(future: Future[None], error: Exception | None = None) -> None:
    """Tell the caller its record's fate.

    A caller whose request was cancelled meanwhile (its client went away) cancelled the future:
    its record is written all the same, and the writer thread must not die for want of anyone
    to tell.
    """
    with contextlib.suppress(InvalidStateError):  # cancelled: nobody is waiting
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class Auditor:
    """The one way the service writes audit records of reads and refusals.

    Records are checked at once (a bad value raises ValueError in the caller, nothing written),
    then appended by a writer thread that commits everything queued meanwhile in one
    transaction. They commit without waiting for the database's disk (`durable=False`): a crash
    of the database host may lose the last fraction of a second of them, never a change's own
    record. A record that cannot be stored raises in the caller (loudly, never silently).
    """

    def __init__(self, chain: AuditChain) -> None:
        self.chain = chain
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def record(self, event: AuditEvent) -> None:
        """Store `event`'s record, blocking until it is committed."""
        self._submit(event).result()

    async def arecord(self, event: AuditEvent) -> None:
        """Store `event`'s record; the event loop runs on while it commits."""
        await asyncio.wrap_future(self._submit(event))

    def _submit(self, event: AuditEvent) -> Future[None]:
        future: Future[None] = Future()
        self._queue.put((event_fields(event), future))
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="audit-writer", daemon=True
                    )
                    self._thread.start()
        return future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[_Item]) -> None:
        try:
            self.chain.append_audit([fields for fields, _ in batch], durable=False)
        except Exception as exc:  # every waiting caller gets the error
            log.error("audit_write_failed", error=type(exc).__name__, records=len(batch))
            for _, future in batch:
                _tell(future, exc)
            return
        for _, future in batch:
            _tell(future)

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)

    def leakage(
        self, tenant_id: str, user_id: str | None, ids: RequestIds, chunk: Chunk, stage: str
    ) -> None:
        """A chunk of another tenant was caught and dropped at `stage`: count, log and record it.

        Bind the first three arguments per request to get a `retrieval.LeakageHook`.
        """
        metrics.LEAKAGE.labels(tenant=tenant_id).inc()
        log.error("cross_tenant_leakage", tenant_id=tenant_id, chunk_id=chunk.chunk_id, stage=stage)
        self.record(
            AuditEvent(
                "leakage",
                "denied",
                tenant_id,
                user_id,
                ids,
                (chunk.chunk_id,),
                {"owner_tenant": chunk.tenant_id, "stage": stage},
            )
        )


@dataclass(frozen=True)
class VerifyResult:
    """What `verify` found; `torn_lines` are entries that are not JSON records."""

    ok: bool
    records: int
    first_bad_line: int | None
    reason: str | None
    head: Head
    torn_lines: tuple[int, ...] = ()


def _chain_problem(record: object, prev: Head, anchored: Mapping[int, str]) -> str | None:
    """Why `record` cannot follow `prev` in the chain, or None when it can."""
    if not isinstance(record, dict) or record.keys() != RECORD_KEYS:
        return "not an audit record (its fields differ)"
    try:
        intact = record["hash"] == record_hash(record)
    except ValueError:  # NaN or Infinity, which the writers never write
        intact = False
    if not intact:
        return "hash mismatch: the record was edited"
    if record["seq"] != prev.seq + 1:
        return (
            f"seq {record['seq']} where {prev.seq + 1} was expected: "
            "a record was deleted, inserted or moved"
        )
    if record["prev_hash"] != prev.hash:
        return "prev_hash does not match the previous record's hash"
    wanted = anchored.get(record["seq"])
    if wanted is not None and record["hash"] != wanted:
        return (
            f"the record differs from the signed anchor of seq {record['seq']}:"
            " it or records before it were rewritten"
        )
    return None


# An entry to verify: the parsed record (or its raw text when it is not JSON) and, from the
# store, the tenant_id column that GET /api/audit filters on (None from a file).
Entry = tuple[dict[str, Any] | str, str | None]


def verify_records(
    entries: Iterable[Entry], *, expected_head: Head | None = None, anchors: Iterable[Head] = ()
) -> VerifyResult:
    """Check a chain given in seq order; against kept heads, truncation and rewrites show too.

    `expected_head` and `anchors` are heads the chain must hold: each anchored seq must be
    there with the anchored hash, and the chain must reach the highest. `first_bad_line`
    (1-based) is the position of the first entry that breaks the chain; when the chain holds
    but some entries are not JSON, it is the first of those.
    """
    heads = [*anchors, *([expected_head] if expected_head else [])]
    anchored = {h.seq: h.hash for h in heads}
    if len(anchored) < len(set(heads)):
        return VerifyResult(
            False, 0, None, "two anchors name different hashes for one seq", GENESIS
        )
    last_anchored = max(anchored, default=0)
    prev, torn, records, position = GENESIS, [], 0, 0
    bad: tuple[int, str] | None = None
    for position, (record, column) in enumerate(entries, start=1):
        if isinstance(record, str):
            torn.append(position)
            continue
        problem = _chain_problem(record, prev, anchored)
        if problem is None and column is not None and column != record.get("tenant_id"):
            problem = "the tenant_id column differs from the record: a record was moved"
        if problem is not None:
            bad = (position, problem)
            break
        prev, records = Head(record["seq"], record["hash"]), records + 1
    if bad is None and prev.seq < last_anchored:
        bad = (
            position + 1,
            f"the chain ends at seq {prev.seq}, the anchor at {last_anchored}: "
            "records were cut from the end",
        )
    if bad is not None:
        return VerifyResult(False, records, bad[0], bad[1], prev, tuple(torn))
    if torn:
        reason = f"{len(torn)} entries are not JSON records (interrupted writes?)"
        return VerifyResult(False, records, torn[0], reason, prev, tuple(torn))
    return VerifyResult(True, records, None, None, prev)


def _file_entries(path: Path) -> Iterator[Entry]:
    with path.open("rb") as stream:
        for raw in stream:
            try:
                record = json.loads(raw)
            except ValueError:
                yield raw.decode("utf-8", "replace"), None
                continue
            yield (record if isinstance(record, dict) else str(record)), None


def verify(
    path: Path, *, expected_head: Head | None = None, anchors: Iterable[Head] = ()
) -> VerifyResult:
    """Check a JSON-lines export of the chain (`tenantrag audit export`)."""
    if not path.exists():
        return VerifyResult(False, 0, None, f"no audit log at {path}", GENESIS)
    return verify_records(_file_entries(path), expected_head=expected_head, anchors=anchors)


def export(chain: AuditChain, path: Path) -> Head:
    """Write the whole chain to `path` as JSON lines (mode 0600); returns its head."""
    head = GENESIS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    with path.open("w", encoding="utf-8") as out:
        for record, _ in chain.iter_audit():
            if isinstance(record, str):
                out.write(record + "\n")
                continue
            out.write(line(record) + "\n")
            head = Head(record["seq"], record["hash"])
    return head


def parse_head(text: str) -> Head:
    """An anchor written as `SEQ:HASH` (as `verify_command` prints it)."""
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"an audit head looks like 42:<64 hex digits>, not {text!r}")
    return Head(int(seq), digest)


def verify_command(result: VerifyResult, where: str) -> int:
    """Print a one-line verdict on `result` (of the chain at `where`); exit code 0 or 1."""
    if result.ok:
        text = f"audit log OK: {result.records} records, head {result.head.seq}:{result.head.hash}"
    else:
        at = f" at record {result.first_bad_line}" if result.first_bad_line else ""
        text = f"audit log BROKEN{at}: {result.reason} ({result.records} good records before)"
    sys.stdout.write(f"{text} [{where}]\n")
    return 0 if result.ok else 1
