"""A local stand-in for an OpenSearch node, on 127.0.0.1 over real HTTP (or HTTPS).

It records every request (method, path, query string, JSON or NDJSON body) and answers with
responses shaped as OpenSearch documents them. It is not a search engine: it keeps only which
indexes, aliases and templates exist (so the client's setup calls see the real flow) and
answers searches with no hits unless a test scripts the answer. Tests script answers per route
with `script(method, path_regex, *replies)`; a reply is (status, json) or a callable taking the
recorded request. The answers themselves are built in replies.py.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.unit.backends.opensearch.replies import (
    Json,
    Reply,
    bulk_reply,
    by_query_reply,
    error,
    index_not_found,
    search_reply,
)

Responder = Reply | Callable[["Recorded"], Reply]


@dataclass
class Recorded:
    """One request as the stand-in received it."""

    method: str
    path: str
    query: dict[str, str]
    raw: bytes
    headers: dict[str, str]
    body: Any = None  # parsed JSON, or a list of parsed NDJSON lines for _bulk

    @property
    def bulk_items(self) -> list[tuple[str, Json, Json | None]]:
        """(action, metadata, source) of each item of a bulk body."""
        lines, items, i = self.body or [], [], 0
        while i < len(lines):
            action, meta = next(iter(lines[i].items()))
            source = lines[i + 1] if action in ("index", "create", "update") else None
            items.append((action, meta, source))
            i += 2 if source is not None else 1
        return items


@dataclass
class _State:
    templates: dict[str, Json] = field(default_factory=dict)
    indexes: dict[str, Json] = field(default_factory=dict)  # name -> mappings
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> index


class OpenSearchStandIn:
    """Answers the OpenSearch REST API on a free port of 127.0.0.1; use as a context manager."""

    def __init__(self, *, tls: tuple[Path, Path] | None = None) -> None:
        self.tls = tls  # (certificate, key) to serve HTTPS
        self.recorded: list[Recorded] = []
        self.state = _State()
        self._scripts: list[tuple[str, re.Pattern[str], deque[Responder]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.release = threading.Event()  # ends replies that hang

    @property
    def url(self) -> str:
        """The node's base URL."""
        assert self._server is not None, "use the stand-in as a context manager"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def script(self, method: str, path: str, *replies: Responder) -> None:
        """Answer the next requests matching `method` and the `path` regex with `replies`."""
        with self._lock:
            self._scripts.append((method, re.compile(path), deque(replies)))

    def requests(self, method: str | None = None, path: str = "") -> list[Recorded]:
        """The recorded requests with `method` whose path matches the regex `path`."""
        pattern = re.compile(path)
        with self._lock:
            return [
                r
                for r in self.recorded
                if (method is None or r.method == method) and pattern.search(r.path)
            ]

    def __enter__(self) -> OpenSearchStandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.standin = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- answering -----------------------------------------------------------------------------

    def answer(self, request: Recorded) -> Reply:
        """The scripted reply for `request`, else the default one."""
        with self._lock:
            self.recorded.append(request)
            for method, pattern, replies in self._scripts:
                if method == request.method and pattern.search(request.path) and replies:
                    reply = replies.popleft()
                    break
            else:
                reply = None
        if reply is not None:
            return reply(request) if callable(reply) else reply
        return self._default(request)

    def _default(self, r: Recorded) -> Reply:
        parts = [p for p in r.path.split("/") if p]
        state = self.state
        with self._lock:
            if r.method == "PUT" and parts[:1] == ["_index_template"]:
                state.templates[parts[1]] = r.body
                return 200, {"acknowledged": True}
            if r.method == "DELETE" and parts[:1] == ["_index_template"]:
                return 200, {"acknowledged": True}
            if r.method == "HEAD" and len(parts) == 1:
                return (200 if self._resolve(parts[0]) else 404), None
            if r.method == "PUT" and len(parts) == 1:
                return self.create_index(parts[0], r.body or {})
            if r.method == "GET" and parts[1:] == ["_mapping"]:
                name = self._resolve(parts[0])
                if name is None:
                    return index_not_found(parts[0])
                return 200, {name: {"mappings": state.indexes[name]}}
            if r.method == "GET" and parts[:1] == ["_alias"]:
                found: Json = {
                    i: {"aliases": {a: {}}} for a, i in state.aliases.items() if a == parts[1]
                }
                missing = {"error": f"alias [{parts[1]}] missing", "status": 404}
                return (200, found) if found else (404, missing)
            if r.method == "DELETE" and len(parts) == 1:
                state.indexes.pop(parts[0], None)
                state.aliases = {a: i for a, i in state.aliases.items() if i != parts[0]}
                return 200, {"acknowledged": True}
            if parts and self._resolve(parts[0]) is None and parts[0] != "_bulk":
                return index_not_found(parts[0])
        return self._document_api(r, parts)

    def _document_api(self, r: Recorded, parts: list[str]) -> Reply:
        name = self._resolve(parts[0]) if parts else None
        if r.method == "POST" and parts[-1:] == ["_bulk"]:
            return bulk_reply(r)
        if r.method == "POST" and parts[1:] == ["_search"]:
            return search_reply([], index=name or "x")
        if r.method == "POST" and parts[1:] == ["_delete_by_query"]:
            return by_query_reply()
        if r.method in ("PUT", "POST") and parts[1:2] == ["_doc"]:
            return 201, {
                "_index": name,
                "_id": parts[2],
                "_version": 1,
                "result": "created",
                "forced_refresh": r.query.get("refresh") == "true",
                "_shards": {"total": 2, "successful": 1, "failed": 0},
                "_seq_no": 0,
                "_primary_term": 1,
            }
        if r.method == "GET" and parts[1:2] == ["_doc"]:
            return 404, {"_index": name, "_id": parts[2], "found": False}
        if r.method == "HEAD" and not parts:
            return 200, None
        return 400, {"error": f"no handler found for uri [{r.path}] and method [{r.method}]"}

    def _resolve(self, name: str) -> str | None:
        if name in self.state.indexes:
            return name
        return self.state.aliases.get(name)

    def create_index(self, name: str, body: Json) -> Reply:
        """Create `name` with its template's mappings and the body's aliases, as PUT /name does."""
        if name in self.state.indexes:
            return error(
                400, "resource_already_exists_exception", f"index [{name}/abc] already exists"
            )
        mappings: Json = {}
        for template in self.state.templates.values():
            if any(re.fullmatch(p.replace("*", ".*"), name) for p in template["index_patterns"]):
                mappings = template["template"]["mappings"]
        self.state.indexes[name] = mappings
        for alias in body.get("aliases", {}):
            self.state.aliases[alias] = name
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes; no 40 ms delayed ACK

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # the base's name
        """Keep test output quiet."""

    def _handle(self) -> None:
        standin: OpenSearchStandIn = self.server.standin  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = Recorded(
            self.command,
            unquote(split.path),
            dict(parse_qsl(split.query, keep_blank_values=True)),
            raw,
            {k.lower(): v for k, v in self.headers.items()},
            _parse(split.path, raw),
        )
        status, body = standin.answer(request)
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def _parse(path: str, raw: bytes) -> Any:
    if not raw:
        return None
    if path.endswith("/_bulk"):
        return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    return json.loads(raw)


def hang(standin: OpenSearchStandIn, seconds: float = 5.0) -> Callable[[Recorded], Reply]:
    """A reply that waits (up to `seconds`, or until the stand-in closes) before answering."""

    def reply(_: Recorded) -> Reply:
        standin.release.wait(seconds)
        return search_reply([])

    return reply
