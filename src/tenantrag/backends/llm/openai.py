"""An adapter for any OpenAI-compatible `/v1/chat/completions` endpoint, over httpx.

Vendor failures become our errors at this boundary: timeouts → LLMTimeout, lost connections →
LLMUnreachable, 429 → LLMRateLimited, 5xx → LLMServerError (all retryable, carrying Retry-After),
any other 4xx → LLMRequestRejected. The API key is sent in one header and never logged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from pydantic import SecretStr

from tenantrag.backends.http import parse_retry_after
from tenantrag.backends.llm import (
    Completion,
    Delta,
    Done,
    LLMRateLimited,
    LLMRequestRejected,
    LLMServerError,
    LLMTimeout,
    LLMUnreachable,
    Prompt,
    StreamEvent,
)
from tenantrag.backends.llm.prompt import NO_ANSWER, is_no_answer, refusal_so_far
from tenantrag.backends.llm.tokens import TokenCounter, count_chat_tokens, counter_for_model
from tenantrag.errors import UpstreamError
from tenantrag.settings import LLMSettings

MAX_ERROR_CHARS = 300


class OpenAIChatLLM:
    """Chat completions from an OpenAI-compatible API, whole or streamed.

    Args:
        base_url: the API root, e.g. `https://api.openai.com/v1`.
        model: the model name sent with each request.
        api_key: sent as a bearer token when not empty.
        timeout: seconds allowed for connecting and for each read.
        max_tokens: the answer's token limit, if any.
        temperature: sampling temperature; None leaves the server's default.
        client: an httpx client to use (its owner closes it); one is made on first use otherwise.
        count_tokens: counts usage when the server reports none; tiktoken for `model` by default.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: SecretStr | str = "",
        timeout: float = 30.0,
        max_tokens: int | None = None,
        temperature: float | None = 0.0,
        client: httpx.AsyncClient | None = None,
        count_tokens: TokenCounter | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.timeout = model, timeout
        self.max_tokens, self.temperature = max_tokens, temperature
        self._key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._client, self._owns_client = client, client is None
        self._count = count_tokens

    @classmethod
    def from_settings(cls, settings: LLMSettings, **overrides: Any) -> OpenAIChatLLM:
        """The adapter configured by TENANTRAG_LLM__* settings."""
        options: dict[str, Any] = {
            "base_url": settings.base_url,
            "model": settings.model,
            "api_key": settings.api_key,
            "timeout": settings.timeout_s,
            "max_tokens": settings.max_completion_tokens,
        }
        return cls(**(options | overrides))

    def __repr__(self) -> str:
        return f"OpenAIChatLLM(url={self.url!r}, model={self.model!r})"

    async def aclose(self) -> None:
        """Close the HTTP client if this adapter made it."""
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def complete(self, prompt: Prompt, *, tenant: str) -> Completion:
        """The whole answer, with the server's usage figures when it sends them."""
        with self._translate_errors():
            response = await self._http().post(
                self.url,
                json=self._body(prompt, stream=False),
                headers=self._headers(),
                timeout=self.timeout,
            )
        self._raise_for_status(response, response.text)
        try:
            data = response.json()
            text = data["choices"][0]["message"].get("content") or ""
            usage = data.get("usage")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise UpstreamError("The language model sent a malformed response") from exc
        return self._completion(prompt, settle(text), usage)

    async def stream(self, prompt: Prompt, *, tenant: str) -> AsyncIterator[StreamEvent]:
        """Server-sent chunks as deltas, then the completion with the final chunk's usage.

        While the text could still be the refusal it is held back: a refusal is sent as
        NO_ANSWER exactly, whatever the model wrote after it.
        """
        parts: list[str] = []
        usage: Any = None
        held, refusal = "", None  # refusal: None while undecided (see prompt.refusal_so_far)
        with self._translate_errors():
            body = self._body(prompt, stream=True)
            async with self._http().stream(
                "POST", self.url, json=body, headers=self._headers(), timeout=self.timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._raise_for_status(response, response.text)
                finished = False
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators and ": keep-alive" comments
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        finished = True
                        break
                    chunk = self._chunk(payload)
                    usage = chunk.get("usage") or usage
                    for piece in _pieces(chunk):
                        parts.append(piece)
                        if refusal is None:
                            held += piece
                            refusal = refusal_so_far(held)
                            piece = held if refusal is False else ""
                        if piece and refusal is False:
                            yield Delta(piece)
                if not finished:
                    raise LLMUnreachable("The language model's stream ended before [DONE]")
        text = settle("".join(parts))
        if refusal is not False and text:
            yield Delta(text)  # the refusal, or a short answer that never left the doubt
        yield Done(self._completion(prompt, text, usage))

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout))
        return self._client

    def _headers(self) -> dict[str, str]:
        key = self._key.get_secret_value()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _body(self, prompt: Prompt, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": prompt.messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return body

    def _chunk(self, payload: str) -> dict[str, Any]:
        try:
            chunk = json.loads(payload)
        except ValueError as exc:
            raise UpstreamError("The language model sent a malformed stream chunk") from exc
        if not isinstance(chunk, dict):
            raise UpstreamError("The language model sent a malformed stream chunk")
        if "error" in chunk:  # some servers report failures inside a 200 stream
            raise LLMServerError(self._scrub(str(chunk["error"])), status=500)
        return chunk

    def _completion(self, prompt: Prompt, text: str, usage: Any) -> Completion:
        if isinstance(usage, dict) and "prompt_tokens" in usage:
            return Completion(
                text,
                self.model,
                int(usage["prompt_tokens"]),
                int(usage.get("completion_tokens", 0)),
            )
        count = self._count or counter_for_model(self.model)  # the server sent no usage
        return Completion(text, self.model, count_chat_tokens(prompt.messages, count), count(text))

    def _raise_for_status(self, response: httpx.Response, text: str) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = self._scrub(_error_message(text))
        message = f"The language model answered {status}: {detail}"
        retry_after = parse_retry_after(response.headers)
        if status == 429:
            raise LLMRateLimited(message, retry_after=retry_after)
        if status >= 500:
            raise LLMServerError(message, status=status, retry_after=retry_after)
        raise LLMRequestRejected(message, status=status)

    def _scrub(self, text: str) -> str:
        """`text` without the API key, should an error message echo it."""
        key = self._key.get_secret_value()
        return text.replace(key, "***")[:MAX_ERROR_CHARS] if key else text[:MAX_ERROR_CHARS]

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            raise LLMTimeout(f"The language model did not answer within {self.timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise LLMUnreachable(
                f"The language model could not be reached ({type(exc).__name__})"
            ) from exc


def settle(text: str) -> str:
    """The model's answer, or exactly NO_ANSWER when it refused (prompt.is_no_answer).

    A refusal is ours to word: whatever the model added after it (a citation, a guess from
    outside the sources) is dropped, so every answerer refuses alike.
    """
    return NO_ANSWER if is_no_answer(text) else text


def _pieces(chunk: dict[str, Any]) -> list[str]:
    """The text pieces of one stream chunk."""
    found = []
    for choice in chunk.get("choices") or ():
        piece = (choice.get("delta") or {}).get("content")
        if piece:
            found.append(str(piece))
    return found


def _error_message(text: str) -> str:
    """The `error.message` of an OpenAI error body, else the body itself."""
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return text.strip() or "no details"
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(error) if error else (text.strip() or "no details")
