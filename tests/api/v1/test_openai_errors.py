"""Errors on /v1 as OpenAI's SDK raises them: the right class, with our code and OpenAI's type
and param, whether a route, validation, the gateway or the rate limiter refused the request."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from tests.api.v1.conftest import TokenMaker
from tests.api.v1.support import Live

from tenantrag.models import Tenant, TenantStatus
from tenantrag.services import Services

pytestmark = pytest.mark.integration  # serves the app on a loopback port

QUESTION = [{"role": "user", "content": "How do staff request leave?"}]


def fields(exc: openai.APIStatusError) -> dict[str, Any]:
    """The error object of the response body, as the SDK parsed it."""
    assert isinstance(exc.body, dict)
    return exc.body


def check(exc: openai.APIStatusError, status: int, code: str, kind: str, param: str | None) -> None:
    assert exc.status_code == status
    body = fields(exc)
    assert set(body) == {"code", "message", "type", "param"}
    assert (exc.code, exc.type, exc.param) == (code, kind, param)
    assert body["message"] and exc.message


async def test_unknown_chat_model_is_not_found(live: Live, token: TokenMaker) -> None:
    """model='gpt-4o' is openai.NotFoundError model_not_found, naming the model parameter."""
    client = live.sdk(token())
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="gpt-4o", messages=QUESTION)  # type: ignore[arg-type]
    check(caught.value, 404, "model_not_found", "invalid_request_error", "model")
    assert "tenantrag" in caught.value.message


async def test_unknown_embedding_model_is_not_found(live: Live, token: TokenMaker) -> None:
    """The same for /v1/embeddings."""
    client = live.sdk(token())
    with pytest.raises(openai.NotFoundError) as caught:
        await client.embeddings.create(model="text-embedding-3-small", input="hello")
    check(caught.value, 404, "model_not_found", "invalid_request_error", "model")


BAD_CHATS: dict[str, tuple[dict[str, Any], str]] = {
    "no messages": ({"messages": []}, "messages"),
    "last turn is the assistant's": (
        {"messages": [*QUESTION, {"role": "assistant", "content": "It is..."}]},
        "messages",
    ),
    "empty question": ({"messages": [{"role": "user", "content": "  "}]}, "messages[0].content"),
    "tool message": (
        {"messages": [{"role": "tool", "content": "42", "tool_call_id": "x"}, *QUESTION]},
        "messages[0].role",
    ),
    "image part": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                    ],
                }
            ]
        },
        "messages[0].content[1]",
    ),
    "unknown role": ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    "question too long": (
        {"messages": [{"role": "user", "content": "x " * 10_001}]},
        "messages[0].content",
    ),
    "two choices": ({"messages": QUESTION, "n": 2}, "n"),
    "tools": (
        {"messages": QUESTION, "tools": [{"type": "function", "function": {"name": "f"}}]},
        "tools",
    ),
    "logprobs": ({"messages": QUESTION, "logprobs": True}, "logprobs"),
    "json answers": ({"messages": QUESTION, "response_format": {"type": "json_object"}}, None),
    "unknown field": ({"messages": QUESTION, "extra_body": {"tempreature": 0.5}}, "tempreature"),
    "top_k out of range": ({"messages": QUESTION, "extra_body": {"top_k": 500}}, "top_k"),
}


@pytest.mark.parametrize("name", BAD_CHATS)
async def test_bad_chat_requests_are_unprocessable_naming_the_field(
    live: Live, token: TokenMaker, name: str
) -> None:
    """Each bad body is openai.UnprocessableEntityError validation_error with the field as param."""
    body, param = BAD_CHATS[name]
    client = live.sdk(token())
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await client.chat.completions.create(model="tenantrag", **{"messages": [], **body})
    assert caught.value.code == "validation_error" and caught.value.type == "invalid_request_error"
    if param is None:  # a nested field: named, whatever pydantic calls its variant
        assert caught.value.param and caught.value.param.startswith("response_format")
    else:
        assert caught.value.param == param, caught.value.message


BAD_EMBEDDINGS: dict[str, tuple[dict[str, Any], str, str]] = {
    "token ids": ({"input": [1, 2, 3]}, "unsupported_input", "input[0]"),
    "token id lists": ({"input": [[1, 2], [3]]}, "unsupported_input", "input[0]"),
    "empty list": ({"input": []}, "validation_error", "input"),
    "empty string": ({"input": ""}, "validation_error", "input"),
    "an empty string in a list": ({"input": ["ok", " "]}, "validation_error", "input[1]"),
    "too many inputs": ({"input": ["a"] * 257}, "validation_error", "input"),
    "input too long": ({"input": ["a" * 20_001]}, "validation_error", "input[0]"),
    "other dimensions": ({"input": "a", "dimensions": 1536}, "validation_error", "dimensions"),
    "bad encoding": (
        {"input": "a", "encoding_format": "int8"},
        "validation_error",
        "encoding_format",
    ),
}


@pytest.mark.parametrize("name", BAD_EMBEDDINGS)
async def test_bad_embedding_requests_are_unprocessable_naming_the_field(
    live: Live, token: TokenMaker, services: Services, name: str
) -> None:
    """Token arrays, empty or oversized inputs, other dimensions: a clear 422 naming the field."""
    body, code, param = BAD_EMBEDDINGS[name]
    client = live.sdk(token())
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await client.embeddings.create(model=services.query_embeddings.model_name, **body)
    check(caught.value, 422, code, "invalid_request_error", param)


async def test_bad_credential_is_authentication_error(live: Live) -> None:
    """A key that is not ours: openai.AuthenticationError invalid_token, authentication_error."""
    client = live.sdk("sk-not-a-tenantrag-credential")
    with pytest.raises(openai.AuthenticationError) as caught:
        await client.chat.completions.create(model="tenantrag", messages=QUESTION)
    check(caught.value, 401, "invalid_token", "authentication_error", None)
    assert caught.value.response.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()


async def test_missing_credential_is_authentication_error(live: Live) -> None:
    """No Authorization header at all: 401 in OpenAI's shape (no SDK sends none, so httpx)."""
    async with live.http() as http:
        r = await http.post("/v1/chat/completions", json={"model": "tenantrag", "messages": []})
    assert r.status_code == 401
    assert r.json() == {
        "error": {
            "code": "invalid_token",
            "message": "Send 'Authorization: Bearer <token>'.",
            "type": "authentication_error",
            "param": None,
        }
    }


