"""Credentials and erasure in the store of record: API keys, revoked token ids, tenant erasure.

Both stores run these same statements inside their own transactions (written with `?` marks;
PostgreSQL's driver gets `%s`, see extras.Dialect). Keys and revocations are read from the
store of record by every node, never from a node's copy (migration 0006 says why).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tenantrag.backends.store.extras import Dialect, Executor
from tenantrag.models import Classification, TenantStatus

KEY_COLUMNS = (
    "id, tenant_id, name, permissions, clearance, rate_limit, created_by, created_at,"
    " expires_at, revoked_at, last_used_at"
)
# What erasure removes, in this order (rows before the rows they reference). Cost events,
# storage accruals and the audit chain stay: they hold ids and numbers, no content, and the law
# of most places requires keeping them. The tenant row stays as a tombstone. `job_items` (which
# hold whole documents waiting to be ingested) and `jobs` belong to background ingestion
# (migration 0005); they are erased when the schema has them.
ERASED_TABLES = ("job_items", "jobs", "chunks", "documents", "feedback", "api_keys", "changes")
OPTIONAL_TABLES = frozenset({"job_items", "jobs"})


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A tenant's API key as stored, without its secret (the store keeps only a keyed hash)."""

    id: str  # the lookup prefix: `trk_<id>_<secret>`
    tenant_id: str
    name: str
    permissions: tuple[str, ...]
    clearance: Classification
    rate_limit: int | None  # requests per minute for this key, within the tenant's limit
    created_by: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None


@dataclass(frozen=True, slots=True)
class Erasure:
    """What erasing a tenant removed from the store of record, by table."""

    tenant_id: str
    removed: dict[str, int]


def key_from(row: Sequence[Any]) -> ApiKey:
    """An ApiKey from a row in KEY_COLUMNS order."""
    return ApiKey(
        id=str(row[0]),
        tenant_id=str(row[1]),
        name=str(row[2]),
        permissions=tuple(json.loads(row[3])),
        clearance=Classification(int(row[4])),
        rate_limit=None if row[5] is None else int(row[5]),
        created_by=str(row[6]),
        created_at=float(row[7]),
        expires_at=None if row[8] is None else float(row[8]),
        revoked_at=None if row[9] is None else float(row[9]),
        last_used_at=None if row[10] is None else float(row[10]),
    )


def insert_key(db: Executor, d: Dialect, key: ApiKey, secret_hash: str) -> None:
    """Store a new key with the keyed hash of its secret."""
    db.execute(
        d.sql(
            f"INSERT INTO api_keys ({KEY_COLUMNS}, secret_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
        ),
        (
            key.id,
            key.tenant_id,
            key.name,
            json.dumps(sorted(key.permissions)),
            int(key.clearance),
            key.rate_limit,
            key.created_by,
            key.created_at,
            key.expires_at,
            key.revoked_at,
            key.last_used_at,
            secret_hash,
        ),
    )


def keys_of(db: Executor, d: Dialect, tenant_id: str) -> list[ApiKey]:
    """The tenant's keys, revoked ones included, oldest first."""
    rows = db.execute(
        d.sql(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id"),
        (tenant_id,),
    ).fetchall()
    return [key_from(r) for r in rows]


def key_by_id(db: Executor, d: Dialect, key_id: str) -> tuple[ApiKey, str] | None:
    """The key with this lookup id, whatever its tenant, and its secret's hash; None if unknown."""
    row = db.execute(
        d.sql(f"SELECT {KEY_COLUMNS}, secret_hash FROM api_keys WHERE id = ?"), (key_id,)
    ).fetchone()
    return None if row is None else (key_from(row), str(row[11]))


def revoke_key(db: Executor, d: Dialect, tenant_id: str, key_id: str, now: float) -> bool:
    """Revoke the tenant's key (a second revocation keeps the first time); False if none."""
    cur = db.execute(
        d.sql(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?)"
            " WHERE id = ? AND tenant_id = ?"
        ),
        (now, key_id, tenant_id),
    )
    return bool(cur.rowcount)


def touch_key(db: Executor, d: Dialect, key_id: str, at: float) -> None:
    """Record a use of the key (never moves last use back)."""
    db.execute(
        d.sql(
            "UPDATE api_keys SET last_used_at = ? WHERE id = ?"
            " AND (last_used_at IS NULL OR last_used_at < ?)"
        ),
        (at, key_id, at),
    )


def revoke_token(db: Executor, d: Dialect, jti: str, now: float, expires_at: float) -> None:
    """Add a token id to the revocation list (again: the later expiry is kept).

    Entries whose tokens have expired are pruned here: the list stays as small as the set of
    revoked tokens that could still be presented.
    """
    db.execute(d.sql("DELETE FROM revoked_tokens WHERE expires_at < ?"), (now,))
    db.execute(
        d.sql(
            "INSERT INTO revoked_tokens (jti, revoked_at, expires_at) VALUES (?,?,?)"
            " ON CONFLICT (jti) DO UPDATE SET expires_at ="
            " CASE WHEN excluded.expires_at > revoked_tokens.expires_at"
            " THEN excluded.expires_at ELSE revoked_tokens.expires_at END"
        ),
        (jti, now, expires_at),
    )


def revoked_ids(db: Executor, d: Dialect, now: float) -> frozenset[str]:
    """Token ids revoked whose tokens could still be unexpired at `now`."""
    rows = db.execute(d.sql("SELECT jti FROM revoked_tokens WHERE expires_at >= ?"), (now,))
    return frozenset(str(r[0]) for r in rows)


def erase(db: Executor, d: Dialect, tenant_id: str, now: float) -> dict[str, int]:
    """Delete the tenant's content and keys, leave its row as a tombstone; counts by table.

    Its old change log entries go too (they name document ids and nothing needs them once
    the documents are gone); the caller appends the erase entry the nodes act on.
    """
    removed: dict[str, int] = {}
    for table in ERASED_TABLES:
        if table in OPTIONAL_TABLES and not _has_table(db, d, table):
            continue
        cur = db.execute(d.sql(f"DELETE FROM {table} WHERE tenant_id = ?"), (tenant_id,))
        removed[table] = max(0, int(cur.rowcount))
    db.execute(
        d.sql("UPDATE tenants SET status = ?, tokens_valid_after = ? WHERE id = ?"),
        (TenantStatus.DELETED.value, now, tenant_id),
    )
    return removed


def _has_table(db: Executor, d: Dialect, table: str) -> bool:
    """Whether the schema has `table` (SQLite's catalogue, or PostgreSQL's to_regclass)."""
    if d.mark == "?":
        row = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        return row is not None
    row = db.execute("SELECT to_regclass(%s)", (table,)).fetchone()
    return row is not None and row[0] is not None
