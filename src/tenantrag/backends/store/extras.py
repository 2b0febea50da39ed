"""Tables beside the corpus and the chain: answer feedback, the security log, audit anchors.

Both stores run these same statements inside their own transactions: they are written with
`?` marks and PostgreSQL's driver gets `%s` (`Dialect`). Nothing here is replicated to the
nodes' read models: only the store of record holds these rows (migration 0004).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Rating = Literal["up", "down"]


class Executor(Protocol):
    """A connection inside a transaction: sqlite3's or psycopg's."""

    def execute(self, query: Any, params: Any = ..., /) -> Any:
        """Run one statement."""
        ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one driver marks parameters."""

    mark: str

    def sql(self, text: str) -> str:
        """`text` (written with `?`) as this driver wants it."""
        return text if self.mark == "?" else text.replace("?", self.mark)


SQLITE = Dialect("?")
POSTGRESQL = Dialect("%s")


@dataclass(frozen=True, slots=True)
class Feedback:
    """One user's rating of one answered request of their tenant."""

    tenant_id: str
    request_id: str
    user_id: str
    rating: Rating
    comment: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class FeedbackCounts:
    """How a tenant's answers were rated in a period."""

    up: int = 0
    down: int = 0
    with_comment: int = 0


@dataclass(frozen=True, slots=True)
class SecurityEntry:
    """One row of the security log: `count` events from `client` in one window.

    `detail` holds counts by error code and, bounded, what the requests claimed (never a
    token); docs/audit.md, "The security log".
    """

    window_start: float
    window_end: float
    client: str
    event: str
    count: int
    detail: Mapping[str, Any] = field(default_factory=dict)
    id: int = 0


# -- answered requests and feedback -------------------------------------------------------------


def answered(db: Executor, dialect: Dialect, tenant_id: str, request_id: str) -> bool:
    """Whether `tenant_id` was answered `request_id`: a `query` record of its own says so."""
    row = db.execute(
        dialect.sql(
            "SELECT 1 FROM audit_log WHERE tenant_id = ? AND request_id = ? AND action = 'query'"
            " LIMIT 1"
        ),
        (tenant_id, request_id),
    ).fetchone()
    return row is not None


def upsert_feedback(db: Executor, dialect: Dialect, feedback: Feedback, now: float) -> bool:
    """Store the rating (replacing this user's earlier one); True when it is the first."""
    row = db.execute(
        dialect.sql(
            "INSERT INTO feedback (tenant_id, request_id, user_id, rating, comment, created_at,"
            " updated_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (tenant_id, request_id, user_id)"
            " DO UPDATE SET rating = excluded.rating, comment = excluded.comment,"
            " updated_at = excluded.updated_at RETURNING created_at"
        ),
        (
            feedback.tenant_id,
            feedback.request_id,
            feedback.user_id,
            feedback.rating,
            feedback.comment,
            now,
            now,
        ),
    ).fetchone()
    return row is not None and float(row[0]) == now


def feedback_counts(
    db: Executor, dialect: Dialect, tenant_id: str, start: float, end: float
) -> FeedbackCounts:
    """Ratings last changed in [start, end), by kind."""
    rows = db.execute(
        dialect.sql(
            "SELECT rating, COUNT(*), COUNT(comment) FROM feedback WHERE tenant_id = ?"
            " AND updated_at >= ? AND updated_at < ? GROUP BY rating"
        ),
        (tenant_id, start, end),
    ).fetchall()
    by_rating = {str(r[0]): (int(r[1]), int(r[2])) for r in rows}
    up, down = by_rating.get("up", (0, 0)), by_rating.get("down", (0, 0))
    return FeedbackCounts(up=up[0], down=down[0], with_comment=up[1] + down[1])


def feedback_between(
    db: Executor, dialect: Dialect, tenant_id: str, start: float, end: float
) -> list[Feedback]:
    """The tenant's ratings last changed in [start, end), oldest first."""
    rows = db.execute(
        dialect.sql(
            "SELECT tenant_id, request_id, user_id, rating, comment, created_at, updated_at"
            " FROM feedback WHERE tenant_id = ? AND updated_at >= ? AND updated_at < ?"
            " ORDER BY updated_at, request_id, user_id"
        ),
        (tenant_id, start, end),
    ).fetchall()
    return [
        Feedback(str(t), str(q), str(u), r, c, float(ca), float(ua))
        for t, q, u, r, c, ca, ua in rows
    ]


# -- the security log ---------------------------------------------------------------------------


def insert_security(db: Executor, dialect: Dialect, entries: Sequence[SecurityEntry]) -> None:
    """Append rows to the security log."""
    for e in entries:
        db.execute(
            dialect.sql(
                "INSERT INTO security_log (window_start, window_end, client, event, count, detail)"
                " VALUES (?,?,?,?,?,?)"
            ),
            (
                e.window_start,
                e.window_end,
                e.client,
                e.event,
                e.count,
                json.dumps(dict(e.detail), sort_keys=True),
            ),
        )


def security_entries(
    db: Executor, dialect: Dialect, limit: int, before: int | None
) -> list[SecurityEntry]:
    """The newest `limit` rows with an id below `before`, newest first."""
    rows = db.execute(
        dialect.sql(
            "SELECT id, window_start, window_end, client, event, count, detail FROM security_log"
            " WHERE id < ? ORDER BY id DESC LIMIT ?"
        ),
        (before if before is not None else 1 << 62, limit),
    ).fetchall()
    return [
        SecurityEntry(float(s), float(e), str(c), str(ev), int(n), json.loads(d), int(i))
        for i, s, e, c, ev, n, d in rows
    ]


def prune_security(db: Executor, dialect: Dialect, before: float) -> int:
    """Delete rows whose window ended before `before`; how many went."""
    cur = db.execute(dialect.sql("DELETE FROM security_log WHERE window_end < ?"), (before,))
    return int(cur.rowcount)


# -- signed anchors of the audit chain ----------------------------------------------------------


def keep_anchor(
    db: Executor, dialect: Dialect, node: str, seq: int, digest: str, text: str
) -> None:
    """Keep `node`'s newest signed anchor (its text exactly as written to its anchor file).

    An older head never replaces a newer one (two workers of one node race harmlessly).
    """
    db.execute(
        dialect.sql(
            "INSERT INTO audit_anchors (node, seq, hash, anchor) VALUES (?,?,?,?)"
            " ON CONFLICT (node) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,"
            " anchor = excluded.anchor WHERE excluded.seq >= audit_anchors.seq"
        ),
        (node, seq, digest, text),
    )


def anchor_texts(db: Executor, dialect: Dialect) -> list[str]:
    """Every node's newest anchor, by node."""
    rows = db.execute(dialect.sql("SELECT anchor FROM audit_anchors ORDER BY node"), ()).fetchall()
    return [str(r[0]) for r in rows]
