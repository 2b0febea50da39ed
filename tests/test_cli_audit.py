"""`tenantrag audit` as an operator runs it: keygen, signed anchors, verify against them.

Each tampering below is what someone with write access to the store could do. The chain alone
catches edits, deletions and reordering; a rewrite that recomputes every later hash, or a cut
from the end, leaves a valid chain and is caught only against the signed anchor.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tenantrag import settings as settings_module
from tenantrag.backends.store.chain import record_hash
from tenantrag.cli import main

SECRET = "cli-test-secret-0123456789-abcdefghijklmnop"


class Operator:
    """Runs `tenantrag` against one data folder, with or without the anchor keys."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.data = root / "data"
        self.anchor = root / "kept-elsewhere" / "audit.anchor"
        self.monkeypatch = monkeypatch
        self.runner = CliRunner()
        monkeypatch.setenv("TENANTRAG_DATA_DIR", str(self.data))
        monkeypatch.setenv("TENANTRAG_JWT_SECRET", SECRET)
        monkeypatch.setenv("TENANTRAG_AUDIT__ANCHOR_PATH", str(self.anchor))
        for name in ("REDIS_URL", "AUDIT__ANCHOR_KEY", "AUDIT__ANCHOR_PUBLIC_KEY"):
            monkeypatch.delenv(f"TENANTRAG_{name}", raising=False)
        keys = dict(line.split("=", 1) for line in self("audit", "keygen").output.splitlines())
        self.private = keys["TENANTRAG_AUDIT__ANCHOR_KEY"]
        self.public = keys["TENANTRAG_AUDIT__ANCHOR_PUBLIC_KEY"]

    def __call__(self, *args: str) -> Result:
        settings_module.get_settings.cache_clear()
        return self.runner.invoke(main, list(args))

    def keys(self, *, private: bool = False, public: bool = False) -> None:
        """Set (or unset) the two key variables."""
        for name, value, wanted in [
            ("TENANTRAG_AUDIT__ANCHOR_KEY", self.private, private),
            ("TENANTRAG_AUDIT__ANCHOR_PUBLIC_KEY", self.public, public),
        ]:
            if wanted:
                self.monkeypatch.setenv(name, value)
            else:
                self.monkeypatch.delenv(name, raising=False)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.data / "tenantrag.db", isolation_level=None)


@pytest.fixture
def op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Operator]:
    """Three tenants made by the CLI with the anchor key set: a chain of 3 records, anchored."""
    operator = Operator(tmp_path, monkeypatch)
    operator.keys(private=True)
    for tenant in ("acme", "globex", "initech"):
        assert operator("tenant", "create", tenant).exit_code == 0
    operator.keys(public=True)  # verifiers hold the public key only
    yield operator
    settings_module.get_settings.cache_clear()


def rehash_from(db: sqlite3.Connection, seq: int, change: dict[str, object]) -> None:
    """Edit record `seq` and recompute its hash and every later link: a consistent rewrite."""
    rows = db.execute("SELECT seq, record FROM audit_log ORDER BY seq").fetchall()
    prev = None
    for number, text in rows:
        record = json.loads(text)
        if number == seq:
            record.update(change)
        if number >= seq:
            record["prev_hash"] = prev or record["prev_hash"]
            record["hash"] = record_hash(record)
            db.execute(
                "UPDATE audit_log SET record = ?, hash = ? WHERE seq = ?",
                (json.dumps(record, separators=(",", ":")), record["hash"], number),
            )
        prev = record["hash"]


def test_keygen_prints_a_pair_that_belongs_together(op: Operator) -> None:
    """The two lines are ready to paste as environment variables; each run makes a new pair."""
    again = op("audit", "keygen").output
    assert op.private not in again and op.public not in again
    op.keys(private=True, public=True)
    assert op("audit", "verify").exit_code == 0  # the pair matches


