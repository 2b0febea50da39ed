"""The audit log: an append-only, hash-chained stream of JSON lines, one per security event.

Each record's `hash` is sha256 over its canonical JSON (without `hash`, with `prev_hash`), so
editing, deleting, inserting or reordering records breaks the chain. Several processes may
append to one file: each append holds an exclusive `flock` while it reads the tail and writes
its line. See docs/audit.md for the format and what verification can and cannot detect.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, NamedTuple

import structlog

from tenantrag.models import AuditEvent, Chunk, RequestIds
from tenantrag.observability import metrics

ZERO_HASH: Final = "0" * 64
MAX_VALUE_CHARS: Final = 200
MAX_DETAIL_KEYS: Final = 32
MAX_RESOURCE_IDS: Final = 1000
RECORD_KEYS: Final = frozenset(
    {"seq", "time", "tenant_id", "user_id", "action", "outcome", "resource_ids"}
    | {"request_id", "trace_id", "detail", "prev_hash", "hash"}
)
_DETAIL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TAIL_BLOCK = 8192

DetailValue = str | int | float | bool
log = structlog.get_logger("tenantrag.audit")


class Action(StrEnum):
    """What happened. Extend here; `record` refuses anything else."""

    QUERY = "query"
    SEARCH = "search"
    EMBEDDINGS = "embeddings"  # /v1/embeddings: counts only, never the texts
    INGEST = "ingest"
    DELETE = "delete"
    AUTH_FAILURE = "auth_failure"
    PERMISSION_DENIED = "permission_denied"
    RATE_LIMITED = "rate_limited"
    LEAKAGE = "leakage"
    TENANT_CREATED = "tenant_created"
    TENANT_SUSPENDED = "tenant_suspended"


class Outcome(StrEnum):
    """How it ended."""

    SUCCESS = "success"
    DENIED = "denied"
    FAILURE = "failure"
    ERROR = "error"


class Head(NamedTuple):
    """The last record's seq and hash: an anchor to keep elsewhere, so truncation shows."""

    seq: int
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    """What `verify` found; `torn_lines` are lines that are not JSON (interrupted writes)."""

    ok: bool
    records: int
    first_bad_line: int | None
    reason: str | None
    head: Head
    torn_lines: tuple[int, ...] = ()


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers: sorted keys, no spaces, UTF-8, `hash` left out."""
    body = {key: value for key, value in record.items() if key != "hash"}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 hex of the record's canonical JSON."""
    return hashlib.sha256(canonical_json(record)).hexdigest()


def _short(name: str, value: str | None) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > MAX_VALUE_CHARS):
        raise ValueError(f"audit {name} must be a string of at most {MAX_VALUE_CHARS} chars")
    return value


def _checked_detail(detail: Mapping[str, DetailValue] | None) -> dict[str, DetailValue]:
    """Only small scalars under identifier keys: the audit log never holds free text."""
    if not detail:
        return {}
    if len(detail) > MAX_DETAIL_KEYS:
        raise ValueError(f"audit detail has more than {MAX_DETAIL_KEYS} keys")
    for key, value in detail.items():
        if not isinstance(key, str) or not _DETAIL_KEY.match(key):
            raise ValueError(f"audit detail key {key!r} is not a lower_snake identifier")
        if isinstance(value, str):
            _short(f"detail[{key!r}]", value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"audit detail[{key!r}] is not a finite number")
        elif not isinstance(value, int | float):  # bool is an int
            raise ValueError(f"audit detail[{key!r}] must be str, int, float or bool")
    return dict(detail)


def _lines_from_end(fd: int) -> Iterator[bytes]:
    """The file's lines, last first, read backwards in blocks; the first is the unended tail."""
    pos = os.fstat(fd).st_size
    carry = b""
    while pos > 0:
        size = min(_TAIL_BLOCK, pos)
        pos -= size
        parts = (os.pread(fd, size, pos) + carry).split(b"\n")
        carry = parts[0]  # may continue in the block before this one
        yield from reversed(parts[1:])
    yield carry


