"""The data folder's disk fills up: clear 507s, no corruption, and all is well once space is freed.

The data folder sits on a 24 MB tmpfs mounted for the test (we run as root here), so the disk
really is full: every write(2) and fsync(2) of SQLite, the audit log and Tantivy gets ENOSPC.
"""

from __future__ import annotations

import errno
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.conftest import TokenFactory, build_services

from tenantrag.app import create_app
from tenantrag.backends import Embedder
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import Tenant
from tenantrag.observability.audit import verify_records
from tenantrag.settings import Settings

pytestmark = pytest.mark.integration  # starts servers or subprocesses

BEFORE = [
    {"id": f"kept-{i}", "text": f"Archive shelf {i} keeps the signed contracts of year 20{i:02d}."}
    for i in range(5)
]
pytestmark = pytest.mark.root  # mounts a tmpfs

AFTER = [{"id": "later", "text": "The new archive room opens after the renovation in spring."}]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"cannot mount a tmpfs (root needed): {done.stderr}"
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
async def disk_client(
    settings: Settings, embedder: Embedder, small_disk: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its whole data folder (store, ledger, audit, indexes) on the small disk."""
    configured = settings.model_copy(update={"data_dir": small_disk / "data"})
    services = await build_services(configured, embedder)
    services.store.create_tenant(Tenant(id="acme", rate_limit=10_000))
    app = create_app(configured, services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http
    await services.close()


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses another byte; the file."""
    filler = disk / "filler"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with filler.open("ab", buffering=0) as f:  # the last partial block, byte by byte
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass  # ENOSPC: the disk is now full, which is the point
    return filler


async def test_full_disk_gives_507_and_nothing_is_lost(
    disk_client: httpx.AsyncClient, auth: TokenFactory, small_disk: Path
) -> None:
    """With the disk full writes get 507 and reads still work; after freeing space all is intact."""
    headers = auth("acme")
    r = await disk_client.post("/api/documents", headers=headers, json={"documents": BEFORE})
    assert r.status_code == 201, r.text
    filler = fill(small_disk)

    refused = await disk_client.post("/api/documents", headers=headers, json={"documents": AFTER})
    assert refused.status_code == 507, refused.text
    assert refused.json()["error"]["code"] == "insufficient_storage"
    files = {"file": ("note.txt", b"A note about the archive room keys.", "text/plain")}
    upload = await disk_client.post("/api/documents/upload", headers=headers, files=files)
    assert upload.status_code == 507, upload.text
    # Reads append to the audit log: once its last page is used up they are refused too.
    statuses = []
    for i in range(40):
        path = "/api/search" if i % 2 else "/api/query"
        body = {"query": f"Where are the signed contracts of year {i} kept?"}
        answer = await disk_client.post(path, headers=headers, json=body)
        statuses.append(answer.status_code)
        assert answer.status_code in (200, 507), answer.text
        if answer.status_code == 507:
            assert answer.json()["error"]["code"] == "insufficient_storage"
    assert 507 in statuses
    # Listing documents is a read that is audited too: nothing is shown that is not recorded.
    listed = await disk_client.get("/api/documents", headers=headers)
    assert listed.status_code == 507, listed.text
    assert listed.json()["error"]["code"] == "insufficient_storage"

    filler.unlink()
    r = await disk_client.post("/api/documents", headers=headers, json={"documents": AFTER})
    assert r.status_code == 201, r.text
    for doc in BEFORE + AFTER:
        got = await disk_client.get(f"/api/documents/{doc['id']}", headers=headers)
        assert got.status_code == 200, got.text
    for query, expected in (("renovation spring", "later"), ("year 2003 contracts", "kept-3")):
        found = await disk_client.post(
            "/api/search", headers=headers, json={"query": query, "mode": "bm25", "top_k": 1}
        )
        assert found.status_code == 200, found.text
        assert found.json()["results"][0]["document_id"] == expected
    with sqlite3.connect(small_disk / "data" / "tenantrag.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # The chain lives in the store: no record was left half-written where a write was cut short.
    audit = verify_records(SQLiteStore(small_disk / "data" / "tenantrag.db").iter_audit())
    assert audit.ok and audit.records > 0, audit
