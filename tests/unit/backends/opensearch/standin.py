"""A local stand-in for an OpenSearch node, on 127.0.0.1 over real HTTP (or HTTPS).

Stands in for OpenSearch 2.19, which cannot run on this machine. It records every request
(method, path, query string, JSON or NDJSON body) and answers with responses shaped as
OpenSearch documents them, from a small model of the node (engine.py): indexes and aliases,
documents with a live and a refreshed copy, seq_no versions and the version conflicts
delete_by_query meets, the analysis our indexes configure, match_phrase and bool queries, and
BM25 scores with per-index or DFS statistics. Tests script other answers per route with
`script(method, path_regex, *replies)`; a reply is (status, json) or a callable taking the
recorded request. The answers' shapes are built in replies.py.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.unit.backends.opensearch.engine import Analyzers, Index, Node, Refused, Searcher
from tests.unit.backends.opensearch.replies import (
    Json,
    Reply,
    bulk_reply,
    by_query_reply,
    error,
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


class OpenSearchStandIn:
    """Answers the OpenSearch REST API on a free port of 127.0.0.1; use as a context manager."""

    def __init__(self, *, tls: tuple[Path, Path] | None = None) -> None:
        self.tls = tls  # (certificate, key) to serve HTTPS
        self.recorded: list[Recorded] = []
        self.node = Node()
        self.security: dict[tuple[str, str], Json] = {}  # (roles|internalusers|..., name) -> body
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
        with self._lock:
            try:
                return self._route(r, [p for p in r.path.split("/") if p])
            except Refused as exc:
                extra = {"index": exc.reason} if exc.kind == "index_not_found_exception" else {}
                return error(exc.status, exc.kind, exc.reason, **extra)

    def _route(self, r: Recorded, parts: list[str]) -> Reply:
        for key, value in r.query.items():
            if value in ("True", "False"):  # OpenSearch parses booleans strictly
                raise Refused(
                    400,
                    "illegal_argument_exception",
                    f"Failed to parse value [{value}] as only [true] or [false] are "
                    f"allowed. ({key})",
                )
        node, lenient = self.node, r.query.get("ignore_unavailable") == "true"
        if not parts:
            return (200, None) if r.method == "HEAD" else (200, {"version": {"number": "2.19.1"}})
        if parts == ["_bulk"] and r.method == "POST":
            return self._bulk(r, None)
        if parts == ["_cluster", "health"]:
            return 200, {"cluster_name": "standin", "status": "green", "timed_out": False}
        if parts[:3] == ["_plugins", "_security", "api"] and r.method == "PUT" and len(parts) == 5:
            self.security[(parts[3], parts[4])] = r.body
            return 201, {"status": "CREATED", "message": f"'{parts[4]}' created."}
        if parts[0] == "_analyze" or parts[1:] == ["_analyze"]:
            return self._analyze(r, parts[0] if len(parts) == 2 else None)
        if len(parts) == 1:
            return self._index_api(r, parts[0], lenient)
        if parts[1] == "_mapping" and r.method == "GET":
            return 200, {i.name: {"mappings": i.mappings} for i in node.resolve(parts[0])}
        if parts[1] == "_refresh":
            indexes = node.resolve(parts[0], lenient=lenient)
            for index in indexes:
                index.refresh()
            count = len(indexes)
            return 200, {"_shards": {"total": count, "successful": count, "failed": 0}}
        if parts[1] == "_search":
            return self._search(r, parts[0], lenient)
        if parts[1] == "_delete_by_query":
            return self._delete_by_query(r, parts[0], lenient)
        if parts[1] == "_bulk":
            return self._bulk(r, parts[0])
        if parts[1] == "_doc" and len(parts) == 3:
            return self._doc(r, parts[0], parts[2])
        return 400, {"error": f"no handler found for uri [{r.path}] and method [{r.method}]"}

    def _index_api(self, r: Recorded, name: str, lenient: bool) -> Reply:
        node = self.node
        if r.method == "HEAD":
            return (200 if node.index_of(name) else 404), None
        if r.method == "PUT":
            node.create(name, r.body or {})
            return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}
        if r.method == "DELETE":
            node.delete(name)
            return 200, {"acknowledged": True}
        if r.method == "GET":
            return 200, {
                i.name: {
                    "aliases": {a: {} for a, t in node.aliases.items() if t == i.name},
                    "mappings": i.mappings,
                    "settings": i.body.get("settings", {}),
                }
                for i in node.resolve(name, lenient=lenient)
            }
        return 405, {"error": "method not allowed"}

    def _search(self, r: Recorded, names: str, lenient: bool) -> Reply:
        indexes = self.node.resolve(names, lenient=lenient)
        dfs = r.query.get("search_type") == "dfs_query_then_fetch"
        found = Searcher(indexes, dfs=dfs).hits((r.body or {}).get("query", {"bool": {}}))
        order = {index.name: n for n, index in enumerate(indexes)}
        found.sort(key=lambda hit: (-hit[2], order[hit[0].name], hit[1]))
        size = int((r.body or {}).get("size", 10))
        reply = search_reply([(doc_id, score) for _, doc_id, score in found[:size]])
        reply[1]["_shards"] |= {"total": len(indexes), "successful": len(indexes)}
        return reply

    def _delete_by_query(self, r: Recorded, names: str, lenient: bool) -> Reply:
        """Delete what the refreshed copy shows, each only if still the version it showed."""
        indexes = self.node.resolve(names, lenient=lenient)
        deleted = conflicts = 0
        for index, doc_id, _ in Searcher(indexes, dfs=False).hits(r.body["query"]):
            live = index.live.get(doc_id)
            if live is not None and live.seq_no == index.refreshed[doc_id].seq_no:
                del index.live[doc_id]
                deleted += 1
            else:
                conflicts += 1
        if r.query.get("refresh") == "true":
            for index in indexes:
                index.refresh()
        if conflicts and r.query.get("conflicts") != "proceed":
            cause = {
                "type": "version_conflict_engine_exception",
                "reason": "version conflict, document already deleted",
            }
            failure = {"index": names, "id": "?", "status": 409, "cause": cause}
            return 409, by_query_reply(deleted, version_conflicts=conflicts, failures=[failure])[1]
        return by_query_reply(deleted, total=deleted + conflicts, version_conflicts=conflicts)

    def partial_bulk(self, failures: dict[int, Reply]) -> Callable[[Recorded], Reply]:
        """A bulk reply in which item i fails with failures[i] (status, error) and every other
        item is applied, as OpenSearch applies the items of a bulk one by one."""

        def reply(request: Recorded) -> Reply:
            parts = [p for p in request.path.split("/") if p]
            with self._lock:
                return self._bulk(request, parts[0] if len(parts) == 2 else None, failures)

        return reply

    def _bulk(
        self, r: Recorded, default_index: str | None, failures: dict[int, Reply] | None = None
    ) -> Reply:
        statuses: dict[int, tuple[int, Json | None]] = {}
        for i, (action, meta, source) in enumerate(r.bulk_items):
            name = meta.get("_index", default_index)
            if failures and i in failures:
                statuses[i] = failures[i]
                continue
            try:
                index = self._writable(name, r.query.get("require_alias") == "true")
                if action != "index" or source is None:
                    raise Refused(400, "illegal_argument_exception", f"{action} not modelled")
                index.write(meta["_id"], source, meta.get("routing", r.query.get("routing")))
            except Refused as exc:
                statuses[i] = (exc.status, {"type": exc.kind, "reason": exc.reason})
        return bulk_reply(r, statuses)

    def _doc(self, r: Recorded, name: str, doc_id: str) -> Reply:
        refresh = r.query.get("refresh") == "true"
        if r.method in ("PUT", "POST"):
            index = self._writable(name, r.query.get("require_alias") == "true")
            existed = doc_id in index.live
            doc = index.write(doc_id, r.body, r.query.get("routing"))
            if refresh:
                index.refresh()
            return (200 if existed else 201), {
                "_index": index.name,
                "_id": doc_id,
                "_version": 1,
                "result": "updated" if existed else "created",
                "forced_refresh": refresh,
                "_shards": {"total": 2, "successful": 1, "failed": 0},
                "_seq_no": doc.seq_no,
                "_primary_term": 1,
            }
        (index,) = self.node.resolve(name)
        if r.method == "DELETE":
            gone = index.live.pop(doc_id, None)
            if refresh:
                index.refresh()
            result = {
                "_index": index.name,
                "_id": doc_id,
                "result": "not_found" if gone is None else "deleted",
            }
            return (404 if gone is None else 200), result
        view = index.refreshed if r.query.get("realtime") == "false" else index.live
        doc = view.get(doc_id)
        if doc is None:
            return 404, {"_index": index.name, "_id": doc_id, "found": False}
        return 200, {
            "_index": index.name,
            "_id": doc_id,
            "_version": 1,
            "_seq_no": doc.seq_no,
            "_primary_term": 1,
            "found": True,
            "_source": doc.source,
        }

    def _writable(self, name: str | None, require_alias: bool) -> Index:
        index = None if name is None else self.node.index_of(name)
        if index is None or (require_alias and name not in self.node.aliases):
            raise Refused(
                404,
                "index_not_found_exception",
                f"no such index [{name}] and [require_alias] request flag is [true] and "
                f"[{name}] is not an alias"
                if require_alias
                else f"no such index [{name}]",
            )
        return index

    def _analyze(self, r: Recorded, name: str | None) -> Reply:
        """POST [index/]_analyze {"analyzer", "text"}: the tokens, with positions."""
        index = self.node.resolve(name)[0] if name else None
        analyzers = Analyzers(index.analysis if index else {})
        tokens = analyzers.analyze(r.body["analyzer"], r.body["text"])
        return 200, {"tokens": [{"token": t, "position": p, "type": "word"} for p, t in tokens]}

    def documents(self, alias: str, *, refreshed: bool = True) -> dict[str, Json]:
        """The documents of the index behind `alias` (its refreshed copy, or its live one)."""
        index = self.node.index_of(alias)
        if index is None:
            return {}
        view = index.refreshed if refreshed else index.live
        return {doc_id: doc.source for doc_id, doc in view.items()}


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
