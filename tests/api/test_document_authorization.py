"""Document-level authorization: a document above the caller's clearance does not exist for them.

It is left out of lists and pages, GET and DELETE are 404 exactly as for an absent id, and a
write that would replace or downgrade it is refused whole (409, saying nothing about it). Another
tenant's documents stay 404 on every route, whatever the clearance.
"""

from __future__ import annotations

import io

import httpx
import pytest
from tests.api.conftest import TokenFactory

from tenantrag.models import Classification
from tenantrag.services import Services

PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED = list(Classification)

# Ids sort in this order, so pages of one show exactly where hidden documents would fall.
LADDER = [
    ("d0-public", "public"),
    ("d1-restricted", "restricted"),
    ("d2-internal", "internal"),
    ("d3-confidential", "confidential"),
    ("d4-restricted", "restricted"),
]


async def post(
    client: httpx.AsyncClient, headers: dict[str, str], *docs: dict[str, object]
) -> httpx.Response:
    return await client.post("/api/documents", headers=headers, json={"documents": list(docs)})


def doc(doc_id: str, level: str, text: str | None = None) -> dict[str, object]:
    words = text or f"Budget memo {doc_id} about the quarterly plan."
    return {"id": doc_id, "title": f"Title of {doc_id}", "text": words, "classification": level}


