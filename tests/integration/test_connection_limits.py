"""A real `tenantrag serve` on a loopback port, probed with raw sockets: the connection cap,
the header deadline (slowloris), the header size limit and the keep-alive timeout.

The server runs with small limits (4 connections, a 1 s header deadline, 2 s keep-alive) so the
test is quick; the defaults (50, 10 s, 5 s) are the same code with other numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import SECRET, Server

CAP = 4
HEADER_TIMEOUT_S = 1.0
KEEP_ALIVE_S = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Server]:
    """One embedded-mode server with small limits, for every test here."""
    folder = tmp_path_factory.mktemp("limits")
    env = {
        **os.environ,
        "TENANTRAG_DATA_DIR": str(folder / "data"),
        "TENANTRAG_MODEL_DIR": str(model_dir.parent),
        "TENANTRAG_JWT_SECRET": SECRET,
        "TENANTRAG_LOG_LEVEL": "WARNING",
        "TENANTRAG_SERVER__MAX_CONNECTIONS": str(CAP),
        "TENANTRAG_SERVER__HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "TENANTRAG_SERVER__KEEP_ALIVE_TIMEOUT_S": str(KEEP_ALIVE_S),
        "TENANTRAG_SERVER__MAX_HEADER_BYTES": "8192",
    }
    env.pop("TENANTRAG_REDIS_URL", None)
    env.pop("TENANTRAG_DATABASE_URL", None)
    started = Server(env, 1, folder / "server.log")
    started.wait_ready()
    yield started
    started.stop()


def connect(server: Server) -> socket.socket:
    """A raw TCP connection to the server, with a bounded read timeout."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.settimeout(10)
    return sock


def request(sock: socket.socket, path: str = "/health") -> tuple[int, dict[str, str], bytes]:
    """Send one keep-alive GET and read its whole response (Content-Length framed)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed mid-body"
        body += chunk
    return status, headers, body


def closed_within(sock: socket.socket, limit_s: float) -> float:
    """Seconds until the server closes `sock` (reading what it sends meanwhile)."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while sock.recv(65536):
            pass
    except (TimeoutError, ConnectionResetError) as exc:
        if isinstance(exc, TimeoutError):
            pytest.fail(f"still open after {limit_s}s")
    return time.monotonic() - start


def test_the_cap_serves_exactly_max_connections_and_refuses_the_next_with_503(
    server: Server,
) -> None:
    """CAP keep-alive connections are served; one more gets 503 JSON with Retry-After, closed."""
    held = [connect(server) for _ in range(CAP)]
    try:
        for sock in held:
            assert request(sock)[0] == 200
        extra = connect(server)
        status, headers, body = request(extra)
        assert status == 503
        assert headers["retry-after"] == "1"
        assert headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "server_busy"
        assert closed_within(extra, 5) < 5
        extra.close()
        for sock in held:  # the connections within the cap are still served
            assert request(sock)[0] == 200
        held.pop().close()
        time.sleep(0.2)  # the server sees the close
        again = connect(server)
        assert request(again)[0] == 200
        again.close()
    finally:
        for sock in held:
            sock.close()


def test_a_slowloris_is_cut_off_at_the_header_deadline(server: Server) -> None:
    """Headers trickled a byte at a time, never finished: closed after about HEADER_TIMEOUT_S."""
    sock = connect(server)
    started = time.monotonic()
    payload = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200
    try:
        for byte in payload:
            sock.sendall(bytes([byte]))
            time.sleep(0.02)  # each byte well inside any idle timeout
    except (BrokenPipeError, ConnectionResetError):
        pass  # cut off while trickling: what we want
    closed_within(sock, 5)
    elapsed = time.monotonic() - started
    assert HEADER_TIMEOUT_S * 0.8 <= elapsed < HEADER_TIMEOUT_S + 3, elapsed
    sock.close()


def test_a_connection_that_sends_nothing_is_closed_at_the_header_deadline(
    server: Server,
) -> None:
    """An idle new connection holds no slot for longer than the header deadline."""
    sock = connect(server)
    elapsed = closed_within(sock, 5)
    assert HEADER_TIMEOUT_S * 0.8 <= elapsed < HEADER_TIMEOUT_S + 3, elapsed
    sock.close()


def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(server: Server) -> None:
    """After a response, an idle connection closes after TENANTRAG_SERVER__KEEP_ALIVE_TIMEOUT_S."""
    sock = connect(server)
    assert request(sock)[0] == 200
    elapsed = closed_within(sock, KEEP_ALIVE_S + 5)
    assert KEEP_ALIVE_S * 0.8 <= elapsed < KEEP_ALIVE_S + 3, elapsed
    sock.close()


def test_oversized_headers_get_431_and_a_closed_connection(server: Server) -> None:
    """Headers past TENANTRAG_SERVER__MAX_HEADER_BYTES: 431 with the JSON body, then closed."""
    sock = connect(server)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 20_000)
    data = b""
    sock.settimeout(5)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    assert data.startswith(b"HTTP/1.1 431"), data[:200]
    assert b"headers_too_large" in data
    sock.close()