def _as_link(line: bytes) -> Head | None:
    """The (seq, hash) of a line that parses as a record, else None."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    seq, digest = record.get("seq"), record.get("hash")
    if isinstance(seq, int) and isinstance(digest, str) and _HEX64.match(digest):
        return Head(seq, digest)
    return None


def _read_head(fd: int) -> Head:
    """The last record's link, skipping torn lines, so appends chain past a crash."""
    for line in _lines_from_end(fd):
        link = _as_link(line) if line.strip() else None
        if link is not None:
            return link
    return Head(0, ZERO_HASH)


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte; a short write is retried, so the disk's own error (ENOSPC) surfaces."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.EIO, "the audit log accepted no bytes")
        view = view[written:]


def _ends_with_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size == 0 or os.pread(fd, 1, size - 1) == b"\n"


class AuditLog:
    """Appends hash-chained JSON lines to `path`; safe across threads and processes."""

    def __init__(self, path: Path, *, fsync_interval_s: float = 0.0) -> None:
        """Open (lazily) the log at `path`.

        Args:
            path: the log file.
            fsync_interval_s: 0 syncs every record before `record` returns; a positive value
                leaves each record in the OS page cache (it survives a crash of this process)
                and a background thread syncs the file that often, trading a window of that
                length on power loss for one fsync per interval instead of one per request.
        """
        self.path = path
        self.fsync_interval_s = fsync_interval_s
        self._dirty = threading.Event()
        if fsync_interval_s > 0:
            threading.Thread(target=self._sync_loop, name="audit-fsync", daemon=True).start()

    def _sync_loop(self) -> None:
        while True:
            self._dirty.wait()
            time.sleep(self.fsync_interval_s)
            self._dirty.clear()
            self.sync()

    def sync(self) -> None:
        """Fsync the log now (used by the background thread and at shutdown)."""
        if not self.path.exists():
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)

    def record(
        self,
        *,
        action: str,
        outcome: str,
        tenant_id: str | None,
        user_id: str | None,
        request_id: str | None,
        trace_id: str | None,
        resource_ids: Sequence[str] = (),
        detail: Mapping[str, DetailValue] | None = None,
    ) -> dict[str, Any]:
        """Append one record (durably: fsync before returning) and return it.

        Raises:
            ValueError: an unknown action or outcome, an over-long value, or a detail value
                that is not a small scalar. Nothing is written then.
        """
        if isinstance(resource_ids, str) or len(resource_ids) > MAX_RESOURCE_IDS:
            raise ValueError(f"resource_ids must be a list of at most {MAX_RESOURCE_IDS} ids")
        fields: dict[str, Any] = {
            "tenant_id": _short("tenant_id", tenant_id),
            "user_id": _short("user_id", user_id),
            "action": Action(action).value,
            "outcome": Outcome(outcome).value,
            "resource_ids": [_short("resource id", rid) for rid in resource_ids],
            "request_id": _short("request_id", request_id),
            "trace_id": _short("trace_id", trace_id),
            "detail": _checked_detail(detail),
        }
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            head = _read_head(fd)
            record = {
                "seq": head.seq + 1,
                "time": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                **fields,
                "prev_hash": head.hash,
            }
            record["hash"] = record_hash(record)
            line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
            # After a torn write the file ends mid-line; start ours on a fresh line.
            data = (line if _ends_with_newline(fd) else "\n" + line).encode()
            size = os.fstat(fd).st_size
            try:
                _write_all(fd, data)
            except OSError:
                os.ftruncate(fd, size)  # a full disk leaves no torn record behind
                raise
            if self.fsync_interval_s > 0:
                self._dirty.set()
            else:
                os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the flock
        return record

    async def arecord(self, **fields: Any) -> dict[str, Any]:
        """`record` on a worker thread, so fsync never blocks the event loop."""
        return await asyncio.to_thread(lambda: self.record(**fields))

    def head(self) -> Head:
        """The last record's (seq, hash); (0, 64 zeros) for an empty or missing log."""
        if not self.path.exists():
            return Head(0, ZERO_HASH)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return _read_head(fd)
        finally:
            os.close(fd)


