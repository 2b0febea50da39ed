"""OpenAI's error fields on /v1: every error body there also carries `type` and `param`.

OpenAI's SDKs and the tools built on them read `{"error": {"message", "type", "param", "code"}}`.
Our body already has `code` and `message`; this wrapper adds the other two to every /v1 error,
whoever raised it (a route, the validation handler, the auth, body-limit or rate-limit
middleware, the catch-all), so no error path needs to know which API it answers. Successful
responses, streams included, pass through untouched; only error bodies (small, JSON) are held.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/v1"


def is_openai_path(path: str) -> bool:
    """True for /v1 and anything below it."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def error_type(status: int, code: str) -> str:
    """OpenAI's `type` for an error of `status` with our `code`."""
    if code == "quota_exceeded":
        return "insufficient_quota"  # what OpenAI answers when a budget is spent
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error_body(body: bytes, status: int) -> bytes | None:
    """`body` with `type` and `param` added to its error, or None when it is not our error body."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return None
    error.setdefault("type", error_type(status, error["code"]))
    error.setdefault("param", None)
    return json.dumps(data).encode()


class OpenAIErrorsMiddleware:
    """Adds OpenAI's `type` and `param` to JSON error bodies of /v1 requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_openai_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        held: Message | None = None  # the start of an error response, until its body is whole
        parts: list[bytes] = []

        async def rewriting_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                if message["status"] >= 400 and _is_json(message):
                    held = message
                    return
                await send(message)
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            original = b"".join(parts)
            body = openai_error_body(original, held["status"]) or original
            await send({**held, "headers": _with_length(held, len(body))})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewriting_send)


def _is_json(start: Message) -> bool:
    for key, value in start.get("headers", []):
        if key.lower() == b"content-type":
            return bytes(value).startswith(b"application/json")
    return False


def _with_length(start: Message, length: int) -> list[tuple[bytes, bytes]]:
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    return [*headers, (b"content-length", str(length).encode())]
