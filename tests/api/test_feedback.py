"""POST /api/feedback: a rating of one of your tenant's answers, stored, audited and counted.

The answer is named by the X-Request-ID of its reply. Another tenant's request id is 404 exactly
as an unknown one: the reply must not tell a caller that the id exists elsewhere.
"""

from __future__ import annotations

import json

import httpx
import pytest
from tests.api.conftest import TokenFactory, audit_text, audit_trail

from tenantrag.app import create_app
from tenantrag.services import Services
from tenantrag.settings import Settings

HANDBOOK = {
    "documents": [
        {
            "id": "leave",
            "title": "Leave",
            "text": "Staff request annual leave in the HR portal. Managers approve it in two days.",
        }
    ]
}


async def answered(client: httpx.AsyncClient, headers: dict[str, str], **extra: object) -> str:
    """Ask a question; the X-Request-ID of the answer."""
    r = await client.post(
        "/api/query", headers=headers, json={"query": "How is leave requested?", **extra}
    )
    assert r.status_code == 200, r.text
    return r.headers["X-Request-ID"]


async def rate(
    client: httpx.AsyncClient, headers: dict[str, str], request_id: str, **body: object
) -> httpx.Response:
    return await client.post(
        "/api/feedback", headers=headers, json={"request_id": request_id, "rating": "up", **body}
    )


