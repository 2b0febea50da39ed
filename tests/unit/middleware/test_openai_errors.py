"""OpenAI's error fields: which `type` each of our errors gets, and how bodies are rewritten."""

from __future__ import annotations

import json

import pytest
from starlette.types import Message, Receive, Scope, Send

from tenantrag.api.routes.openai import _param
from tenantrag.middleware.openai_errors import (
    OpenAIErrorsMiddleware,
    error_type,
    is_openai_path,
    openai_error_body,
)


@pytest.mark.parametrize(
    "status, code, expected",
    [
        (400, "prompt_injection", "invalid_request_error"),
        (401, "invalid_token", "authentication_error"),
        (403, "tenant_mismatch", "permission_error"),
        (403, "permission_denied", "permission_error"),
        (404, "model_not_found", "invalid_request_error"),
        (413, "payload_too_large", "invalid_request_error"),
        (422, "validation_error", "invalid_request_error"),
        (429, "rate_limited", "rate_limit_error"),
        (429, "quota_exceeded", "insufficient_quota"),
        (500, "internal", "server_error"),
        (503, "dependency_unavailable", "server_error"),
    ],
)
def test_each_error_gets_openais_type(status: int, code: str, expected: str) -> None:
    """Statuses map to OpenAI's error types; a spent budget is insufficient_quota, as OpenAI's."""
    assert error_type(status, code) == expected


def test_body_gains_type_and_keeps_code_message_and_param() -> None:
    """Our code and message stay; type is added; a param already named is kept."""
    body = json.dumps({"error": {"code": "validation_error", "message": "m", "param": "n"}})
    out = json.loads(openai_error_body(body.encode(), 422) or b"")
    assert out == {
        "error": {
            "code": "validation_error",
            "message": "m",
            "param": "n",
            "type": "invalid_request_error",
        }
    }


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"detail": "x"}', b'{"error": "x"}'])
def test_other_bodies_are_left_alone(body: bytes) -> None:
    """Only our own error body is rewritten."""
    assert openai_error_body(body, 500) is None


@pytest.mark.parametrize(
    "path, expected",
    [("/v1", True), ("/v1/models", True), ("/v10", False), ("/api/v1", False), ("/", False)],
)
def test_only_v1_paths_are_openais(path: str, expected: bool) -> None:
    """/v1 and below; not a prefix of another word."""
    assert is_openai_path(path) is expected


@pytest.mark.parametrize(
    "loc, param",
    [
        (("body", "messages", 0, "content"), "messages[0].content"),
        (("body", "model"), "model"),
        (
            ("body", "messages", 2, "content", "list[TextPart]", 1, "type"),
            "messages[2].content[1].type",
        ),
        (("body",), None),
        (("query", "limit"), "query.limit"),
    ],
)
def test_validation_locations_are_named_the_openai_way(
    loc: tuple[object, ...], param: str | None
) -> None:
    """pydantic's location becomes OpenAI's param: dots for fields, brackets for items."""
    assert _param(loc) == param


async def test_middleware_rewrites_split_error_bodies_and_fixes_the_length() -> None:
    """An error body sent in pieces is rewritten whole, with a correct content-length."""
    body = json.dumps({"error": {"code": "not_found", "message": "No such route."}}).encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"999")]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": body[:10], "more_body": True})
        await send({"type": "http.response.body", "body": body[10:]})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request"}

    await OpenAIErrorsMiddleware(app)({"type": "http", "path": "/v1/x"}, receive, send)
    start, whole = sent
    out = whole["body"]
    assert json.loads(out)["error"]["type"] == "invalid_request_error"
    assert (b"content-length", str(len(out)).encode()) in start["headers"]


async def test_middleware_passes_successes_and_other_paths_untouched() -> None:
    """A 200 on /v1 and any error outside /v1 are sent exactly as the app sent them."""
    messages: list[Message] = [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False},
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    for path in ("/v1/chat/completions", "/api/query"):
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)  # noqa: B023  # consumed before the next iteration

        async def receive() -> Message:
            return {"type": "http.request"}

        await OpenAIErrorsMiddleware(app)({"type": "http", "path": path}, receive, send)
        assert sent == messages