def test_the_cli_signs_the_head_after_its_changes(op: Operator) -> None:
    """The anchor file (where TENANTRAG_AUDIT__ANCHOR_PATH says) names the third record."""
    anchor = json.loads(op.anchor.read_text())
    assert anchor["seq"] == 3 and anchor["format"] == "tenantrag-audit-anchor/1"
    r = op("audit", "verify", "--anchor", str(op.anchor))
    assert r.exit_code == 0, r.output
    assert "audit log OK: 3 records" in r.output and "anchor" in r.stderr


def test_an_intact_chain_with_later_records_still_verifies(op: Operator) -> None:
    """Records written after the anchor are checked by their links."""
    op.keys()
    assert op("tenant", "create", "hooli").exit_code == 0  # no key: not anchored
    op.keys(public=True)
    assert op("audit", "verify").exit_code == 0


@pytest.mark.parametrize(
    ("tamper", "chain_alone_sees_it"),
    [
        ("DELETE FROM audit_log WHERE seq = 2", True),
        ("UPDATE audit_log SET seq = 9 WHERE seq = 1", True),
        ("UPDATE audit_log SET record = replace(record, 'globex', 'mallory')", True),
        ("DELETE FROM audit_log WHERE seq = 3", False),
        ("DELETE FROM audit_log WHERE seq >= 2", False),
    ],
    ids=["deleted", "reordered", "edited", "last cut", "tail cut"],
)
def test_tampering_is_caught_against_the_anchor(
    op: Operator, tamper: str, chain_alone_sees_it: bool
) -> None:
    """Every tampering exits 1 with the anchor; truncation alone passes without one."""
    with op.db() as db:
        db.execute(tamper)
    r = op("audit", "verify")
    assert r.exit_code == 1 and "BROKEN" in r.output, r.output
    op.keys()  # no key: the chain's links only, and a note saying so
    r = op("audit", "verify")
    assert (r.exit_code == 1) is chain_alone_sees_it, r.output
    assert "only the chain's links were checked" in r.stderr


@pytest.mark.parametrize("seq", [1, 3])
def test_a_consistent_rewrite_is_caught_only_by_the_anchor(op: Operator, seq: int) -> None:
    """Rewriting a record and rehashing everything after it leaves a valid chain."""
    with op.db() as db:
        rehash_from(db, seq, {"user_id": "mallory"})
    r = op("audit", "verify")
    assert r.exit_code == 1 and "rewritten" in r.output, r.output
    op.keys()
    assert op("audit", "verify").exit_code == 0


def test_a_rewrite_with_a_forged_anchor_is_caught(op: Operator) -> None:
    """Editing the anchor file to match a rewritten chain breaks its signature."""
    with op.db() as db:
        rehash_from(db, 2, {"tenant_id": "mallory"})
        new_head = db.execute("SELECT hash FROM audit_log WHERE seq = 3").fetchone()[0]
    anchor = json.loads(op.anchor.read_text())
    op.anchor.write_text(json.dumps({**anchor, "hash": new_head}) + "\n")
    r = op("audit", "verify")
    assert r.exit_code == 1 and "signature does not verify" in r.output, r.output


def test_the_anchors_kept_in_the_store_are_checked_too(op: Operator) -> None:
    """Without the file, the store's kept anchor still shows a cut; a forged one is refused."""
    op.anchor.unlink()
    with op.db() as db:
        db.execute("DELETE FROM audit_log WHERE seq = 3")
    r = op("audit", "verify")
    assert r.exit_code == 1 and "cut from the end" in r.output, r.output
    with op.db() as db:
        db.execute("UPDATE audit_anchors SET anchor = replace(anchor, '\"seq\":3', '\"seq\":2')")
    r = op("audit", "verify")
    assert r.exit_code == 1 and "cannot be trusted" in r.output, r.output


