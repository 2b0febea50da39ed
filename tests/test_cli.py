"""The tenantrag command, run the way an operator runs it (click's runner, a real data folder)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from tenantrag import settings as settings_module
from tenantrag.cli import main

SECRET = "cli-test-secret-0123456789-abcdefghijklmnop"


@pytest.fixture
def cli(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A runner whose environment points at a fresh data folder."""
    monkeypatch.setenv("TENANTRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TENANTRAG_MODEL_DIR", str(model_dir.parent))  # the folder above the export
    monkeypatch.setenv("TENANTRAG_JWT_SECRET", SECRET)
    monkeypatch.delenv("TENANTRAG_REDIS_URL", raising=False)
    settings_module.get_settings.cache_clear()
    yield CliRunner()
    settings_module.get_settings.cache_clear()


def test_tenant_lifecycle(cli: CliRunner) -> None:
    """create, list, suspend and activate a tenant; bad ids and duplicates are refused."""
    r = cli.invoke(main, ["tenant", "create", "acme", "--rate-limit", "7", "--document-quota", "3"])
    assert r.exit_code == 0, r.output
    assert "rate limit 7/min" in r.output
    assert cli.invoke(main, ["tenant", "create", "acme"]).exit_code != 0
    assert cli.invoke(main, ["tenant", "create", "ACME"]).exit_code != 0
    listed = cli.invoke(main, ["tenant", "list"]).output
    assert "acme\tactive\trate=7/min" in listed and "documents=3" in listed
    assert cli.invoke(main, ["tenant", "suspend", "acme"]).exit_code == 0
    assert "suspended" in cli.invoke(main, ["tenant", "list"]).output
    assert cli.invoke(main, ["tenant", "activate", "acme"]).exit_code == 0
    assert cli.invoke(main, ["tenant", "suspend", "nobody"]).exit_code != 0


def test_token_carries_the_claims_asked_for(cli: CliRunner) -> None:
    """`token` prints an HS256 JWT with tenant, user, permissions, clearance and a bounded life."""
    r = cli.invoke(
        main,
        [
            "token",
            "--tenant",
            "acme",
            "--user",
            "ann",
            "--permissions",
            "query,documents:read",
            "--clearance",
            "confidential",
            "--ttl",
            "600",
        ],
    )
    assert r.exit_code == 0, r.output
    claims = jwt.decode(r.output.strip(), SECRET, algorithms=["HS256"])
    assert claims["tenant_id"] == "acme" and claims["user_id"] == "ann"
    assert claims["permissions"] == ["documents:read", "query"]
    assert claims["clearance"] == "confidential"
    assert claims["exp"] - claims["iat"] == 600
    assert (
        cli.invoke(
            main, ["token", "--tenant", "acme", "--user", "a", "--permissions", "root"]
        ).exit_code
        != 0
    )
    assert (
        cli.invoke(main, ["token", "--tenant", "acme", "--user", "a", "--ttl", "90000"]).exit_code
        != 0
    )


def test_ingest_then_eval_a_tiny_beir_folder(cli: CliRunner, tmp_path: Path) -> None:
    """`ingest` loads a corpus.jsonl and `eval` scores the judged queries per mode."""
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "Coffee", "text": "Coffee is brewed from roasted coffee beans."},
        {"_id": "d2", "title": "Tea", "text": "Tea is made by steeping cured tea leaves in water."},
        {"_id": "d3", "title": "Bread", "text": "Bread is baked from flour, water and yeast."},
    ]
    (beir / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus) + "\n")
    queries = [{"_id": "q1", "text": "how is tea made"}, {"_id": "q2", "text": "baking bread"}]
    (beir / "queries_train.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (beir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td3\t1\n")
    assert cli.invoke(main, ["tenant", "create", "beir"]).exit_code == 0
    r = cli.invoke(main, ["ingest", "--tenant", "beir", str(beir / "corpus.jsonl")])
    assert r.exit_code == 0, r.output
    assert "ingested 3 documents" in r.output
    r = cli.invoke(main, ["eval", "--tenant", "beir", str(beir)])
    assert r.exit_code == 0, r.output
    rows = {line.split()[0]: line.split() for line in r.output.splitlines()[1:] if line.strip()}
    for mode in ("bm25", "vector", "hybrid/zscore"):
        assert float(rows[mode][1]) == pytest.approx(1.0), r.output  # each query's doc ranks first
    assert (
        cli.invoke(main, ["ingest", "--tenant", "nobody", str(beir / "corpus.jsonl")]).exit_code
        != 0
    )