@pytest.fixture
async def loaded(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    for tenant in ("acme", "globex"):
        r = await client.post("/api/documents", headers=auth(tenant), json=HANDBOOK)
        assert r.status_code == 201


@pytest.mark.usefixtures("loaded")
async def test_a_rating_is_stored_once_per_user_and_answer(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """201 the first time, 200 when the same user changes it; another user rates on their own."""
    request_id = await answered(client, auth(user="ann"))
    r = await rate(client, auth(user="ann", permissions=["query"]), request_id, comment="Clear.")
    assert r.status_code == 201, r.text
    assert r.json() == {
        "request_id": request_id,
        "rating": "up",
        "comment": "Clear.",
        "created": True,
    }
    r = await rate(client, auth(user="ann"), request_id, rating="down")
    assert (r.status_code, r.json()["created"], r.json()["comment"]) == (200, False, None)
    again = await rate(client, auth(user="ann"), request_id, rating="down")
    assert again.status_code == 200  # idempotent: the same rating twice is one rating
    assert (await rate(client, auth(user="bob"), request_id)).status_code == 201
    (ann, bob) = sorted(
        services.store.feedback_between("acme", start=0, end=2e9), key=lambda f: f.user_id
    )
    assert (ann.rating, bob.rating) == ("down", "up")


@pytest.mark.usefixtures("loaded")
async def test_another_tenants_request_id_is_404_like_an_unknown_one(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """globex rating acme's answer gets the very reply an unknown id gets; nothing is stored."""
    acme_request = await answered(client, auth("acme"))
    await answered(client, auth("globex"))
    before = services.store.audit_head()
    cross = await rate(client, auth("globex"), acme_request)
    unknown = await rate(client, auth("globex"), "never-was-a-request")
    assert cross.status_code == unknown.status_code == 404
    assert cross.json() == unknown.json()
    assert cross.json()["error"]["code"] == "not_found"
    assert services.store.audit_head() == before
    assert services.store.feedback_between("globex", start=0, end=2e9) == []
    usage = await client.get("/api/usage", headers=auth("globex"))
    assert usage.json()["feedback"] == {"up": 0, "down": 0, "with_comment": 0}


@pytest.mark.usefixtures("loaded")
async def test_a_search_or_a_document_read_is_no_answer(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """Only a /api/query answer can be rated: a search's request id is 404."""
    r = await client.post("/api/search", headers=auth(), json={"query": "leave"})
    assert (await rate(client, auth(), r.headers["X-Request-ID"])).status_code == 404
    r = await client.get("/api/documents", headers=auth())
    assert (await rate(client, auth(), r.headers["X-Request-ID"])).status_code == 404


@pytest.mark.usefixtures("loaded")
async def test_a_streamed_answer_can_be_rated(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """The X-Request-ID of an SSE answer names it too (its record is stored before `done`)."""
    request_id = await answered(client, auth(), stream=True)
    assert (await rate(client, auth(), request_id, rating="down")).status_code == 201


@pytest.mark.usefixtures("loaded")
async def test_a_chat_completion_can_be_rated(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """/v1/chat/completions answers are /api/query answers: their request id is rateable."""
    r = await client.post(
        "/v1/chat/completions",
        headers=auth(),
        json={
            "model": "tenantrag",
            "messages": [{"role": "user", "content": "How is leave requested?"}],
        },
    )
    assert r.status_code == 200, r.text
    assert (await rate(client, auth(), r.headers["X-Request-ID"])).status_code == 201


@pytest.mark.usefixtures("loaded")
async def test_the_comment_is_redacted_and_kept_out_of_the_audit(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Personal data in a comment is redacted before storing; the record holds the rating only."""
    request_id = await answered(client, auth())
    comment = "Wrong! Call me at 415-555-0132 or mail jane.doe@example.com, secret words."
    r = await rate(client, auth(), request_id, rating="down", comment=comment)
    stored = r.json()["comment"]
    assert stored == "Wrong! Call me at [REDACTED_PHONE] or mail [REDACTED_EMAIL], secret words."
    (feedback,) = services.store.feedback_between("acme", start=0, end=2e9)
    assert feedback.comment == stored
    record = audit_trail(services)[-1]
    assert (record["action"], record["resource_ids"]) == ("feedback", [request_id])
    assert record["detail"] == {"rating": "down", "comment_chars": len(stored)}
    assert "secret words" not in audit_text(services)


@pytest.mark.usefixtures("loaded")
async def test_usage_counts_the_ratings_of_the_period(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """GET /api/usage gains `feedback`: ups, downs and how many came with a comment."""
    first, second = await answered(client, auth()), await answered(client, auth())
    await rate(client, auth(user="ann"), first, comment="good")
    await rate(client, auth(user="bob"), first, rating="down")
    await rate(client, auth(user="ann"), second, rating="down", comment="vague")
    usage = (await client.get("/api/usage", headers=auth())).json()
    assert usage["feedback"] == {"up": 1, "down": 2, "with_comment": 2}
    old = (await client.get("/api/usage?from=2020-01-01&to=2020-01-31", headers=auth())).json()
    assert old["feedback"] == {"up": 0, "down": 0, "with_comment": 0}


@pytest.mark.parametrize(
    "body",
    [
        {"rating": "meh"},
        {"rating": None},
        {"request_id": "short"},
        {"request_id": "has spaces in it"},
        {"request_id": "x" * 129},
        {"comment": "x" * 2001},
        {"comment": "nul \x00 byte"},
        {"comment": "lone \ud800 surrogate"},
        {"extra": "field"},
    ],
    ids=[
        "rating",
        "null-rating",
        "short-id",
        "spaces",
        "long-id",
        "long",
        "nul",
        "surrogate",
        "extra",
    ],
)
async def test_bad_feedback_is_422_saying_why(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services, body: dict[str, object]
) -> None:
    """Bad ratings, ids and comments are refused before anything is looked up or stored."""
    before = services.store.audit_head()
    payload = {"request_id": "a-valid-request-id", "rating": "up", **body}
    # Sent as ASCII JSON, so a lone surrogate travels as the escape "\\ud800" a client can send.
    raw = json.dumps(payload).encode()
    headers = auth() | {"Content-Type": "application/json"}
    r = await client.post("/api/feedback", headers=headers, content=raw)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert services.store.audit_head() == before


async def test_feedback_needs_the_query_permission(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """A token without `query` cannot rate answers (403), a missing token is 401."""
    r = await rate(client, auth(permissions=["documents:read"]), "a-valid-request-id")
    assert r.status_code == 403
    r = await client.post(
        "/api/feedback", json={"request_id": "a-valid-request-id", "rating": "up"}
    )
    assert r.status_code in (400, 401)


async def test_the_endpoint_is_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    """POST /api/feedback is documented with its body, its 201 and 200, and bearer auth."""
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/api/feedback"]["post"]
    assert {"201", "200", "404", "403", "422"} <= set(operation["responses"])
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"request_id", "rating", "comment"}
    assert operation["security"] == [{"bearer": []}]


async def test_another_allowed_origin_can_read_the_request_id(
    settings: Settings, services: Services, auth: TokenFactory
) -> None:
    """With TENANTRAG_CORS_ORIGINS, X-Request-ID is exposed to that origin's fetch; the console
    itself is same-origin and reads it anyway (tests/browser)."""
    origin = "https://portal.example"
    app = create_app(settings.model_copy(update={"cors_origins": [origin]}), services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        r = await http.get("/api/documents", headers=auth() | {"Origin": origin})
        exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
        assert r.headers["access-control-allow-origin"] == origin
        assert {"x-request-id", "x-trace-id", "retry-after"} <= exposed
        other = await http.get(
            "/api/documents", headers=auth() | {"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
