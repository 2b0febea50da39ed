"""Documents over HTTP: validation, replace, delete, pagination, quotas, and tenant isolation."""

from __future__ import annotations

import io

import httpx
import pytest
from tests.api.conftest import TokenFactory

from tenantrag.services import Services


def doc(i: str, text: str, **extra: object) -> dict[str, object]:
    return {"id": i, "title": f"Title {i}", "text": text, **extra}


async def post(
    client: httpx.AsyncClient, headers: dict[str, str], *docs: dict[str, object]
) -> httpx.Response:
    return await client.post("/api/documents", headers=headers, json={"documents": list(docs)})


async def search(
    client: httpx.AsyncClient, headers: dict[str, str], query: str, **extra: object
) -> list[dict[str, object]]:
    r = await client.post("/api/search", headers=headers, json={"query": query, **extra})
    assert r.status_code == 200, r.text
    results: list[dict[str, object]] = r.json()["results"]
    return results


async def test_post_then_search_finds_the_document(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """A posted document is durable on 201 and found by search at once."""
    r = await post(
        client, auth(), doc("leave", "Employees request annual leave through the HR portal.")
    )
    assert r.status_code == 201
    assert r.json()["documents"] == [
        {"id": "leave", "chunks": 1, "status": "created", "classification": "internal"}
    ]
    results = await search(client, auth(), "how to request annual leave")
    assert results[0]["document_id"] == "leave"
    assert results[0]["chunk_id"] == "leave#0"
    assert set(results[0]["scores"]) == {"bm25", "vector"}  # type: ignore[arg-type]


async def test_a_document_posted_without_a_title_takes_its_first_line(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """Without a title, a first line that reads as one becomes it (shown, and embedded with
    every chunk); a given title is kept; a first line that is a sentence gives none. Another
    tenant sees none of them."""
    paper = "Bovine Coronavirus in France\n\nWe sequenced a complete genome of 30,847 nucleotides."
    r = await post(
        client,
        auth(),
        {"id": "paper", "text": paper},
        {"id": "named", "title": "Given", "text": paper},
        {"id": "memo", "text": "Leave is requested in the portal.\nAsk your manager first."},
    )
    assert r.status_code == 201, r.text
    titles = {}
    for name in ("paper", "named", "memo"):
        got = await client.get(f"/api/documents/{name}", headers=auth())
        titles[name] = got.json()["title"]
    assert titles == {"paper": "Bovine Coronavirus in France", "named": "Given", "memo": ""}
    results = await search(client, auth(), "how many nucleotides does the genome have")
    assert {(x["document_id"], x["title"]) for x in results} >= {
        ("paper", "Bovine Coronavirus in France")
    }
    other = auth("globex")
    assert (await client.get("/api/documents/paper", headers=other)).status_code == 404
    assert await search(client, other, "Bovine Coronavirus in France") == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"documents": []}, "documents"),
        ({"documents": [{"id": "a", "text": ""}]}, "text"),
        ({"documents": [{"id": "a", "text": "   "}]}, "blank"),
        ({"documents": [{"id": "a", "text": "x", "metadata": {"k": [1, 2]}}]}, "metadata"),
        ({"documents": [{"id": "a", "text": "x", "metadata": {"k": {"n": 1}}}]}, "metadata"),
        ({"documents": [{"id": "a b/../c", "text": "x"}]}, "id"),
        ({"documents": [{"id": "a", "text": "x", "classification": "secret"}]}, "classification"),
        ({"documents": [{"id": "a", "text": "x", "surprise": 1}]}, "surprise"),
        ({"documents": [{"text": "x"}] * 257}, "documents"),
        ({"docs": []}, "documents"),
    ],
)
async def test_invalid_documents_get_422_saying_which_and_why(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    services: Services,
    body: dict[str, object],
    fragment: str,
) -> None:
    """Each invalid batch is refused with 422 naming the field, and nothing is stored."""
    r = await client.post("/api/documents", headers=auth(), json=body)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    assert fragment in r.json()["error"]["message"]
    assert services.store.usage("acme").documents == 0


