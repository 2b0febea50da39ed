"""kill -9 mid-job: the standalone worker, and `serve` running its in-process worker (embedded).

After a restart the job finishes with every document stored exactly once: one change log entry
and one audit `ingest` mention per document id, the job's `done` equal to its total, and every
document searchable.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.faults.support import kill9, wait_for
from tests.integration.conftest import SECRET, Server

from tenantrag.backends.store.jobs import Job
from tenantrag.backends.store.sqlite import SQLiteStore

pytestmark = pytest.mark.integration  # starts servers or subprocesses

TenantFactory = Callable[..., tuple[str, dict[str, str]]]
N = 30
# Short leases so the dead worker's items come back within seconds; small batches so the kill
# lands mid-job.
FAST = {
    "TENANTRAG_JOBS__LEASE_S": "2",
    "TENANTRAG_JOBS__BATCH": "2",
    "TENANTRAG_JOBS__POLL_S": "0.2",
}


def corpus(n: int) -> list[dict[str, str]]:
    return [
        {
            "_id": f"j{i}",
            "title": f"Shipment {i}",
            "text": f"Shipment log j{i}: crate tag{i}zq left the dock and arrived intact.",
        }
        for i in range(n)
    ]


def job_of(db: Path, tenant_id: str, job_id: str) -> Job:
    store = SQLiteStore(db)
    store.open()
    try:
        return store.get_job(tenant_id, job_id)
    finally:
        store.close()


def assert_exactly_once(db: Path, tenant_id: str, ids: list[str]) -> None:
    """Each document is stored once: one row, one change, one mention in an ingest record."""
    with sqlite3.connect(db) as conn:
        stored = [
            r[0] for r in conn.execute("SELECT id FROM documents WHERE tenant_id = ?", (tenant_id,))
        ]
        changes = dict(
            conn.execute(
                "SELECT document_id, COUNT(*) FROM changes WHERE tenant_id = ?"
                " AND kind = 'document' GROUP BY document_id",
                (tenant_id,),
            ).fetchall()
        )
        records = [
            json.loads(r[0])
            for r in conn.execute(
                "SELECT record FROM audit_log WHERE tenant_id = ? AND action = 'ingest'",
                (tenant_id,),
            )
        ]
    assert sorted(stored) == sorted(ids)
    assert changes == dict.fromkeys(ids, 1)
    mentioned = [i for r in records for i in r["resource_ids"]]
    assert sorted(mentioned) == sorted(ids)


def worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tenantrag.cli", "worker", "--concurrency", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            start_new_session=True,  # its own group: the kill takes its threads and children
        )


def test_kill9_of_the_worker_mid_job_then_restart_stores_each_document_once(
    tmp_path: Path, model_dir: Path
) -> None:
    """`tenantrag ingest --async` queues; a worker dies by SIGKILL mid-job; the next finishes."""
    data = tmp_path / "data"
    env = {
        **os.environ,
        "TENANTRAG_DATA_DIR": str(data),
        "TENANTRAG_MODEL_DIR": str(model_dir.parent),
        "TENANTRAG_JWT_SECRET": SECRET,
        "TENANTRAG_LOG_LEVEL": "WARNING",
        **FAST,
    }
    env.pop("TENANTRAG_REDIS_URL", None)
    env.pop("TENANTRAG_DATABASE_URL", None)
    run = {"env": env, "cwd": tmp_path, "capture_output": True, "text": True, "timeout": 120}
    cli = [sys.executable, "-m", "tenantrag.cli"]
    assert subprocess.run([*cli, "tenant", "create", "crash"], check=False, **run).returncode == 0
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in corpus(N)))
    queued = subprocess.run(
        [*cli, "ingest", "--async", "--no-follow", "--tenant", "crash", str(path)],
        check=False,
        **run,
    )
    assert queued.returncode == 0, queued.stderr
    job_id = queued.stdout.split()[1]
    db = data / "tenantrag.db"
    assert job_of(db, "crash", job_id).status == "queued"

    first = worker(env, tmp_path / "worker-1.log")
    try:
        assert wait_for(lambda: job_of(db, "crash", job_id).done >= 6, timeout_s=120, every_s=0.1)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    at_kill = job_of(db, "crash", job_id)
    assert at_kill.done < N and at_kill.status == "running", "the kill did not land mid-job"

    second = worker(env, tmp_path / "worker-2.log")
    try:
        assert wait_for(lambda: job_of(db, "crash", job_id).finished, timeout_s=180, every_s=0.2)
    finally:
        second.send_signal(signal.SIGTERM)  # a clean stop this time
        assert second.wait(timeout=60) == 0
    job = job_of(db, "crash", job_id)
    assert (job.status, job.done, job.failed) == ("succeeded", N, 0), job
    assert_exactly_once(db, "crash", [d["_id"] for d in corpus(N)])
    listed = subprocess.run([*cli, "jobs", "list", "--tenant", "crash"], check=False, **run)
    assert f"{job_id}  succeeded  done {N}/{N}" in listed.stdout


def test_kill9_of_serve_mid_job_then_restart_stores_each_document_once(
    cluster: Callable[..., Server], tenant: TenantFactory, tmp_path: Path
) -> None:
    """Embedded mode: the serving process runs the job; killed mid-job and restarted, it ends it."""
    server = cluster(redis=False, env=FAST)
    tenant_id, headers = tenant(rate_limit=100_000)
    docs = [{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in corpus(N)]
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        r = http.post("/api/documents?async=true", headers=headers, json={"documents": docs})
        assert r.status_code == 202, r.text
        location = r.headers["location"]

        def done() -> int:
            return int(http.get(location, headers=headers).json()["done"])

        assert wait_for(lambda: done() >= 6, timeout_s=120, every_s=0.1)
    kill9(server)
    db = tmp_path / "data" / "tenantrag.db"
    job_id = location.rsplit("/", 1)[1]
    at_kill = job_of(db, tenant_id, job_id)
    assert at_kill.done < N and at_kill.status == "running", "the kill did not land mid-job"

    restarted = cluster(redis=False, env=FAST)  # the same data folder
    with httpx.Client(base_url=restarted.base_url, timeout=30) as http:

        def over() -> bool:
            return http.get(location, headers=headers).json()["status"] != "running"

        assert wait_for(over, timeout_s=180, every_s=0.2)
        job = http.get(location, headers=headers).json()
        assert (job["status"], job["done"], job["failed"]) == ("succeeded", N, 0), job
        for i in (0, N // 2, N - 1):
            q = {"query": f"tag{i}zq", "mode": "bm25", "top_k": 1}
            hits = http.post("/api/search", headers=headers, json=q).json()["results"]
            assert [h["document_id"] for h in hits] == [f"j{i}"]
    restarted.stop()
    assert_exactly_once(db, tenant_id, [d["_id"] for d in corpus(N)])