def test_an_anchor_needs_its_key_and_a_given_one_must_exist(op: Operator) -> None:
    """--anchor without a key exits 2 and says which setting; a missing --anchor file exits 1."""
    op.keys()
    r = op("audit", "verify", "--anchor", str(op.anchor))
    assert r.exit_code == 2 and "TENANTRAG_AUDIT__ANCHOR_PUBLIC_KEY" in r.stderr
    op.keys(public=True)
    r = op("audit", "verify", "--anchor", str(op.root / "nowhere.anchor"))
    assert r.exit_code == 1 and "no anchor at" in r.output


def test_an_export_verifies_against_the_anchor(op: Operator) -> None:
    """`audit export` then `verify --path --anchor`: a cut export fails, a whole one passes."""
    export = op.root / "audit.jsonl"
    assert op("audit", "export", str(export)).exit_code == 0
    assert op("audit", "verify", "--path", str(export), "--anchor", str(op.anchor)).exit_code == 0
    cut = op.root / "cut.jsonl"
    cut.write_text("".join(export.read_text().splitlines(keepends=True)[:2]))
    r = op("audit", "verify", "--path", str(cut), "--anchor", str(op.anchor))
    assert r.exit_code == 1 and "cut from the end" in r.output


def test_an_anchor_from_another_deployment_is_refused(op: Operator) -> None:
    """Our anchor checked with another deployment's public key is refused, and vice versa."""
    from tenantrag.observability.anchor import generate_key_pair

    _, theirs = generate_key_pair()
    op.monkeypatch.setenv("TENANTRAG_AUDIT__ANCHOR_PUBLIC_KEY", theirs)
    r = op("audit", "verify", "--anchor", str(op.anchor))
    assert r.exit_code == 1 and "signed by key" in r.output, r.output


def test_the_security_log_command_prints_rows(op: Operator) -> None:
    """`audit security-log` prints one line per row: window, client, count, codes, tenants."""
    from tenantrag.backends.store.extras import SecurityEntry
    from tenantrag.backends.store.sqlite import SQLiteStore

    store = SQLiteStore(op.data / "tenantrag.db")
    store.open()
    detail = {"codes": {"invalid_token": 7}, "claimed_tenants": ["acme"]}
    store.append_security([SecurityEntry(0.0, 60.0, "192.0.2.1", "auth_failure", 7, detail)])
    store.close()
    r = op("audit", "security-log")
    assert r.exit_code == 0
    assert r.output == "1970-01-01T00:00:00+00:00\t192.0.2.1\t7\tinvalid_token=7\ttenants=acme\n"


def test_every_cli_change_is_recorded_with_the_operator(
    op: Operator, model_dir: Path, tmp_path: Path
) -> None:
    """Tenant changes and a bulk ingest each commit a record naming the OS user who ran them."""
    op.monkeypatch.setenv("TENANTRAG_MODEL_DIR", str(model_dir.parent))
    op.keys(private=True)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "policy.md").write_text("# Policy\n\nEvery change is recorded.\n")
    assert op("tenant", "suspend", "acme").exit_code == 0
    assert op("tenant", "activate", "acme").exit_code == 0
    r = op("ingest", "--tenant", "acme", str(folder))
    assert r.exit_code == 0, r.output
    with op.db() as db:
        rows = db.execute("SELECT record FROM audit_log ORDER BY seq").fetchall()
    records = [json.loads(row[0]) for row in rows]
    assert [(r["action"], r["tenant_id"]) for r in records] == [
        ("tenant_created", "acme"),
        ("tenant_created", "globex"),
        ("tenant_created", "initech"),
        ("tenant_suspended", "acme"),
        ("tenant_activated", "acme"),
        ("ingest", "acme"),
    ]
    assert all(str(r["user_id"]).startswith("cli:") for r in records)
    assert records[-1]["resource_ids"] and "recorded_by" not in records[-1]["detail"]
    anchor = json.loads(op.anchor.read_text())
    assert anchor["seq"] == 6  # the CLI signed after its last change too
