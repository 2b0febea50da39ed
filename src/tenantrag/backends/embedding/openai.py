"""Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint, over pooled HTTP with retries.

Transient failures (429, 5xx, timeouts, connection errors) are retried with exponential backoff
and jitter, honouring Retry-After; any other 4xx fails at once. Every failure leaves as an
UpstreamError (or its DependencyUnavailable / UpstreamTimeout subclasses).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import structlog
from pydantic import SecretStr
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from tenantrag.backends.http import parse_retry_after
from tenantrag.errors import DependencyUnavailable, UpstreamError, UpstreamTimeout
from tenantrag.settings import EmbeddingSettings

TokenCounter = Callable[[str], int]

log = structlog.get_logger(__name__)

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
MAX_DETAIL_CHARS = 200


class _Transient(Exception):
    """A failure worth retrying; carries the error to raise when the attempts run out."""

    def __init__(self, error: UpstreamError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


class OpenAIEmbedder:
    """An Embedder backed by an OpenAI-compatible HTTP endpoint; thread-safe."""

    model_name: str
    dimensions: int

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        dimensions: int,
        api_key: str | SecretStr = "",
        timeout_s: float = 10.0,
        batch_size: int = 64,
        max_attempts: int = 3,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        send_dimensions: bool = False,
        token_counter: TokenCounter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Set up a pooled client; no request is sent until the first `embed`.

        Args:
            base_url: the API root, e.g. `https://api.openai.com/v1`; `/embeddings` is appended.
            model: the model name the endpoint expects.
            dimensions: the length of the vectors it returns (checked on every answer).
            api_key: sent as a bearer token when not empty; never logged.
            timeout_s: per-request timeout.
            batch_size: texts per request.
            max_attempts: tries per batch, the first included.
            backoff_initial_s: first backoff; doubles per retry, plus up to as much jitter.
            backoff_max_s: longest wait between tries; a longer Retry-After fails at once.
            send_dimensions: send `dimensions` in the request (text-embedding-3 models only).
            token_counter: counts tokens for metering; default tiktoken cl100k_base when its
                file is cached locally, else a word-count estimate.
            sleep: how to wait between tries.
        """
        if batch_size < 1 or max_attempts < 1 or dimensions < 1:
            raise ValueError("batch_size, max_attempts and dimensions must be at least 1")
        self.model_name = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.backoff_max_s = backoff_max_s
        self.send_dimensions = send_dimensions
        self._sleep = sleep
        self._backoff = wait_exponential_jitter(
            multiplier=backoff_initial_s, max=backoff_max_s, jitter=backoff_initial_s
        )
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._secret = key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )
        self._counter = token_counter
        self._counter_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings) -> OpenAIEmbedder:
        """An embedder configured from TENANTRAG_EMBEDDING__* settings."""
        return cls(
            base_url=settings.base_url,
            model=settings.model,
            dimensions=settings.dimensions,
            api_key=settings.api_key,
            timeout_s=settings.timeout_s,
            batch_size=settings.batch_size,
        )

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(base_url={str(self._client.base_url)!r}, model={self.model_name!r})"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, dimensions) float32 array of L2-normalised vectors, one row per text, in order."""
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            out[start : start + len(batch)] = self._embed_batch(batch)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes: exact with cl100k_base when available, else an estimate."""
        if self._counter is None:
            with self._counter_lock:
                if self._counter is None:
                    self._counter = _offline_cl100k() or estimate_tokens
        return self._counter(text)

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def __enter__(self) -> OpenAIEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            sleep=self._sleep,
            before_sleep=_log_retry,
            reraise=True,
        )
        try:
            return retrying(self._post, batch)
        except _Transient as exc:
            raise exc.error from exc.__cause__

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After when the endpoint sent one, else exponential backoff with jitter."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Transient) and error.retry_after is not None:
            return error.retry_after
        return float(self._backoff(state))

    def _post(self, batch: list[str]) -> np.ndarray:
        payload: dict[str, Any] = {
            "model": self.model_name,
            "input": batch,
            "encoding_format": "float",
        }
        if self.send_dimensions:
            payload["dimensions"] = self.dimensions
        try:
            response = self._client.post("embeddings", json=payload)
        except httpx.TimeoutException as exc:
            message = f"embedding endpoint did not answer within {self.timeout_s}s"
            raise _Transient(UpstreamTimeout(message)) from exc
        except httpx.TransportError as exc:  # refused, reset, DNS, protocol errors
            message = f"embedding endpoint unreachable ({type(exc).__name__}); check base_url"
            raise _Transient(DependencyUnavailable(message)) from exc
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers)
            error = self._status_error(response, retry_after)
            if retry_after is not None and retry_after > self.backoff_max_s:
                raise error  # waiting that long would outlast the caller; fail fast instead
            raise _Transient(error, retry_after)
        if status >= 400:
            raise self._status_error(response, None)
        return self._parse(response, len(batch))

    def _status_error(self, response: httpx.Response, retry_after: float | None) -> UpstreamError:
        status = response.status_code
        detail = self._detail(response)
        if status == 429:
            wait = f"; retry in {math.ceil(retry_after)}s" if retry_after is not None else ""
            return DependencyUnavailable(
                f"embedding endpoint is rate limiting us (429){wait}", retry_after=retry_after
            )
        if status == 503:
            return DependencyUnavailable(f"embedding endpoint unavailable (503): {detail}")
        if status == 504:
            return UpstreamTimeout(f"embedding endpoint timed out upstream (504): {detail}")
        if status in (401, 403):
            return UpstreamError(
                f"embedding endpoint refused our credentials ({status}); "
                "check TENANTRAG_EMBEDDING__API_KEY"
            )
        return UpstreamError(f"embedding endpoint answered {status}: {detail}")

    def _detail(self, response: httpx.Response) -> str:
        """The endpoint's own error message, short, with our key masked should it echo it."""
        try:
            body = response.json()
            text = str(body.get("error", {}).get("message") or body)
        except (ValueError, AttributeError):
            text = response.text
        if self._secret:
            text = text.replace(self._secret, "***")
        return text[:MAX_DETAIL_CHARS]

    def _parse(self, response: httpx.Response, expected: int) -> np.ndarray:
        try:
            items = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.asarray([item["embedding"] for item in items], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError("embedding endpoint sent a malformed answer") from exc
        if vectors.shape != (expected, self.dimensions):
            raise UpstreamError(
                f"embedding endpoint sent vectors of shape {vectors.shape}; "
                f"expected ({expected}, {self.dimensions}): check the model and dimensions"
            )
        return vectors


def estimate_tokens(text: str) -> int:
    """A cl100k_base estimate: English runs about 3 tokens per 4 words (OpenAI's rule of thumb)."""
    return math.ceil(len(text.split()) * 4 / 3)


def _offline_cl100k() -> TokenCounter | None:
    """Tiktoken's cl100k_base, but only when its file is in tiktoken's cache (else it downloads)."""
    cache_dir = os.environ.get(
        "TIKTOKEN_CACHE_DIR",
        os.environ.get("DATA_GYM_CACHE_DIR", os.path.join(tempfile.gettempdir(), "data-gym-cache")),
    )
    cached = Path(cache_dir) / hashlib.sha1(CL100K_URL.encode()).hexdigest()  # noqa: S324  # tiktoken's file name, not security
    if not cache_dir or not cached.is_file():
        return None
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("cl100k_base")
    except Exception:  # a broken cache means the estimate, never a failed request
        return None
    return lambda text: len(encoding.encode_ordinary(text))


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    code = error.error.code if isinstance(error, _Transient) else type(error).__name__
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("embedding_retry", attempt=state.attempt_number, error=code, wait_s=round(wait, 3))