def test_audit_verify_reports_tampering(cli: CliRunner, tmp_path: Path) -> None:
    """`audit verify` exits 0 on an intact chain and 1 after a record is edited in the store;
    `audit export` writes a file that `audit verify --path` checks the same way."""
    for tenant in ("acme", "globex", "initech"):
        assert cli.invoke(main, ["tenant", "create", tenant]).exit_code == 0
    assert cli.invoke(main, ["audit", "verify"]).exit_code == 0
    export = tmp_path / "audit.jsonl"
    r = cli.invoke(main, ["audit", "export", str(export)])
    assert r.exit_code == 0 and "exported 3 records" in r.output, r.output
    assert cli.invoke(main, ["audit", "verify", "--path", str(export)]).exit_code == 0
    with sqlite3.connect(tmp_path / "data" / "tenantrag.db") as db:
        db.execute("UPDATE audit_log SET record = replace(record, 'globex', 'mallory')")
    r = cli.invoke(main, ["audit", "verify"])
    assert r.exit_code == 1
    assert "BROKEN at record 2" in r.output


def test_db_upgrade_migrates_the_data_folder_once(cli: CliRunner, tmp_path: Path) -> None:
    """`db upgrade` on a new data folder applies every migration, and then has nothing to do."""
    r = cli.invoke(main, ["db", "upgrade"])
    assert r.exit_code == 0 and "from schema none to" in r.output, r.output
    r = cli.invoke(main, ["db", "upgrade"])
    assert r.exit_code == 0 and "nothing to do" in r.output, r.output