@pytest.fixture
async def ladder(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    """acme holds one document per level (two restricted), posted by a restricted-cleared editor."""
    r = await post(client, auth(clearance=RESTRICTED), *(doc(i, lv) for i, lv in LADDER))
    assert r.status_code == 201, r.text


async def walk(client: httpx.AsyncClient, headers: dict[str, str], limit: int) -> list[list[str]]:
    """Every page of the list, as lists of ids, following next_cursor to the end."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/documents", headers=headers, params=params)
        assert r.status_code == 200, r.text
        pages.append([d["id"] for d in r.json()["documents"]])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return pages


@pytest.mark.usefixtures("ladder")
@pytest.mark.parametrize(
    ("clearance", "visible"),
    [
        (PUBLIC, ["d0-public"]),
        (INTERNAL, ["d0-public", "d2-internal"]),
        (CONFIDENTIAL, ["d0-public", "d2-internal", "d3-confidential"]),
        (RESTRICTED, [i for i, _ in LADDER]),
    ],
)
async def test_list_and_its_pages_hold_only_what_the_caller_may_read(
    client: httpx.AsyncClient, auth: TokenFactory, clearance: Classification, visible: list[str]
) -> None:
    """Pages of one walk exactly the visible documents: no empty page, no extra cursor."""
    reader = auth(clearance=clearance, permissions=["documents:read"])
    assert await walk(client, reader, limit=1) == [[i] for i in visible]
    assert await walk(client, reader, limit=500) == [visible]
    body = (await client.get("/api/documents", headers=reader)).json()
    assert {d["classification"] for d in body["documents"]} <= {
        c.label for c in Classification if c <= clearance
    }


@pytest.mark.usefixtures("ladder")
async def test_a_cursor_naming_a_hidden_id_reveals_nothing(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """A hand-made cursor after a hidden id answers as a cursor after any other string would."""
    import base64

    reader = auth(clearance=INTERNAL)
    cursor = base64.urlsafe_b64encode(b"d1-restricted").decode().rstrip("=")
    r = await client.get("/api/documents", headers=reader, params={"cursor": cursor})
    assert [d["id"] for d in r.json()["documents"]] == ["d2-internal"]
    assert r.json()["next_cursor"] is None


def _same_error(
    hidden: httpx.Response, absent: httpx.Response, hidden_id: str, absent_id: str
) -> None:
    """The two error replies are identical once the ids they echo are swapped."""
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json() == {
        "error": {
            "code": absent.json()["error"]["code"],
            "message": absent.json()["error"]["message"].replace(absent_id, hidden_id),
        }
    }
    skip = {"x-request-id", "x-trace-id", "content-length", "ratelimit", "date"}
    assert {k: v for k, v in hidden.headers.items() if k not in skip} == {
        k: v for k, v in absent.headers.items() if k not in skip
    }


@pytest.mark.usefixtures("ladder")
async def test_get_above_clearance_is_404_exactly_as_absent(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """GET of a hidden id and of an id that never existed give the same reply."""
    reader = auth(clearance=INTERNAL, permissions=["documents:read"])
    hidden = await client.get("/api/documents/d3-confidential", headers=reader)
    absent = await client.get("/api/documents/d9-nothing", headers=reader)
    _same_error(hidden, absent, "d3-confidential", "d9-nothing")
    assert "Title of" not in hidden.text
    ok = await client.get("/api/documents/d3-confidential", headers=auth(clearance=CONFIDENTIAL))
    assert ok.status_code == 200 and ok.json()["title"] == "Title of d3-confidential"


@pytest.mark.usefixtures("ladder")
async def test_delete_above_clearance_is_404_and_deletes_nothing(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """An editor cannot delete what they cannot read; the reply is the absent id's reply."""
    editor = auth(clearance=INTERNAL)
    hidden = await client.delete("/api/documents/d4-restricted", headers=editor)
    absent = await client.delete("/api/documents/d9-nothing", headers=editor)
    _same_error(hidden, absent, "d4-restricted", "d9-nothing")
    assert services.store.get_document("acme", "d4-restricted").title == "Title of d4-restricted"
    boss = auth(clearance=RESTRICTED)
    found = await client.post("/api/search", headers=boss, json={"query": "d4-restricted memo"})
    assert "d4-restricted" in {x["document_id"] for x in found.json()["results"]}
    assert (await client.delete("/api/documents/d4-restricted", headers=boss)).status_code == 204


@pytest.mark.usefixtures("ladder")
@pytest.mark.parametrize("new_level", [None, "public", "internal", "restricted"])
async def test_replace_or_downgrade_above_clearance_is_refused_whole(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services, new_level: str | None
) -> None:
    """Re-posting a hidden id, at any level, is 409 for the whole batch; nothing changes."""
    before = services.store.get_document("acme", "d3-confidential")
    editor = auth(clearance=INTERNAL)
    replacement: dict[str, object] = {"id": "d3-confidential", "text": "Overwritten by staff."}
    if new_level:
        replacement["classification"] = new_level
    r = await post(client, editor, doc("fresh", "internal"), replacement)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "conflict"
    assert "d3-confidential" in error["message"]  # the caller's own id, echoed
    assert "Title of" not in r.text and "confidential" not in error["message"].replace(
        "d3-confidential", ""
    )
    assert services.store.get_document("acme", "d3-confidential") == before
    assert services.store.usage("acme").documents == len(LADDER)  # "fresh" was not stored
    boss = auth(clearance=RESTRICTED)
    found = await client.post("/api/search", headers=boss, json={"query": "Overwritten by staff"})
    assert all(
        x["document_id"] != "d3-confidential" or "Overwritten" not in x["text"]
        for x in found.json()["results"]
    )


@pytest.mark.usefixtures("ladder")
async def test_upload_over_a_hidden_id_is_refused(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """An upload naming a hidden id is 409 too, and leaves the document as it was."""
    before = services.store.get_document("acme", "d1-restricted")
    files = {"file": ("memo.txt", io.BytesIO(b"Staff text replacing the memo."), "text/plain")}
    r = await client.post(
        "/api/documents/upload",
        headers=auth(clearance=CONFIDENTIAL),
        files=files,
        data={"id": "d1-restricted", "classification": "public"},
    )
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "conflict"
    assert services.store.get_document("acme", "d1-restricted") == before


@pytest.mark.usefixtures("ladder")
async def test_an_editor_may_replace_and_lower_what_they_can_read(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Within clearance, replacing (and lowering) works as before: status replaced."""
    editor = auth(clearance=CONFIDENTIAL)
    r = await post(client, editor, doc("d3-confidential", "internal", "Declassified memo text."))
    assert r.status_code == 201, r.text
    assert r.json()["documents"][0]["status"] == "replaced"
    stored = services.store.get_document("acme", "d3-confidential")
    assert stored.classification is INTERNAL


async def test_an_editor_may_write_above_their_clearance_and_then_not_see_it(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """Writing up is allowed (the text is the writer's own); afterwards the document is hidden."""
    editor = auth(clearance=INTERNAL)
    r = await post(client, editor, doc("up", "restricted"))
    assert r.status_code == 201 and r.json()["documents"][0]["classification"] == "restricted"
    assert (await client.get("/api/documents/up", headers=editor)).status_code == 404
    assert (await post(client, editor, doc("up", "restricted"))).status_code == 409


@pytest.mark.usefixtures("ladder")
async def test_another_tenants_documents_are_404_on_every_document_route(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """globex, even at the top clearance, neither sees nor touches acme's ids; its writes of the
    same ids create globex's own documents."""
    g = auth("globex", clearance=RESTRICTED)
    for doc_id, _ in LADDER:
        assert (await client.get(f"/api/documents/{doc_id}", headers=g)).status_code == 404
        assert (await client.delete(f"/api/documents/{doc_id}", headers=g)).status_code == 404
    assert (await client.get("/api/documents", headers=g)).json() == {
        "documents": [],
        "next_cursor": None,
    }
    r = await post(client, g, doc("d4-restricted", "public", "Globex's own text."))
    assert r.status_code == 201 and r.json()["documents"][0]["status"] == "created"
    files = {"file": ("g.txt", io.BytesIO(b"Globex upload."), "text/plain")}
    r = await client.post(
        "/api/documents/upload", headers=g, files=files, data={"id": "d1-restricted"}
    )
    assert r.status_code == 201 and r.json()["documents"][0]["status"] == "created"
    assert services.store.get_document("acme", "d4-restricted").title == "Title of d4-restricted"
    assert services.store.get_document("acme", "d1-restricted").title == "Title of d1-restricted"
    acme_ids = [
        d["id"] for d in (await client.get("/api/documents", headers=auth())).json()["documents"]
    ]
    assert acme_ids == ["d0-public", "d2-internal"]
