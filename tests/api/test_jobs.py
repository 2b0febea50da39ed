"""Background ingestion over the API: ?async=true, GET/DELETE /api/jobs, with a real worker.

The worker runs in the test (`services.jobs.run_once`), one batch at a time, against the real
SQLite store, embedding model and indexes, so each step can be checked as it happens.
"""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import Mock

import httpx
import pytest
from tests.api.conftest import TokenFactory

from tenantrag.errors import DependencyUnavailable
from tenantrag.ingest.jobs import JobWorker, WorkerOptions
from tenantrag.models import Classification, Tenant
from tenantrag.services import Services, job_records
from tenantrag.settings import JobSettings, Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Two documents a batch, so a job takes several steps."""
    return settings.model_copy(update={"jobs": JobSettings(batch=2)})


def docs(prefix: str, n: int) -> dict[str, Any]:
    return {
        "documents": [
            {
                "id": f"{prefix}{i}",
                "title": f"Note {prefix}{i}",
                "text": f"Warehouse note {prefix}{i}: codeword{prefix}x{i} was logged at dawn.",
            }
            for i in range(n)
        ]
    }


async def run_all(services: Services, limit: int = 100) -> int:
    """Run batches until nothing is left; how many batches ran."""
    for n in range(limit):
        if not await asyncio.to_thread(services.jobs.run_once):
            return n
    raise AssertionError("the queue never emptied")


async def post_async(client: httpx.AsyncClient, headers: dict[str, str], body: Any) -> str:
    r = await client.post("/api/documents", params={"async": "true"}, headers=headers, json=body)
    assert r.status_code == 202, r.text
    job_id = str(r.json()["job_id"])
    assert r.json() == {"job_id": job_id, "status": "queued"}
    assert r.headers["location"] == f"/api/jobs/{job_id}"
    return job_id


async def test_an_async_batch_is_accepted_at_once_then_stored_and_searchable(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """202 with the job; the worker stores every document; the job succeeds; all searchable."""
    h = auth()
    job_id = await post_async(client, h, docs("a", 5))
    r = await client.get(f"/api/jobs/{job_id}", headers=h)
    assert r.status_code == 200
    assert r.json() | {"created_at": 0} == {
        "job_id": job_id,
        "status": "queued",
        "total": 5,
        "done": 0,
        "failed": 0,
        "errors": [],
        "created_at": 0,
        "started_at": None,
        "finished_at": None,
    }
    assert await asyncio.to_thread(services.jobs.run_once) == 2
    partial = (await client.get(f"/api/jobs/{job_id}", headers=h)).json()
    assert (partial["status"], partial["done"]) == ("running", 2)
    found = await client.post(
        "/api/search", headers=h, json={"query": "codewordax0", "mode": "bm25"}
    )
    assert [x["document_id"] for x in found.json()["results"]][:1] == ["a0"]  # done: searchable
    await run_all(services)
    job = (await client.get(f"/api/jobs/{job_id}", headers=h)).json()
    assert (job["status"], job["done"], job["failed"]) == ("succeeded", 5, 0)
    assert job["finished_at"] >= job["created_at"]
    for i in range(5):
        q = {"query": f"codewordax{i}", "mode": "bm25", "top_k": 1}
        hits = (await client.post("/api/search", headers=h, json=q)).json()["results"]
        assert [x["document_id"] for x in hits] == [f"a{i}"]
    records = services.store.audit_records("acme", limit=50)
    created = [r for r in records if r["action"] == "job_create"]
    assert len(created) == 1 and created[0]["resource_ids"] == [job_id]
    ingested = [r for r in records if r["action"] == "ingest"]
    assert sorted(i for r in ingested for i in r["resource_ids"]) == [f"a{i}" for i in range(5)]
    assert all(r["user_id"] == "alice" and r["detail"]["job_id"] == job_id for r in ingested)


async def test_an_upload_is_queued_too(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """A file posted with async=true becomes a one-document job with the same id and title."""
    h = auth()
    files = {"file": ("leave.md", b"# Leave\nStaff request leave in the portal.", "text/markdown")}
    r = await client.post(
        "/api/documents/upload",
        params={"async": "true"},
        headers=h,
        files=files,
        data={"id": "leave"},
    )
    assert r.status_code == 202, r.text
    await run_all(services)
    job = (await client.get(r.headers["location"], headers=h)).json()
    assert (job["status"], job["total"], job["done"]) == ("succeeded", 1, 1)
    doc = (await client.get("/api/documents/leave", headers=h)).json()
    assert doc["title"] == "Leave" and doc["source"] == "leave.md"


async def test_a_bad_document_fails_alone_and_the_job_goes_on(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """An id held by a document above the writer's clearance fails with its code; others stored."""
    hidden = {"id": "secret", "text": "Merger plans.", "classification": "restricted"}
    top = auth(clearance=Classification.RESTRICTED)
    assert (
        await client.post("/api/documents", headers=top, json={"documents": [hidden]})
    ).status_code == 201
    h = auth()  # internal clearance
    body = docs("b", 3)
    body["documents"].insert(1, {"id": "secret", "text": "Overwrite attempt."})
    job_id = await post_async(client, h, body)
    await run_all(services)
    job = (await client.get(f"/api/jobs/{job_id}", headers=h)).json()
    assert (job["status"], job["total"], job["done"], job["failed"]) == ("succeeded", 4, 3, 1)
    (error,) = job["errors"]
    assert error["id"] == "secret" and error["code"] == "conflict" and error["message"]
    assert "Merger" not in error["message"]
    kept = (await client.get("/api/documents/secret", headers=top)).json()
    assert kept["classification"] == "restricted"