async def test_missing_permission_is_permission_error(live: Live, token: TokenMaker) -> None:
    """A credential without `query`: openai.PermissionDeniedError permission_denied."""
    client = live.sdk(token(permissions=["documents:read"]))
    for call in (
        client.chat.completions.create(model="tenantrag", messages=QUESTION),
        client.embeddings.create(model="tenantrag", input="hello"),
        client.models.list(),
    ):
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await call
        check(caught.value, 403, "permission_denied", "permission_error", None)


async def test_suspended_tenant_is_permission_error(
    live: Live, token: TokenMaker, services: Services
) -> None:
    """A suspended tenant's credential: PermissionDeniedError tenant_unavailable."""
    services.store.create_tenant(Tenant(id="initech"))
    services.store.set_tenant_status("initech", TenantStatus.SUSPENDED)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await live.sdk(token("initech")).models.list()
    check(caught.value, 403, "tenant_unavailable", "permission_error", None)


async def test_over_the_rate_limit_is_rate_limit_error(
    live: Live, token: TokenMaker, services: Services
) -> None:
    """Past the tenant's per-minute limit: openai.RateLimitError with Retry-After."""
    services.store.create_tenant(Tenant(id="tiny", rate_limit=2))
    client = live.sdk(token("tiny"))
    await client.models.list()
    await client.models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="tenantrag", messages=QUESTION)
    check(caught.value, 429, "rate_limited", "rate_limit_error", None)
    assert int(caught.value.response.headers["retry-after"]) >= 1


@pytest.mark.usefixtures("clear_of_month_end")
async def test_spent_budget_is_insufficient_quota(
    live: Live, token: TokenMaker, services: Services
) -> None:
    """A used-up monthly budget: RateLimitError with OpenAI's insufficient_quota type."""
    services.store.create_tenant(Tenant(id="broke", monthly_cost_budget_usd=1e-6))
    client = live.sdk(token("broke"))
    await client.chat.completions.create(model="tenantrag", messages=QUESTION)  # spends it
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="tenantrag", messages=QUESTION)
    check(caught.value, 429, "quota_exceeded", "insufficient_quota", None)


async def test_unknown_v1_route_is_not_found_in_openai_shape(live: Live, token: TokenMaker) -> None:
    """/v1/completions (the legacy API) is 404 with type and param too."""
    async with live.http() as http:
        r = await http.post(
            "/v1/completions",
            headers={"Authorization": f"Bearer {token()}"},
            json={"model": "tenantrag", "prompt": "hi"},
        )
    assert r.status_code == 404
    assert r.json()["error"] == {
        "code": "not_found",
        "message": "No such route.",
        "type": "invalid_request_error",
        "param": None,
    }


async def test_api_errors_keep_their_own_shape(live: Live, token: TokenMaker) -> None:
    """/api errors are untouched: code and message only (the contract of docs/api.md)."""
    async with live.http() as http:
        r = await http.get("/api/me")
        assert r.json() == {
            "error": {"code": "invalid_token", "message": "Send 'Authorization: Bearer <token>'."}
        }
        headers = {"Authorization": f"Bearer {token()}", "X-Tenant-ID": "acme"}
        r = await http.post("/api/query", headers=headers, json={"query": ""})
        assert set(r.json()["error"]) == {"code", "message"}
