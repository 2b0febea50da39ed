"""The audit chain's record format, shared by both stores and by `tenantrag audit verify`.

A record is a flat JSON object; its `hash` is sha256 over its canonical JSON (sorted keys, no
spaces, `hash` left out, `prev_hash` in), so editing, deleting, inserting or reordering records
breaks the chain. The stores append records inside the transaction of the change they record,
holding the chain's lock (a global order), and keep each record's JSON exactly as hashed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, NamedTuple

from tenantrag.models import MAX_USER_ID_CHARS, AuditEvent

ZERO_HASH: Final = "0" * 64
MAX_VALUE_CHARS: Final = 200
MAX_DETAIL_KEYS: Final = 32
MAX_RESOURCE_IDS: Final = 1000
_DETAIL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

DetailValue = str | int | float | bool
# Rewrites a record's checked fields before they are chained: the service passes one that
# redacts personal data (observability/audit.py), as its logs are; stores built without one
# (tests, tools) keep the values as given.
AuditScrub = Callable[[dict[str, Any]], dict[str, Any]]
# The detail of a record a store wrote itself because the caller of a change gave none.
UNATTRIBUTED: Final[Mapping[str, DetailValue]] = {"recorded_by": "store"}


class Action(StrEnum):
    """What happened. Extend here; a record of anything else is refused."""

    QUERY = "query"
    SEARCH = "search"
    EMBEDDINGS = "embeddings"  # /v1/embeddings: counts only, never the texts
    INGEST = "ingest"
    DELETE = "delete"
    READ = "read"  # GET /api/documents and /api/documents/{id}: the ids shown
    FEEDBACK = "feedback"  # a thumbs up or down on an answer: the rating, never the comment
    AUTH_FAILURE = "auth_failure"
    PERMISSION_DENIED = "permission_denied"
    RATE_LIMITED = "rate_limited"
    LEAKAGE = "leakage"
    TENANT_CREATED = "tenant_created"
    TENANT_SUSPENDED = "tenant_suspended"
    TENANT_ACTIVATED = "tenant_activated"
    TENANT_UPDATED = "tenant_updated"  # limits or policies; `detail` holds the new values
    JOB_CREATE = "job_create"  # a background ingestion job queued: its id, the document count
    JOB_CANCEL = "job_cancel"
    TENANT_ERASED = "tenant_erased"  # its content and keys deleted; cost and audit records kept
    API_KEY_CREATED = "api_key_created"  # the key's id; its permissions, clearance and limits
    API_KEY_REVOKED = "api_key_revoked"
    TOKEN_REVOKED = "token_revoked"  # noqa: S105  # an action name; the jti is its resource id


class Outcome(StrEnum):
    """How it ended."""

    SUCCESS = "success"
    DENIED = "denied"
    FAILURE = "failure"
    ERROR = "error"


class Head(NamedTuple):
    """The last record's seq and hash: what an anchor signs, so truncation shows."""

    seq: int
    hash: str


GENESIS: Final = Head(0, ZERO_HASH)


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers: sorted keys, no spaces, UTF-8, `hash` left out."""
    body = {key: value for key, value in record.items() if key != "hash"}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 hex of the record's canonical JSON."""
    return hashlib.sha256(canonical_json(record)).hexdigest()


def _short(name: str, value: str | None, limit: int = MAX_VALUE_CHARS) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise ValueError(f"audit {name} must be a string of at most {limit} chars")
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


def audit_fields(
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
    """A record's fields, checked; ValueError (and nothing written) for anything out of bounds."""
    if isinstance(resource_ids, str) or len(resource_ids) > MAX_RESOURCE_IDS:
        raise ValueError(f"resource_ids must be a list of at most {MAX_RESOURCE_IDS} ids")
    return {
        "tenant_id": _short("tenant_id", tenant_id),
        "user_id": _short("user_id", user_id, MAX_USER_ID_CHARS),
        "action": Action(action).value,
        "outcome": Outcome(outcome).value,
        "resource_ids": [_short("resource id", rid) for rid in resource_ids],
        "request_id": _short("request_id", request_id),
        "trace_id": _short("trace_id", trace_id),
        "detail": _checked_detail(detail),
    }


def event_fields(event: AuditEvent) -> dict[str, Any]:
    """`audit_fields` of an AuditEvent."""
    return audit_fields(
        action=event.action,
        outcome=event.outcome,
        tenant_id=event.tenant_id,
        user_id=event.user_id,
        request_id=event.ids.request_id,
        trace_id=event.ids.trace_id,
        resource_ids=event.resource_ids,
        detail=event.detail,
    )


def prepared(
    events: Sequence[AuditEvent | Mapping[str, Any]], scrub: AuditScrub | None
) -> list[dict[str, Any]]:
    """Each event's checked (and scrubbed) fields: done before a store takes its chain lock.

    An AuditEvent is checked here (ValueError, nothing written); a mapping is taken as fields
    `event_fields` already checked (the Auditor checks in its caller's thread).
    """
    out = []
    for event in events:
        fields = event_fields(event) if isinstance(event, AuditEvent) else dict(event)
        out.append(scrub(fields) if scrub is not None else fields)
    return out


def chained(
    fields: Mapping[str, Any], head: Head, *, now: datetime | None = None
) -> dict[str, Any]:
    """The record that follows `head`: seq, time, the fields, prev_hash and its own hash."""
    moment = now or datetime.now(UTC)
    record = {
        "seq": head.seq + 1,
        "time": moment.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        **fields,
        "prev_hash": head.hash,
    }
    record["hash"] = record_hash(record)
    return record


def line(record: Mapping[str, Any]) -> str:
    """The record as stored and exported: compact JSON, one line, no newline."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def chain_records(
    events: Sequence[AuditEvent | Mapping[str, Any]], head: Head
) -> list[dict[str, Any]]:
    """Records for `events` (AuditEvents, or fields already checked) following `head`, in order."""
    records = []
    for event in events:
        fields = event_fields(event) if isinstance(event, AuditEvent) else event
        record = chained(fields, head)
        records.append(record)
        head = Head(record["seq"], record["hash"])
    return records
