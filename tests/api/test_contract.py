"""The OpenAPI schema, real responses, the CLI and our docs agree with docs/api.md.

The expectations are read from API.md itself (its endpoint table and the field shorthand in it),
so a change there that the code does not follow fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner
from tests.api import planned
from tests.api.conftest import ALL, SECRET, TokenFactory

from tenantrag.auth import issue_platform_token, verify_token
from tenantrag.cli import main as cli
from tenantrag.models import TENANT_ID_PATTERN, Classification, Permission
from tenantrag.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
# The contract, kept in the repository. Where the team's shared copy sits beside the clone, the two
# must be the same text (test_contract_is_the_shared_one).
API_MD = ROOT / "docs" / "api.md"
SHARED_API_MD = ROOT.parent / "shared" / "API.md"


@dataclass(frozen=True)
class Field:
    """One field of API.md's shorthand: `"name"?: literal` or `"name": {...}` / `[{...}]`."""

    optional: bool
    literal: str
    fields: dict[str, Field] | None  # named sub-fields of an object or of a list's items


class Shorthand:
    """Parses API.md's JSON-like shorthand, e.g. `{"query", "top_k"?: 5 (1..100)}`."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def peek(self) -> str:
        """The next non-space character ('' at the end)."""
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.text[self.pos : self.pos + 1]

    def take(self, char: str) -> bool:
        """Consume `char` if it comes next."""
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def obj(self) -> dict[str, Field] | None:
        """Named fields, or None for a free-form map such as `{key: value}`."""
        assert self.take("{"), self.text[self.pos :]
        fields: dict[str, Field] | None = {}
        while not self.take("}"):
            if self.peek() == '"':
                end = self.text.index('"', self.pos + 1)
                name, self.pos = self.text[self.pos + 1 : end], end + 1
                optional = self.take("?")
                sub, literal = self.value() if self.take(":") else (None, "")
                if fields is not None:
                    fields[name] = Field(optional, literal, sub)
            else:  # an unquoted key: a map whose keys the caller chooses
                self.pos = self.text.index(":", self.pos) + 1
                self.value()
                fields = None
            self.take(",")
        return fields

    def value(self) -> tuple[dict[str, Field] | None, str]:
        """An object, a list (its items' fields) or a literal such as `5 (1..100)`."""
        if self.peek() == "{":
            return self.obj(), ""
        if self.take("["):
            inner = None
            if self.text.startswith("...", self.pos):
                self.pos += 3
            else:
                inner, _ = self.value()
            assert self.take("]")
            return inner, "[]"
        match = re.compile(r"[^,}\]]*").match(self.text, self.pos)
        assert match is not None
        self.pos = match.end()
        return None, match.group(0).strip()


@dataclass(frozen=True)
class Endpoint:
    """One row of API.md's endpoint table."""

    method: str
    path: str
    permission: str | None
    body: str
    answer: str

    @property
    def key(self) -> str:
        """`METHOD /path`, as API.md writes it."""
        return f"{self.method} {self.path}"

    def request_shape(self) -> dict[str, Field]:
        """The fields of the JSON body column."""
        fields = Shorthand(_code(self.body)).obj() if self.body.startswith("`{") else None
        assert fields is not None, self.key
        return fields

    def response_shape(self) -> dict[str, Field] | None:
        """The fields of the answer column's JSON, if it shows one."""
        code = next((c for c in re.findall(r"`([^`]*)`", self.answer) if c.startswith("{")), None)
        return None if code is None else Shorthand(code).obj()

    def status(self) -> str:
        """The success status the answer column names (200 when it names none)."""
        found = re.match(r"(\d{3})\b", self.answer)
        return found.group(1) if found else "200"


def _code(cell: str) -> str:
    return cell.split("`")[1]


def endpoints() -> list[Endpoint]:
    """API.md's endpoint table, in its order."""
    rows = []
    for line in API_MD.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        found = re.fullmatch(r"`(GET|POST|PUT|PATCH|DELETE) (/\S*)`", cells[0])
        if len(cells) == 4 and found:
            permission = None if cells[1].startswith("none") else cells[1]
            rows.append(Endpoint(found[1], found[2], permission, cells[2], cells[3]))
    return rows


ENDPOINTS = endpoints()
BY_KEY = {e.key: e for e in ENDPOINTS}
API_ROUTES = [e for e in ENDPOINTS if e.permission is not None]
BUILT_ROUTES = [e for e in API_ROUTES if e.key not in planned.ENDPOINTS]


def test_contract_is_the_shared_one() -> None:
    """docs/api.md is the shared API.md, word for word, wherever that file is present."""
    if not SHARED_API_MD.exists():
        return  # a clone on its own: docs/api.md is the contract, nothing to compare it with
    assert API_MD.read_text() == SHARED_API_MD.read_text(), "copy ../shared/API.md to docs/api.md"


def template(path: str) -> str:
    """A path with its parameter names erased: /api/documents/{id} -> /api/documents/{}."""
    return re.sub(r"\{[^}]+\}", "{}", path)


@pytest.fixture
async def spec(client: httpx.AsyncClient) -> dict[str, Any]:
    """The app's OpenAPI document as served at /openapi.json."""
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def operation(spec: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    """The schema's operation for `endpoint`, whatever its path parameters are called."""
    paths = {template(p): ops for p, ops in spec["paths"].items()}
    assert template(endpoint.path) in paths, f"{endpoint.key} is not in the OpenAPI schema"
    ops = paths[template(endpoint.path)]
    assert endpoint.method.lower() in ops, f"{endpoint.key}: the schema has only {sorted(ops)}"
    return dict(ops[endpoint.method.lower()])


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The object schema behind refs, `X | None` and arrays (whose items are described)."""
    while True:
        if "$ref" in node:
            node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in node:
            node = next(n for n in node["anyOf"] if n.get("type") != "null")
        elif node.get("type") == "array":
            node = node["items"]
        else:
            return node


def check_schema(
    spec: dict[str, Any],
    shape: dict[str, Field],
    node: dict[str, Any],
    *,
    request: bool,
    where: str,
) -> None:
    """Each documented field exists with its optionality, default, range and choices."""
    schema = resolve(spec, node)
    props, required = schema.get("properties", {}), set(schema.get("required", []))
    for name, field in shape.items():
        at = f"{where}.{name}"
        assert name in props, f"{at} is documented but not in the schema"
        assert (name in required) == (not field.optional or not request), f"{at} optionality"
        prop = resolve(spec, props[name])
        if default := re.match(r"(\d+|true|false)\b", field.literal):
            assert props[name].get("default") == json.loads(default.group(1)), f"{at} default"
        if bounds := re.search(r"\((\d+)\.\.(\d+)\)", field.literal):
            assert (prop.get("minimum"), prop.get("maximum")) == tuple(map(int, bounds.groups()))
        if choices := re.findall(r'"(\w+)"', field.literal):
            assert set(prop.get("enum", choices)) == set(choices), f"{at} choices"
        if field.fields is not None:
            check_schema(spec, field.fields, props[name], request=request, where=at)


def check_body(shape: dict[str, Field], body: Any, where: str) -> None:
    """A real response body holds every documented field, at every level."""
    for item in body if isinstance(body, list) else [body]:
        for name, field in shape.items():
            assert name in item, f"{where}.{name} missing from a real response"
            if field.fields is not None and item[name] is not None:
                check_body(field.fields, item[name], f"{where}.{name}")


def test_api_md_table_is_parsed_as_written() -> None:
    """The parser reads the fields the brief lists, so the checks below are not vacuous."""
    search = BY_KEY["POST /api/search"]
    assert set(search.request_shape()) == {"query", "top_k", "mode", "filters", "dedupe_documents"}
    result = search.response_shape()
    assert result is not None and result["results"].fields is not None
    assert result["results"].fields["scores"].fields == {
        "bm25": Field(False, "", None),
        "vector": Field(False, "", None),
    }
    answer = BY_KEY["POST /api/query"].response_shape()
    assert answer is not None and answer["cost"].fields is not None
    items = answer["cost"].fields["items"].fields or {}
    assert set(items) == {"cost_type", "amount_usd", "details"}
    assert len(API_ROUTES) == 16 and BY_KEY["GET /api/usage"].permission == "usage:read"
    assert set(planned.ENDPOINTS) <= set(BY_KEY), "planned.py names an endpoint api.md lacks"


def test_vocabulary_matches_the_models() -> None:
    """API.md's permissions (version 1's and `keys:admin`), tenant ids and classifications."""
    text = API_MD.read_text()
    line = next(x for x in text.splitlines() if x.startswith("- Permissions:"))
    added = next(x for x in text.splitlines() if x.startswith("- New permission"))
    named = set(re.findall(r"`([a-z:]+)`", line)) | set(re.findall(r"`([a-z]+:admin)`", added))
    assert named == {p.value for p in Permission}
    assert f"`^{TENANT_ID_PATTERN.pattern}$`" in text
    line = next(x for x in text.splitlines() if x.startswith("Classifications"))
    assert re.findall(r"`([a-z]+)`", line) == [c.label for c in Classification]


@pytest.mark.parametrize(
    "endpoint", [planned.param(e, e.key, planned.ENDPOINTS) for e in ENDPOINTS]
)
async def test_endpoint_exists_with_its_status(spec: dict[str, Any], endpoint: Endpoint) -> None:
    """Every endpoint of API.md is in the OpenAPI schema with the method and status it names."""
    assert endpoint.status() in operation(spec, endpoint)["responses"]


async def test_request_schemas_hold_the_documented_fields(spec: dict[str, Any]) -> None:
    """JSON bodies, the upload's form fields and the query parameters are those of API.md."""
    for key in ("POST /api/documents", "POST /api/search", "POST /api/query"):
        content = operation(spec, BY_KEY[key])["requestBody"]["content"]["application/json"]
        check_schema(spec, BY_KEY[key].request_shape(), content["schema"], request=True, where=key)
    upload = BY_KEY["POST /api/documents/upload"]
    form = operation(spec, upload)["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(re.findall(r"`(\w+)`", upload.body)) <= set(resolve(spec, form)["properties"])
    for key in ("GET /api/documents", "GET /api/usage"):
        params = {p["name"] for p in operation(spec, BY_KEY[key]).get("parameters", [])}
        assert set(re.findall(r"`(\w+)`", BY_KEY[key].body)) <= params, key


async def test_response_schemas_hold_the_documented_fields(spec: dict[str, Any]) -> None:
    """Every response field API.md shows is a required property of the declared response."""
    checked = 0
    for endpoint in ENDPOINTS:
        if endpoint.key in planned.ENDPOINTS:
            continue  # not built yet: test_endpoint_exists_with_its_status says so, per endpoint
        shape = endpoint.response_shape()
        content = operation(spec, endpoint)["responses"][endpoint.status()].get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        if shape is None or not schema.get("$ref"):
            continue  # no shape in API.md, or an untyped answer (/health) checked for real below
        check_schema(spec, shape, schema, request=False, where=endpoint.key)
        checked += 1
    assert checked >= 3  # documents, search and query at least


HANDBOOK = {
    "documents": [
        {
            "id": "leave",
            "title": "Leave",
            "metadata": {"team": "hr"},
            "text": "Staff request annual leave in the HR portal. Managers approve it in two days.",
        },
        {
            "id": "laptops",
            "title": "Equipment",
            "classification": "public",
            "text": "Every new employee receives a laptop. Lost laptops are reported to security.",
        },
    ]
}


def sse(text: str) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs of a Server-Sent Events body."""
    for block in filter(str.strip, text.split("\n\n")):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        yield lines["event"], json.loads(lines["data"])


async def test_real_responses_hold_the_documented_fields(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """Real answers of documents, search, query (whole and streamed) and health have every field."""
    h = auth()
    r = await client.post("/api/documents", headers=h, json=HANDBOOK)
    assert r.status_code == 201
    check_body(BY_KEY["POST /api/documents"].response_shape() or {}, r.json(), "documents")
    r = await client.post("/api/search", headers=h, json={"query": "annual leave portal"})
    assert r.status_code == 200 and r.json()["results"]
    check_body(BY_KEY["POST /api/search"].response_shape() or {}, r.json(), "search")
    shape = BY_KEY["POST /api/query"].response_shape() or {}
    r = await client.post("/api/query", headers=h, json={"query": "How do staff request leave?"})
    assert r.status_code == 200 and r.json()["citations"]
    check_body(shape, r.json(), "query")
    stream = {"query": "What happens to lost laptops?", "stream": True}
    r = await client.post("/api/query", headers=h, json=stream)
    events = list(sse(r.text))
    assert {name for name, _ in events[:-1]} == {"delta"} and events[-1][0] == "done"
    assert all(set(data) == {"text"} for _, data in events[:-1])
    check_body(shape, events[-1][1], "query(stream).done")
    r = await client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


REQUESTS: dict[str, tuple[dict[str, Any], int]] = {
    "POST /api/documents": ({"json": {"documents": [{"id": "a", "text": "Hello there."}]}}, 201),
    "POST /api/documents/upload": ({"files": {"file": ("a.txt", b"Hello.", "text/plain")}}, 201),
    "GET /api/documents": ({}, 200),
    "GET /api/documents/{id}": ({}, 404),
    "DELETE /api/documents/{id}": ({}, 404),
    "POST /api/search": ({"json": {"query": "hello"}}, 200),
    "POST /api/query": ({"json": {"query": "hello"}}, 200),
    "GET /api/usage": ({}, 200),
    "GET /api/jobs/{id}": ({}, 404),
    "GET /api/jobs": ({}, 200),
    "DELETE /api/jobs/{id}": ({}, 404),
    "POST /api/keys": ({"json": {"name": "ci", "permissions": ["keys:admin"]}}, 201),
    "GET /api/keys": ({}, 200),
    "DELETE /api/keys/{id}": ({}, 404),
    "POST /api/admin/tenants": ({"json": {"id": "initech"}}, 201),
    "DELETE /api/admin/tenants/{id}": ({}, 404),
}
PLATFORM = {"Authorization": "Bearer " + issue_platform_token(SECRET, user_id="ops")}


@pytest.mark.parametrize(
    "endpoint", [planned.param(e, e.key, planned.ENDPOINTS) for e in API_ROUTES]
)
async def test_each_route_requires_its_permission(
    client: httpx.AsyncClient, auth: TokenFactory, endpoint: Endpoint
) -> None:
    """Without API.md's permission the route is 403 permission_denied; with only it, it serves."""
    assert endpoint.key in REQUESTS, f"add a request for {endpoint.key}"
    options, served = REQUESTS[endpoint.key]
    url = endpoint.path.replace("{id}", "no-such-document")
    others = [p for p in ALL if p != endpoint.permission]
    r = await client.request(endpoint.method, url, headers=auth(permissions=others), **options)
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    if endpoint.permission == "platform:admin":  # a platform credential, which has no tenant
        headers = PLATFORM
    else:
        headers = auth(permissions=[str(endpoint.permission)])
    r = await client.request(endpoint.method, url, headers=headers, **options)
    assert r.status_code == served, r.text


@pytest.mark.parametrize("path", [e.path for e in ENDPOINTS if e.permission is None])
async def test_open_routes_need_no_token(client: httpx.AsyncClient, path: str) -> None:
    """Health, readiness and metrics answer 200 without any credentials."""
    assert (await client.get(path)).status_code == 200


def permission_rows(text: str) -> Iterator[tuple[str, str]]:
    """(`METHOD /path`, permission) for each endpoint named in a table row's first cell."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        permission = "none" if cells[1].startswith("none") else cells[1].strip("`")
        for key in re.findall(r"`((?:GET|POST|DELETE) /[^`]*)`", cells[0]):
            yield key, permission


@pytest.mark.parametrize("page", ["README.md", "docs/security.md"])
def test_docs_name_the_same_permissions(page: str) -> None:
    """Permission tables in README.md and docs/security.md agree with API.md's."""
    expected = {e.key: e.permission or "none" for e in ENDPOINTS}
    rows = [(k, p) for k, p in permission_rows((ROOT / page).read_text()) if k in expected]
    assert len(rows) >= len(BUILT_ROUTES), f"{page} lists too few endpoints"
    assert [(k, p) for k, p in rows if p != expected[k]] == []


COMMAND_LINES = sorted(set(re.findall(r"`(tenantrag [^`]+)`", API_MD.read_text())))


def test_the_contract_names_commands() -> None:
    """The command lines are found, so the per-line checks below are not vacuous."""
    assert len(COMMAND_LINES) >= 10
    assert set(planned.COMMANDS) <= set(COMMAND_LINES), "planned.py names a line api.md lacks"


@pytest.mark.parametrize("line", [planned.param(x, x, planned.COMMANDS) for x in COMMAND_LINES])
def test_operating_commands_exist_with_their_options(line: str) -> None:
    """Each `tenantrag ...` line of API.md names a real command and only real options."""
    command: click.Command = cli
    for word in line.split()[1:]:
        if isinstance(command, click.Group) and word in command.commands:
            command = command.commands[word]
    assert command is not cli, line
    known = {o for p in command.params for o in p.opts}
    assert set(re.findall(r"--[a-z-]+", line)) <= known, line
    # `tenantrag db upgrade`: the subcommand must exist (`token` also runs without one)
    if isinstance(command, click.Group) and not command.invoke_without_command:
        words = line.split()
        assert words[-1] in command.commands, line


def test_token_command_example_prints_a_valid_jwt(monkeypatch: pytest.MonkeyPatch) -> None:
    """API.md's `tenantrag token` example, run as written, prints a token the server accepts."""
    line = next(x for x in re.findall(r"`(tenantrag token [^`]+)`", API_MD.read_text()))
    placeholders = {"ID": "acme", "NAME": "alice"}
    args = [placeholders.get(w.strip("[]"), w.strip("[]")) for w in line.split()[1:]]
    monkeypatch.setenv("TENANTRAG_JWT_SECRET", SECRET)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    principal = verify_token(result.output.strip(), SECRET)
    assert (principal.tenant_id, principal.user_id) == ("acme", "alice")
    assert principal.permissions == {"query", "documents:write"}
    assert principal.clearance is Classification.CONFIDENTIAL
