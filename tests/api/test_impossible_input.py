"""Ids no object can have, and NUL characters, on both stores: 404 or 422, never a 500.

An outside check found DELETE /api/documents/<201 characters> a 500 on both stores (the raw id
reached the audit record, which holds at most 200) and a NUL in a path id a 500 on PostgreSQL
(psycopg refuses NUL in text). Every entry point below runs against the embedded SQLite store
and the real PostgreSQL one (a schema of its own in this run's database).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from tests.api.conftest import TokenFactory
from tests.contract.conftest import migrated_schema

from tenantrag.app import create_app
from tenantrag.backends import Embedder
from tenantrag.models import Tenant
from tenantrag.services import open_services
from tenantrag.settings import Settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (embedded SQLite) or the url of a new migrated PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    with migrated_schema(request.getfixturevalue("postgres_database")) as url:
        yield url


@pytest.fixture
async def http(
    settings: Settings, embedder: Embedder, database_url: str | None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the store of `database_url`, with tenants acme and globex."""
    # The PostgreSQL node's change follower stops within one poll interval; a short one keeps
    # each test's teardown from waiting out the default second.
    settings = settings.model_copy(
        update={"database_url": database_url, "replication_poll_s": 0.05}
    )
    services = await open_services(settings, embedder=embedder)
    services.store.create_tenant(Tenant(id="acme"))
    services.store.create_tenant(Tenant(id="globex"))
    transport = httpx.ASGITransport(app=create_app(settings, services), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await services.close()


def _code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


IMPOSSIBLE_IDS = ["d" * 129, "d" * 201, "d" * 5000, "a%00b", "a%01b", "-lead", "a%20b"]


@pytest.mark.parametrize("doc_id", IMPOSSIBLE_IDS)
async def test_an_id_no_document_can_have_is_404_on_get_and_delete(
    http: httpx.AsyncClient, auth: TokenFactory, doc_id: str
) -> None:
    """GET and DELETE answer exactly as for an absent document, and the audit still works."""
    for method in ("GET", "DELETE"):
        response = await http.request(method, f"/api/documents/{doc_id}", headers=auth())
        assert response.status_code == 404, (method, response.text)
        assert _code(response) == "not_found"
    # the store and the audit trail are unharmed: a real document still round-trips
    made = await http.post(
        "/api/documents", json={"documents": [{"id": "ok", "text": "Fine."}]}, headers=auth()
    )
    assert made.status_code == 201, made.text
    assert (await http.delete("/api/documents/ok", headers=auth())).status_code == 204
    trail = await http.get("/api/audit", headers=auth())
    assert trail.status_code == 200, trail.text


async def test_a_nul_anywhere_in_the_input_is_a_client_error(
    http: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """Titles, metadata keys and values, text, filters, queries, job/key ids, feedback."""
    headers = auth()
    bodies = [
        {"documents": [{"id": "n1", "text": "Some text.", "title": "a\x00b"}]},
        {"documents": [{"id": "n3", "text": "Some text.", "metadata": {"k\x00": "v"}}]},
        {"documents": [{"id": "n4", "text": "Some text.", "metadata": {"k": "v\x00"}}]},
        {"documents": [{"id": "n5", "text": "Some text.", "source": "s\x00"}]},
    ]
    for body in bodies:
        response = await http.post("/api/documents", json=body, headers=headers)
        assert response.status_code in (400, 422), (body, response.text)
    listed = await http.get("/api/documents", headers=headers)
    assert listed.json()["documents"] == []  # nothing half-written
    # a NUL in the text is content, not a name: dropped, on both stores alike
    made = await http.post(
        "/api/documents",
        json={"documents": [{"id": "t", "text": "Some\x00text."}]},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    for body in (
        {"query": "a\x00b"},
        {"query": "ab", "filters": {"k": "v\x00"}},
        {"query": "ab", "filters": {"k\x00": "v"}},
    ):
        for path in ("/api/search", "/api/query"):
            response = await http.post(path, json=body, headers=headers)
            assert response.status_code < 500, (path, body, response.text)  # 200 or 422
    requests = [
        ("GET", "/api/jobs/a%00b", None),
        ("DELETE", "/api/jobs/a%00b", None),
        ("DELETE", "/api/keys/a%00b", None),
        ("DELETE", "/api/keys/" + "e" * 64, None),
    ]
    for method, path, body in requests:
        response = await http.request(method, path, json=body, headers=headers)
        assert response.status_code in (400, 404, 422), (method, path, response.text)
        assert "error" in response.json()


@pytest.mark.parametrize("store_id", ["a\x00b"])
def test_the_postgres_store_refuses_nul_as_a_validation_error(
    postgres_database: str, store_id: str
) -> None:
    """The seam under every route: psycopg's NUL refusal becomes ValidationFailed (422)."""
    from tenantrag.backends.store import store_at
    from tenantrag.errors import NotFound, ValidationFailed

    with migrated_schema(postgres_database) as url:
        store = store_at(url)
        store.open()
        try:
            store.create_tenant(Tenant(id="acme"))
            with pytest.raises(ValidationFailed):
                store.get_document("acme", store_id)
            with pytest.raises(NotFound):  # the pool's connection is still good
                store.get_document("acme", "ab")
        finally:
            store.close()