def test_a_weak_secret_is_refused(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signing secret under 32 bytes or a placeholder stops the command with a clear error."""
    for weak in ("short", "changeme"):
        monkeypatch.setenv("TENANTRAG_JWT_SECRET", weak)
        settings_module.get_settings.cache_clear()
        r = cli.invoke(main, ["token", "--tenant", "acme", "--user", "a"])
        assert r.exit_code != 0
        assert "TENANTRAG_JWT_SECRET" in r.output


def test_several_workers_need_redis(cli: CliRunner) -> None:
    """`serve --workers 2` without TENANTRAG_REDIS_URL stops with a message naming the setting."""
    r = cli.invoke(main, ["serve", "--workers", "2"])
    assert r.exit_code != 0
    assert "TENANTRAG_REDIS_URL" in r.output


def test_serve_hands_the_worker_healthcheck_timeout_to_uvicorn(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TENANTRAG_WORKER_HEALTHCHECK_TIMEOUT_S reaches uvicorn's supervisor (default 10 s, not
    uvicorn's 5 s); an out-of-range value is refused before anything starts."""
    import uvicorn

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    assert cli.invoke(main, ["serve"]).exit_code == 0
    assert seen["timeout_worker_healthcheck"] == 10
    monkeypatch.setenv("TENANTRAG_WORKER_HEALTHCHECK_TIMEOUT_S", "90")
    settings_module.get_settings.cache_clear()
    assert cli.invoke(main, ["serve"]).exit_code == 0
    assert seen["timeout_worker_healthcheck"] == 90
    monkeypatch.setenv("TENANTRAG_WORKER_HEALTHCHECK_TIMEOUT_S", "0")
    settings_module.get_settings.cache_clear()
    seen.clear()
    assert cli.invoke(main, ["serve"]).exit_code != 0
    assert seen == {}


def test_serve_in_distributed_mode_needs_a_metrics_token(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With TENANTRAG_REDIS_URL set, `serve` stops naming TENANTRAG_METRICS_TOKEN unless one is
    set or TENANTRAG_METRICS_PUBLIC=true says /metrics may stay open; a weak token is refused."""
    import uvicorn

    started: list[bool] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: started.append(True))

    def serve(**env: str) -> str:
        for name in ("TENANTRAG_METRICS_TOKEN", "TENANTRAG_METRICS_PUBLIC"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings_module.get_settings.cache_clear()
        r = cli.invoke(main, ["serve"])
        return f"{r.exit_code} {r.output}"

    monkeypatch.setenv("TENANTRAG_REDIS_URL", "redis://127.0.0.1:6379/13")
    refused = serve()
    assert refused.startswith("1 ") and "TENANTRAG_METRICS_TOKEN" in refused
    assert "TENANTRAG_METRICS_PUBLIC" in refused and started == []
    weak = serve(TENANTRAG_METRICS_TOKEN="short")
    assert "configuration error" in weak and "TENANTRAG_METRICS_TOKEN" in weak and started == []
    assert serve(TENANTRAG_METRICS_TOKEN="a-metrics-token-0123456789").startswith("0 ")
    assert serve(TENANTRAG_METRICS_PUBLIC="true").startswith("0 ")
    monkeypatch.delenv("TENANTRAG_REDIS_URL")
    assert serve().startswith("0 ")  # embedded mode: open by default, as before
    assert started == [True, True, True]
    # A database URL alone is distributed too; refused before any connection is tried.
    monkeypatch.setenv("TENANTRAG_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    refused = serve()
    assert refused.startswith("1 ") and "TENANTRAG_DATABASE_URL makes this" in refused
    assert started == [True, True, True]


def test_tenant_auto_classify_is_set_at_create_and_changed_by_update(cli: CliRunner) -> None:
    """--auto-classify takes off, raise or raise-and-redact; the default is raise; update
    changes only the options it is given; an unknown policy or tenant is refused."""
    assert cli.invoke(main, ["tenant", "create", "acme"]).exit_code == 0
    r = cli.invoke(main, ["tenant", "create", "globex", "--auto-classify", "off"])
    assert r.exit_code == 0 and "auto-classify off" in r.output
    listed = cli.invoke(main, ["tenant", "list"]).output
    assert "acme\tactive" in listed and "auto-classify=raise" in listed.splitlines()[0]
    assert "auto-classify=off" in listed.splitlines()[1]
    r = cli.invoke(
        main,
        ["tenant", "update", "acme", "--auto-classify", "raise-and-redact", "--rate-limit", "9"],
    )
    assert r.exit_code == 0, r.output
    first = cli.invoke(main, ["tenant", "list"]).output.splitlines()[0]
    assert "auto-classify=raise-and-redact" in first and "rate=9/min" in first
    assert "auto-classify=off" in cli.invoke(main, ["tenant", "list"]).output.splitlines()[1]
    bad = cli.invoke(main, ["tenant", "update", "acme", "--auto-classify", "sometimes"])
    assert bad.exit_code != 0 and "sometimes" in bad.output
    assert cli.invoke(main, ["tenant", "update", "acme"]).exit_code != 0  # nothing to change
    missing = cli.invoke(main, ["tenant", "update", "nobody", "--auto-classify", "off"])
    assert missing.exit_code != 0 and "nobody" in missing.output


def test_tenant_update_is_audited_with_what_it_changed(cli: CliRunner, tmp_path: Path) -> None:
    """Like create, suspend and activate, an update commits an audit record with it: the
    operator, and the new values (limits and a policy name, never free text)."""
    from tenantrag.backends.store.sqlite import SQLiteStore

    assert cli.invoke(main, ["tenant", "create", "acme"]).exit_code == 0
    r = cli.invoke(
        main, ["tenant", "update", "acme", "--auto-classify", "off", "--rate-limit", "9"]
    )
    assert r.exit_code == 0, r.output
    store = SQLiteStore(tmp_path / "data" / "tenantrag.db")
    try:
        updated, created = store.audit_records("acme", limit=5)
    finally:
        store.close()
    assert (created["action"], updated["action"]) == ("tenant_created", "tenant_updated")
    assert updated["user_id"].startswith("cli:")
    assert updated["detail"] == {"auto_classify": "off", "rate_limit": 9}
    assert cli.invoke(main, ["audit", "verify"]).exit_code == 0


@pytest.mark.postgres
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:S3cretPW@127.0.0.1:{closed}/x",  # nothing listens
        "postgresql://postgres:S3cretPW@127.0.0.1:5432/tenantrag_no_such_db_{closed}",
    ],
)
def test_serve_on_an_unreachable_database_says_so_in_one_line(
    tmp_path: Path, model_dir: Path, url: str
) -> None:
    """The real `tenantrag serve` process: exit 1, one `Error:` line, no traceback, no password."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TENANTRAG_")},
        "TENANTRAG_DATABASE_URL": url.format(closed=closed),
        "TENANTRAG_DATA_DIR": str(tmp_path / "data"),
        "TENANTRAG_MODEL_DIR": str(model_dir.parent),
        "TENANTRAG_JWT_SECRET": SECRET,
        "TENANTRAG_METRICS_TOKEN": "a-metrics-token-0123456789",
    }
    tool = Path(sys.executable).with_name("tenantrag")
    done = subprocess.run(
        [str(tool), "serve", "--port", str(closed)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, output
    assert "Traceback" not in output and "S3cretPW" not in output
    lines = output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: The database is unreachable"), output