async def test_a_document_over_5mb_is_refused(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """A document whose text is over 5 MB gets 422 and the batch is not stored."""
    big = "word " * (1024 * 1024 + 10)
    r = await post(client, auth(), doc("big", big))
    assert r.status_code == 422
    assert "5242880" in r.json()["error"]["message"]


async def test_malformed_json_is_422(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    """A body that is not JSON gets the contract's error shape."""
    r = await client.post(
        "/api/documents",
        headers={**auth(), "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code == 422
    assert set(r.json()["error"]) == {"code", "message"}


async def test_replacing_a_document_changes_what_is_found(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """Posting an existing id replaces it: the old text is no longer found, the new one is."""
    await post(client, auth(), doc("policy", "The travel policy allows economy flights only."))
    r = await post(
        client, auth(), doc("policy", "The vacation policy grants twenty days of paid leave.")
    )
    assert r.json()["documents"][0]["status"] == "replaced"
    assert all(
        x["document_id"] != "policy"
        for x in await search(client, auth(), "economy flights", mode="bm25")
    )
    found = await search(client, auth(), "paid leave days", mode="bm25")
    assert found[0]["document_id"] == "policy"


async def test_delete_removes_from_every_index(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """After DELETE the document is gone from bm25, vector and hybrid search, and GET is 404."""
    await post(
        client, auth(), doc("gone", "Quarterly zebra migration report for the savanna office.")
    )
    assert (await client.delete("/api/documents/gone", headers=auth())).status_code == 204
    for mode in ("bm25", "vector", "hybrid"):
        assert all(
            x["document_id"] != "gone"
            for x in await search(client, auth(), "zebra migration", mode=mode)
        )
    assert (await client.get("/api/documents/gone", headers=auth())).status_code == 404
    assert (await client.delete("/api/documents/gone", headers=auth())).status_code == 404


async def test_another_tenants_document_is_404_everywhere(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """globex cannot read, delete or find acme's document, even by its exact id or words."""
    secret = "Acme canary: the launch code word is periwinkle-octopus."
    await post(client, auth("acme"), doc("canary", secret))
    g = auth("globex")
    assert (await client.get("/api/documents/canary", headers=g)).status_code == 404
    assert (await client.delete("/api/documents/canary", headers=g)).status_code == 404
    for mode in ("bm25", "vector", "hybrid"):
        assert await search(client, g, "periwinkle-octopus launch code", mode=mode) == []
    assert (await client.get("/api/documents", headers=g)).json()["documents"] == []
    assert (await client.get("/api/documents/canary", headers=auth("acme"))).status_code == 200


async def test_list_is_paginated_with_a_cursor(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """Pages of 2 walk every document exactly once."""
    await post(
        client, auth(), *[doc(f"d{i}", f"Document number {i} about topic {i}.") for i in range(5)]
    )
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/documents", headers=auth(), params=params)).json()
        seen += [d["id"] for d in page["documents"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["d0", "d1", "d2", "d3", "d4"]
    bad = await client.get("/api/documents", headers=auth(), params={"cursor": "!!!"})
    assert bad.status_code == 422


async def test_document_quota_is_enforced(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Past the document quota a post gets 429 quota_exceeded and stores nothing."""
    services.store.update_tenant("acme", document_quota=2)
    assert (
        await post(client, auth(), doc("a", "alpha text"), doc("b", "beta text"))
    ).status_code == 201
    r = await post(client, auth(), doc("c", "gamma text"))
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "quota_exceeded"
    assert services.store.usage("acme").documents == 2
    assert (await post(client, auth(), doc("a", "alpha replaced"))).status_code == 201


async def test_storage_quota_is_enforced(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Past the storage quota a post gets 429 quota_exceeded."""
    services.store.update_tenant("acme", storage_quota_bytes=100)
    r = await post(client, auth(), doc("a", "x" * 200))
    assert r.status_code == 429
    assert "Storage quota" in r.json()["error"]["message"]


async def test_permissions_are_enforced_per_route(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """A query-only token cannot write, read or delete documents."""
    h = auth(permissions=["query"])
    assert (await post(client, h, doc("a", "text"))).status_code == 403
    assert (await client.get("/api/documents", headers=h)).status_code == 403
    assert (await client.delete("/api/documents/a", headers=h)).status_code == 403
    r = await client.post(
        "/api/search", headers=auth(permissions=["documents:read"]), json={"query": "x"}
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "permission_denied"


async def test_upload_markdown_and_unsupported_type(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """A markdown upload is stored and searchable; an executable is 415; garbage PDF is 422."""
    files = {
        "file": (
            "guide.md",
            io.BytesIO(b"# Onboarding\n\nNew staff get a laptop on day one."),
            "text/markdown",
        )
    }
    r = await client.post(
        "/api/documents/upload", headers=auth(), files=files, data={"id": "guide"}
    )
    assert r.status_code == 201, r.text
    assert (await search(client, auth(), "laptop day one", mode="bm25"))[0][
        "document_id"
    ] == "guide"
    exe = {"file": ("tool.exe", io.BytesIO(b"MZ\x90\x00"), "application/octet-stream")}
    assert (
        await client.post("/api/documents/upload", headers=auth(), files=exe)
    ).status_code == 415
    pdf = {"file": ("broken.pdf", io.BytesIO(b"%PDF-1.7 garbage"), "application/pdf")}
    r = await client.post("/api/documents/upload", headers=auth(), files=pdf)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"


async def test_pii_raises_classification_to_confidential(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """A document carrying an email address is stored as confidential unless marked higher."""
    r = await post(client, auth(), doc("hr", "Contact jane.doe@example.com for payroll questions."))
    assert r.json()["documents"][0]["classification"] == "confidential"


@pytest.mark.usefixtures("clear_of_month_end")
async def test_writes_are_costed_for_their_tenant_only(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """An ingest bills embedding tokens and compute to its tenant; the other tenant sees none."""
    await post(client, auth(), doc("a", "Alpha beta gamma delta epsilon."))
    assert (await client.delete("/api/documents/a", headers=auth())).status_code == 204
    usage = (await client.get("/api/usage", headers=auth())).json()
    assert usage["by_type"]["embedding"]["amount_usd"] > 0
    assert usage["by_type"]["compute"]["events"] >= 2
    other = (await client.get("/api/usage", headers=auth("globex"))).json()
    assert "embedding" not in other["by_type"]
