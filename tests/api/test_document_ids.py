"""Document ids: an id holding `/` is addressable; an id no client could address is refused.

Bulk ingestion names documents by their path (`guides/leave.md`) and the demo's handbook ids are
paths too, so GET and DELETE take the rest of the URL path as the id. Ids with an empty or dot-only
segment (`a//b`, `a/./b`, `a/../b`, `a/`) are refused at creation with 422, because clients and
proxies rewrite those paths before the server sees them.
"""

from __future__ import annotations

import io

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.api.conftest import TokenFactory

from tenantrag.ingest.bulk import file_document_id
from tenantrag.models import Classification, is_valid_document_id
from tenantrag.services import Services

NESTED = "guides/hr/leave.md"


async def post(client: httpx.AsyncClient, headers: dict[str, str], doc_id: str) -> httpx.Response:
    body = {"documents": [{"id": doc_id, "text": "Annual leave is requested in the HR portal."}]}
    return await client.post("/api/documents", headers=headers, json=body)


@pytest.mark.parametrize("path", [NESTED, "guides%2Fhr%2Fleave.md", "guides/hr%2Fleave.md"])
async def test_an_id_with_slashes_is_read_and_deleted_by_its_path(
    client: httpx.AsyncClient, auth: TokenFactory, path: str
) -> None:
    """GET and DELETE reach `guides/hr/leave.md` whether the slashes are sent plain or encoded."""
    assert (await post(client, auth(), NESTED)).status_code == 201
    r = await client.get(f"/api/documents/{path}", headers=auth())
    assert r.status_code == 200 and r.json()["id"] == NESTED
    assert (await client.delete(f"/api/documents/{path}", headers=auth())).status_code == 204
    assert (await client.get(f"/api/documents/{NESTED}", headers=auth())).status_code == 404


async def test_an_id_with_slashes_is_another_tenants_404(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """globex can neither read nor delete acme's nested id, at any clearance."""
    assert (await post(client, auth(), NESTED)).status_code == 201
    g = auth("globex", clearance=Classification.RESTRICTED)
    assert (await client.get(f"/api/documents/{NESTED}", headers=g)).status_code == 404
    assert (await client.delete(f"/api/documents/{NESTED}", headers=g)).status_code == 404
    assert services.store.get_document("acme", NESTED).id == NESTED


async def test_a_nested_id_above_clearance_is_404_like_any_other(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """The path form changes nothing about authorization."""
    body = {"documents": [{"id": NESTED, "text": "Board notes.", "classification": "restricted"}]}
    boss = auth(clearance=Classification.RESTRICTED)
    assert (await client.post("/api/documents", headers=boss, json=body)).status_code == 201
    staff = auth()
    assert (await client.get(f"/api/documents/{NESTED}", headers=staff)).status_code == 404
    assert (await client.delete(f"/api/documents/{NESTED}", headers=staff)).status_code == 404


UNADDRESSABLE = [
    "a//b",
    "a/./b",
    "a/../b",
    "a/..",
    "a/.",
    "a/",
    "/a",
    ".a",
    "a b",
    "a?b",
    "a#b",
    "a%2Fb",
    "a\\b",
    "ü",
    "a" * 129,
]


@pytest.mark.parametrize("doc_id", UNADDRESSABLE)
async def test_an_id_no_client_could_address_is_422_and_stores_nothing(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services, doc_id: str
) -> None:
    """JSON and upload alike: 422 naming the id field; nothing is stored."""
    r = await post(client, auth(), doc_id)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert "id" in r.json()["error"]["message"]
    files = {"file": ("a.txt", io.BytesIO(b"Some text."), "text/plain")}
    r = await client.post("/api/documents/upload", headers=auth(), files=files, data={"id": doc_id})
    assert r.status_code == 422, r.text
    assert services.store.usage("acme").documents == 0


@given(st.text(max_size=300))
def test_bulk_ingestion_names_every_file_with_a_valid_id(rel: str) -> None:
    """Whatever a file's relative path, the id bulk ingestion gives it is addressable."""
    assert is_valid_document_id(file_document_id(rel))


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("guides/leave.md", "guides/leave.md"),
        ("_posts/2024 notes.md", "posts/2024-notes.md"),
        ("a/./b.md", "a/b.md"),
        ("résumé.md", "r-sum-.md"),
    ],
)
def test_bulk_ids_keep_the_path_where_they_can(rel: str, expected: str) -> None:
    assert file_document_id(rel) == expected


def test_two_long_paths_get_two_ids() -> None:
    """Paths too long for an id keep their head and differ by a hash of the whole."""
    a, b = file_document_id("x/" * 100 + "a.md"), file_document_id("x/" * 100 + "b.md")
    assert a != b and len(a) <= 128 and is_valid_document_id(a)