class Auditor:
    """The one way the service writes audit records: typed events, request ids passed in.

    Wraps an `AuditLog`. A record that cannot be written (a full disk) is logged and raised:
    an audit write must fail loudly, never silently.
    """

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def record(self, event: AuditEvent) -> None:
        """Append `event` to the log."""
        try:
            self.log.record(
                action=event.action,
                outcome=event.outcome,
                tenant_id=event.tenant_id,
                user_id=event.user_id,
                request_id=event.ids.request_id,
                trace_id=event.ids.trace_id,
                resource_ids=event.resource_ids,
                detail=event.detail,
            )
        except OSError as exc:
            log.error("audit_write_failed", error=str(exc), action=event.action)
            raise

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

    def sync(self) -> None:
        """Fsync the log now (shutdown)."""
        self.log.sync()


def _chain_problem(record: object, prev: Head, anchor: Head | None) -> str | None:
    """Why `record` cannot follow `prev` in the chain, or None when it can."""
    if not isinstance(record, dict) or record.keys() != RECORD_KEYS:
        return "not an audit record (its fields differ)"
    try:
        intact = record["hash"] == record_hash(record)
    except ValueError:  # NaN or Infinity, which record() never writes
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
    if anchor and record["seq"] == anchor.seq and record["hash"] != anchor.hash:
        return "the record differs from the anchor (expected head)"
    return None


def verify(path: Path, *, expected_head: Head | None = None) -> VerifyResult:
    """Check the whole chain; with `expected_head` (a kept `head()`), truncation shows too.

    `first_bad_line` (1-based) is the first line that breaks the chain; when the chain holds
    but some lines are torn (not JSON: interrupted writes), it is the first torn line.
    """
    if not path.exists():
        return VerifyResult(False, 0, None, f"no audit log at {path}", Head(0, ZERO_HASH))
    prev, torn, records, lines = Head(0, ZERO_HASH), [], 0, 0
    bad: tuple[int, str] | None = None
    with path.open("rb") as stream:
        for lines, raw in enumerate(stream, start=1):
            try:
                record = json.loads(raw)
            except ValueError:
                torn.append(lines)
                continue
            problem = _chain_problem(record, prev, expected_head)
            if problem is not None:
                bad = (lines, problem)
                break
            prev, records = Head(record["seq"], record["hash"]), records + 1
    if bad is None and expected_head and prev.seq < expected_head.seq:
        bad = (
            lines + 1,
            f"log ends at seq {prev.seq}, the anchor at {expected_head.seq}: "
            "records were cut from the end",
        )
    if bad is not None:
        return VerifyResult(False, records, bad[0], bad[1], prev, tuple(torn))
    if torn:
        reason = f"{len(torn)} line(s) are not JSON records (interrupted writes?)"
        return VerifyResult(False, records, torn[0], reason, prev, tuple(torn))
    return VerifyResult(True, records, None, None, prev)


def parse_head(text: str) -> Head:
    """An anchor written as `SEQ:HASH` (as `verify_command` prints it)."""
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or not _HEX64.match(digest):
        raise ValueError(f"an audit head looks like 42:<64 hex digits>, not {text!r}")
    return Head(int(seq), digest)


def verify_command(path: Path, expected_head: Head | None = None) -> int:
    """`tenantrag audit verify`: print a one-line verdict; exit code 0 when intact, 1 if not."""
    result = verify(path, expected_head=expected_head)
    if result.ok:
        line = f"audit log OK: {result.records} records, head {result.head.seq}:{result.head.hash}"
    else:
        where = f" at line {result.first_bad_line}" if result.first_bad_line else ""
        line = f"audit log BROKEN{where}: {result.reason} ({result.records} good records before)"
    sys.stdout.write(line + "\n")
    return 0 if result.ok else 1
