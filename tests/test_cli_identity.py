"""The identity commands as an operator runs them: platform tokens, revocation, erasure."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import numpy as np
import pytest
from click.testing import CliRunner

from tenantrag import settings as settings_module
from tenantrag.auth import verify_token
from tenantrag.backends.store import NewDocument
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.cli import main
from tenantrag.models import PLATFORM_ADMIN, PLATFORM_TENANT, Chunk, TenantStatus

SECRET = "cli-identity-secret-0123456789-abcdefghijk"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A runner whose environment points at a fresh data folder."""
    monkeypatch.setenv("TENANTRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TENANTRAG_JWT_SECRET", SECRET)
    monkeypatch.delenv("TENANTRAG_REDIS_URL", raising=False)
    settings_module.get_settings.cache_clear()
    yield CliRunner()
    settings_module.get_settings.cache_clear()


def run(cli: CliRunner, *args: str) -> str:
    """Invoke `tenantrag ARGS`, asserting success; its output."""
    result = cli.invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_a_platform_token_carries_platform_admin_only(cli: CliRunner) -> None:
    """`token --platform-admin` is for tenant _platform with platform:admin; it needs --user."""
    principal = verify_token(run(cli, "token", "--platform-admin", "--user", "ops").strip(), SECRET)
    assert principal.tenant_id == PLATFORM_TENANT and principal.permissions == {PLATFORM_ADMIN}
    assert principal.platform
    both = cli.invoke(main, ["token", "--platform-admin", "--tenant", "acme", "--user", "x"])
    assert both.exit_code != 0
    assert cli.invoke(main, ["token", "--platform-admin"]).exit_code != 0
    assert cli.invoke(main, ["token", "--user", "x"]).exit_code != 0
    tenant_token = run(cli, "token", "--tenant", "acme", "--user", "ann", "--role", "admin")
    claims = jwt.decode(tenant_token.strip(), SECRET, algorithms=["HS256"])
    assert "keys:admin" in claims["permissions"] and PLATFORM_ADMIN not in claims["permissions"]
    assert claims["jti"]


def test_token_revoke_lists_the_jti_and_is_audited(cli: CliRunner, tmp_path: Path) -> None:
    """`token revoke JTI` puts the jti on the list every node checks, with an audit record."""
    token = run(cli, "token", "--tenant", "acme", "--user", "ann").strip()
    jti = jwt.decode(token, SECRET, algorithms=["HS256"])["jti"]
    assert f"revoked token {jti}" in run(cli, "token", "revoke", jti)
    store = SQLiteStore(tmp_path / "data" / "tenantrag.db")
    store.open()
    assert jti in store.revoked_token_ids(now=time.time())
    record = next(
        r for r, _ in store.iter_audit() if isinstance(r, dict) and r["action"] == "token_revoked"
    )
    assert record["resource_ids"] == [jti] and str(record["user_id"]).startswith("cli:")
    store.close()
    assert cli.invoke(main, ["token", "revoke", "x" * 200]).exit_code != 0


def test_tenant_delete_erases_the_tenant_and_its_index_files(
    cli: CliRunner, tmp_path: Path
) -> None:
    """`tenant delete ID --yes` erases rows and index files; the tombstone stays; twice is fine."""
    run(cli, "tenant", "create", "acme")
    run(cli, "tenant", "create", "globex")
    data = tmp_path / "data"
    store = SQLiteStore(data / "tenantrag.db")
    store.open()
    tenant = store.get_tenant("acme")
    assert tenant is not None
    chunk = Chunk("acme", "d1", 0, "the canary-cli-77 text", title="canary-cli-77")
    store.put_documents(
        tenant, [NewDocument("d1", "canary-cli-77", [chunk], np.ones((1, 4), np.float32))]
    )
    index = data / "indexes" / "acme" / "levels"
    index.mkdir(parents=True)
    (index / "segment").write_bytes(b"canary-cli-77")
    refused = cli.invoke(main, ["tenant", "delete", "acme"], input="n\n")
    assert refused.exit_code != 0 and store.usage("acme").documents == 1
    out = run(cli, "tenant", "delete", "acme", "--yes")
    assert "documents=1" in out and "index_files=1" in out
    assert not (data / "indexes" / "acme").exists()
    erased = store.get_tenant("acme")
    assert erased is not None and erased.status is TenantStatus.DELETED
    assert "acme\tdeleted" in run(cli, "tenant", "list")
    db = sqlite3.connect(data / "tenantrag.db")
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        assert "canary-cli-77" not in repr(db.execute(f"SELECT * FROM {table}").fetchall())  # noqa: S608
    db.close()
    assert b"canary-cli-77" not in (data / "tenantrag.db").read_bytes()
    run(cli, "tenant", "delete", "acme", "--yes")  # again: harmless
    assert cli.invoke(main, ["tenant", "delete", "nobody", "--yes"]).exit_code != 0
    assert cli.invoke(main, ["tenant", "activate", "acme"]).exit_code != 0
    assert cli.invoke(main, ["tenant", "create", "acme"]).exit_code != 0
    assert store.get_tenant("globex") is not None
    store.close()
