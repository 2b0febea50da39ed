"""Fakes shipped with the code, for tests, demos and docs.

`OpenAIStandIn` stands in for an external OpenAI-compatible API, which cannot be reached from
here. It is a real HTTP server on 127.0.0.1 speaking the same wire format (chat completions,
streamed or not, and embeddings), and it can be told how to behave for each coming request.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np

DEFAULT_ANSWER = "According to the provided sources, this is the stand-in's answer [1]."
CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer normally: `text` (or DEFAULT_ANSWER), with usage figures unless `usage` is False."""

    text: str | None = None
    usage: bool = True


@dataclass(frozen=True, slots=True)
class Fail:
    """Answer with an OpenAI-style error body and `status`, with Retry-After when given."""

    status: int
    retry_after: float | None = None
    message: str = "The stand-in was told to fail this request"


@dataclass(frozen=True, slots=True)
class Hang:
    """Say nothing for `seconds` (or until the stand-in closes), then answer normally."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Drop:
    """Send `after_chunks` streamed pieces (or half a body), then cut the connection."""

    after_chunks: int = 1


Behaviour = Reply | Fail | Hang | Drop


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the stand-in received it."""

    path: str
    body: Any
    authorization: str | None = field(repr=False)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging handler must not keep the test process alive
    standin: OpenAIStandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, as real APIs do

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read results, not access logs."""

    def do_POST(self) -> None:
        """Record the request, then behave as scripted."""
        try:
            self._serve()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. timed out) first

    def _serve(self) -> None:
        standin = self.server.standin  # type: ignore[attr-defined]  # set by OpenAIStandIn
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw or b"null")
        except ValueError:
            body = None
        behaviour = standin._take(self.path, body, self.headers.get("Authorization"))
        if self.path not in (CHAT_PATH, EMBEDDINGS_PATH):
            return self._error(404, f"no route {self.path}")
        if not isinstance(body, dict):
            return self._error(400, "the body must be a JSON object")
        if behaviour is None:
            return self._error(401, "Incorrect API key provided")
        if isinstance(behaviour, Hang):
            standin._released.wait(behaviour.seconds)
            behaviour = Reply()
        if isinstance(behaviour, Fail):
            return self._error(behaviour.status, behaviour.message, behaviour.retry_after)
        if self.path == EMBEDDINGS_PATH:
            return self._json(200, _embeddings(body, standin.dimensions))
        if body.get("stream"):
            return self._stream(body, behaviour)
        if isinstance(behaviour, Drop):
            return self._cut(json.dumps(_chat(body, Reply())).encode())
        return self._json(200, _chat(body, behaviour))

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, retry_after: float | None = None) -> None:
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        kind = "rate_limit_exceeded" if status == 429 else "invalid_request_error"
        error = {"message": message, "type": kind, "param": None, "code": None}
        self._json(status, {"error": error}, headers)

    def _cut(self, payload: bytes) -> None:
        """Promise the whole body, send half, hang up."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.close_connection = True

    def _stream(self, body: dict[str, Any], behaviour: Behaviour) -> None:
        reply = behaviour if isinstance(behaviour, Reply) else Reply()
        text = reply.text if reply.text is not None else DEFAULT_ANSWER
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {
            "id": "chatcmpl-standin",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
        }
        base["model"] = body.get("model", "")
        pieces = [{"role": "assistant", "content": ""}] + [
            {"content": piece} for piece in re.findall(r"\S+\s*", text)
        ]
        for sent, delta in enumerate(pieces):
            if isinstance(behaviour, Drop) and sent > behaviour.after_chunks:
                self.close_connection = True  # no closing chunk: the client sees a cut stream
                return
            self._event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if reply.usage and (body.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": _usage(body, text)})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _event(self, payload: Any) -> None:
        self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    """Word counts, not real tokens: easy to predict in tests and unlike tiktoken's figures."""
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
    completion = len(text.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chat(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    text = reply.text if reply.text is not None else DEFAULT_ANSWER
    payload: dict[str, Any] = {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }
    if reply.usage:
        payload["usage"] = _usage(body, text)
    return payload


def embedding_for(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for `text`: the same text always gets the same vector."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    vector = np.random.default_rng(seed).standard_normal(dimensions)
    return [float(x) for x in vector / np.linalg.norm(vector)]


def _embeddings(body: dict[str, Any], default_dimensions: int) -> dict[str, Any]:
    raw = body.get("input", [])
    texts = [raw] if isinstance(raw, str) else [str(t) for t in raw]
    dimensions = int(body.get("dimensions") or default_dimensions)
    words = sum(len(t.split()) for t in texts)
    return {
        "object": "list",
        "model": body.get("model", ""),
        "data": [
            {"object": "embedding", "index": i, "embedding": embedding_for(t, dimensions)}
            for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": words, "total_tokens": words},
    }


class OpenAIStandIn:
    """A local stand-in for an external OpenAI-compatible API, for tests over real HTTP.

    Requests take scripted behaviours in order (`script`), then `default`. With `api_key` set,
    a request without that bearer token gets 401, as the real API answers.

        with OpenAIStandIn() as api:
            api.script(Fail(500), Fail(429, retry_after=2), Hang(5))
            llm = OpenAIChatLLM(base_url=api.base_url, model="gpt-4o-mini")
    """

    def __init__(
        self, *, api_key: str | None = None, default: Behaviour = Reply(), dimensions: int = 384
    ) -> None:
        self.api_key, self.default, self.dimensions = api_key, default, dimensions
        self.recorded: list[RecordedRequest] = []
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The API root to configure clients with, e.g. http://127.0.0.1:PORT/v1."""
        if self._server is None:
            raise RuntimeError("the stand-in is not running; use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> int:
        """How many requests arrived so far."""
        with self._lock:
            return len(self.recorded)

    def script(self, *behaviours: Behaviour) -> None:
        """How the next requests are answered, in order; after them, `default`."""
        with self._lock:
            self._queue.extend(behaviours)

    def start(self) -> OpenAIStandIn:
        """Listen on a free port of 127.0.0.1 in a background thread."""
        self._released.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.standin = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Release hanging requests, stop listening and wait for the server thread."""
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> OpenAIStandIn:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _take(self, path: str, body: Any, authorization: str | None) -> Behaviour | None:
        """Record a request and pick its behaviour; None when its key is wrong."""
        with self._lock:
            self.recorded.append(RecordedRequest(path, body, authorization))
            if self.api_key is not None and authorization != f"Bearer {self.api_key}":
                return None
            return self._queue.popleft() if self._queue else self.default