async def test_a_job_over_the_quota_stores_what_fits_and_fails_the_rest(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Quotas are checked per document: the ones past the tenant's quota fail, quota_exceeded."""
    services.store.create_tenant(Tenant(id="small", document_quota=3))
    h = auth("small")
    job_id = await post_async(client, h, docs("q", 5))
    await run_all(services)
    job = (await client.get(f"/api/jobs/{job_id}", headers=h)).json()
    assert (job["status"], job["done"], job["failed"]) == ("succeeded", 3, 2)
    assert {e["code"] for e in job["errors"]} == {"quota_exceeded"}
    assert services.store.usage("small").documents == 3


async def test_a_job_of_only_failures_has_failed(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Every document refused: the job's status is failed."""
    services.store.create_tenant(Tenant(id="full", document_quota=0))
    h = auth("full")
    job_id = await post_async(client, h, docs("f", 2))
    await run_all(services)
    job = (await client.get(f"/api/jobs/{job_id}", headers=h)).json()
    assert (job["status"], job["done"], job["failed"]) == ("failed", 0, 2)


async def test_cancel_stops_a_running_job_and_keeps_what_was_done(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """DELETE answers 202 with the job cancelled; done documents stay; no more are stored."""
    h = auth()
    job_id = await post_async(client, h, docs("c", 6))
    assert await asyncio.to_thread(services.jobs.run_once) == 2
    r = await client.delete(f"/api/jobs/{job_id}", headers=h)
    assert r.status_code == 202
    assert (r.json()["status"], r.json()["done"]) == ("cancelled", 2)
    assert await run_all(services) == 0
    listed = (await client.get("/api/documents", headers=h)).json()["documents"]
    assert sorted(d["id"] for d in listed) == ["c0", "c1"]
    again = await client.delete(f"/api/jobs/{job_id}", headers=h)
    assert again.status_code == 202 and again.json()["status"] == "cancelled"
    actions = [r["action"] for r in services.store.audit_records("acme", limit=50)]
    assert actions.count("job_cancel") == 1  # the second cancel changed nothing


async def test_two_tenants_interleave(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """A big job queued first does not hold back another tenant's small one: turns alternate."""
    acme, globex = auth("acme"), auth("globex")
    big = await post_async(client, acme, docs("big", 12))
    small = await post_async(client, globex, docs("small", 4))
    for _ in range(4):
        await asyncio.to_thread(services.jobs.run_once)
    small_job = (await client.get(f"/api/jobs/{small}", headers=globex)).json()
    big_job = (await client.get(f"/api/jobs/{big}", headers=acme)).json()
    assert small_job["status"] == "succeeded" and small_job["done"] == 4
    assert big_job["status"] == "running" and big_job["done"] == 4
    await run_all(services)
    assert (await client.get(f"/api/jobs/{big}", headers=acme)).json()["done"] == 12


async def test_another_tenants_job_is_not_found(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """cross_tenant: read, cancel and list of another tenant's job are 404 / empty, like none."""
    job_id = await post_async(client, auth("acme"), docs("x", 1))
    other = auth("globex")
    missing = (await client.get("/api/jobs/" + "0" * 24, headers=other)).json()
    for method in ("GET", "DELETE"):
        r = await client.request(method, f"/api/jobs/{job_id}", headers=other)
        assert r.status_code == 404 and r.json() == missing
    assert (await client.get("/api/jobs", headers=other)).json() == {
        "jobs": [],
        "next_cursor": None,
    }
    job = (await client.get(f"/api/jobs/{job_id}", headers=auth("acme"))).json()
    assert job["status"] == "queued"  # the other tenant's cancel did nothing


async def test_jobs_are_listed_a_page_at_a_time(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Newest first; next_cursor pages; status filters."""
    h = auth()
    ids = []
    for n in range(3):
        ids.append(await post_async(client, h, docs(f"l{n}-", 1)))
        await asyncio.sleep(0.002)
    await client.delete(f"/api/jobs/{ids[0]}", headers=h)
    first = (await client.get("/api/jobs", headers=h, params={"limit": 2})).json()
    assert [j["job_id"] for j in first["jobs"]] == [ids[2], ids[1]] and first["next_cursor"]
    rest = await client.get("/api/jobs", headers=h, params={"cursor": first["next_cursor"]})
    assert [j["job_id"] for j in rest.json()["jobs"]] == [ids[0]]
    cancelled = await client.get("/api/jobs", headers=h, params={"status": "cancelled"})
    assert [j["job_id"] for j in cancelled.json()["jobs"]] == [ids[0]]


async def test_the_same_documents_queued_twice_are_stored_once(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """A document already stored with the same content hash is done without a second write."""
    h = auth()
    await post_async(client, h, docs("s", 2))
    await run_all(services)
    seq = services.store.latest_seq("acme")
    job_id = await post_async(client, h, docs("s", 2))
    await run_all(services)
    job = (await client.get(f"/api/jobs/{job_id}", headers=h)).json()
    assert (job["status"], job["done"]) == ("succeeded", 2)
    assert services.store.latest_seq("acme") == seq  # no change logged: nothing stored again


@pytest.mark.parametrize(
    ("method", "url", "params", "status", "code"),
    [
        ("POST", "/api/documents", {"async": "maybe"}, 422, "validation_error"),
        ("GET", "/api/jobs", {"limit": "0"}, 422, "validation_error"),
        ("GET", "/api/jobs", {"limit": "101"}, 422, "validation_error"),
        ("GET", "/api/jobs", {"status": "sleeping"}, 422, "validation_error"),
        ("GET", "/api/jobs", {"cursor": "not-a-cursor"}, 422, "validation_error"),
        ("GET", "/api/jobs/../../etc", {}, 404, "not_found"),
        ("GET", "/api/jobs/" + "z" * 24, {}, 404, "not_found"),
        ("DELETE", "/api/jobs/" + "1" * 300, {}, 404, "not_found"),
    ],
)
async def test_bad_input_is_refused_with_its_code(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    method: str,
    url: str,
    params: dict[str, str],
    status: int,
    code: str,
) -> None:
    """Malformed parameters are 422, malformed job ids 404, each with the error body."""
    body = docs("v", 1) if method == "POST" else None
    r = await client.request(method, url, params=params, headers=auth(), json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


async def test_an_invalid_async_batch_is_refused_whole_before_queueing(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Shape errors and duplicate ids are answered at once (422), and no job is made."""
    h = auth()
    dup = {"documents": [{"id": "d", "text": "one"}, {"id": "d", "text": "two"}]}
    blank = {"documents": [{"id": "d", "text": "   "}]}
    for body in (dup, blank, {"documents": []}):
        r = await client.post("/api/documents", params={"async": "true"}, headers=h, json=body)
        assert r.status_code == 422, r.text
    assert services.store.list_jobs("acme", limit=5) == []


async def test_a_store_outage_fails_no_document(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store refusing a write (an outage, injected) is retried after the lease, not failed."""
    h = auth()
    job_id = await post_async(client, h, docs("o", 2))
    worker = JobWorker(
        services.store,
        services.ingestor,
        job_records(services.settings, services.costs),
        WorkerOptions(batch=2, lease_s=0.5, nice=0),
    )
    with monkeypatch.context() as patch:
        unreachable = DependencyUnavailable("The database is unreachable; retry shortly.")
        patch.setattr(services.store, "put_documents", Mock(side_effect=unreachable))
        with pytest.raises(DependencyUnavailable):
            await asyncio.to_thread(worker.run_once)
    job = (await client.get(f"/api/jobs/{job_id}", headers=h)).json()
    assert (job["status"], job["done"], job["failed"]) == ("running", 0, 0)
    await asyncio.sleep(0.6)  # the lease runs out: the items are claimable again
    assert await asyncio.to_thread(worker.run_once) == 2
    job = (await client.get(f"/api/jobs/{job_id}", headers=h)).json()
    assert (job["status"], job["done"], job["failed"]) == ("succeeded", 2, 0)
