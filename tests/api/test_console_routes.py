"""/console, /docs and /redoc as served: their files, their CSP, and what their code may not do."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tenantrag.middleware.security_headers import (
    CLOSED_CSP,
    CONSOLE_CSP,
    REDOC_CSP,
    SWAGGER_CSP,
    csp_for,
)
from tenantrag.web import APIDOCS_DIR, CONSOLE_DIR

JS_FILES = sorted((CONSOLE_DIR / "static" / "js").glob("*.js"))
IMPORT = re.compile(r"""^import\s.*?from\s+"\./([\w-]+\.js)";""", re.MULTILINE)
# What no console script may call: HTML from strings, or code from strings.
SINKS = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function")


class PageParser(HTMLParser):
    """The local files an HTML page loads, and anything inline it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}={value!r}>")
        if tag == "script":
            self._in_script = True
            if named.get("src") is None:
                self.inline.append("<script> without src")
        if tag == "style":
            self.inline.append("<style>")
        source = named.get("src") if tag == "script" else named.get("href")
        if tag in ("script", "link") and source:
            self.loads.append(source)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(f"inline script: {data.strip()[:40]}")


def code_of(path: Path) -> str:
    """A script without its comments (which may name what the code must not do)."""
    text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.DOTALL)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


async def test_console_page_loads_only_its_own_files(client: httpx.AsyncClient) -> None:
    """/console and every file it and its modules load are served, scripts as JavaScript."""
    r = await client.get("/console")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CONSOLE_CSP
    assert r.headers["cache-control"] == "no-cache"
    page = parse(r.text)
    assert page.inline == []
    assert len(page.loads) == 3  # the icon, the stylesheet, the entry module
    modules = {"main.js"} | {m for f in JS_FILES for m in IMPORT.findall(f.read_text())}
    assert modules == {f.name for f in JS_FILES}  # every module is imported, none is missing
    urls = [f"/{u}" for u in page.loads] + [f"/console/static/js/{m}" for m in sorted(modules)]
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        if url.endswith(".js"):  # module scripts must be served as JavaScript (nosniff)
            assert asset.headers["content-type"].startswith("text/javascript"), url
    assert (await client.get("/console/static/js/nope.js")).status_code == 404


@pytest.mark.parametrize("path", JS_FILES, ids=lambda p: p.name)
def test_console_scripts_build_no_html_from_strings(path: Path) -> None:
    """No innerHTML or eval-like call, and no other origin named, in any console module."""
    text = code_of(path)
    assert SINKS.search(text) is None
    assert re.findall(r"https?://[^\s\"'`]+", text) in ([], ["http://www.w3.org/2000/svg"])


def test_console_stylesheet_and_icon_name_no_other_origin() -> None:
    """The CSS and the SVG icon load nothing from elsewhere (no @import, no url(http...))."""
    css = (CONSOLE_DIR / "static" / "app.css").read_text()
    assert "@import" not in css and "url(" not in css
    svg = (CONSOLE_DIR / "static" / "favicon.svg").read_text()
    assert re.findall(r"https?://[^\s\"']+", svg) == ["http://www.w3.org/2000/svg"]


async def test_docs_pages_are_served_offline(client: httpx.AsyncClient) -> None:
    """/docs and /redoc load only files this service serves, and start with no inline script."""
    for path, csp in (("/docs", SWAGGER_CSP), ("/redoc", REDOC_CSP)):
        r = await client.get(path)
        assert r.status_code == 200
        assert r.headers["content-security-policy"] == csp
        page = parse(r.text)
        assert page.inline == []
        assert page.loads and all(u.startswith("docs/assets/") for u in page.loads)
        for url in page.loads:
            asset = await client.get(f"/{url}")
            assert asset.status_code == 200, url
            assert asset.headers["content-security-policy"] == SWAGGER_CSP
    assert (await client.get("/redoc/logo-mini.svg")).headers["content-type"] == "image/svg+xml"
    swagger_init = (APIDOCS_DIR / "swagger-init.js").read_text()
    assert "validatorUrl: null" in swagger_init  # the validator badge would call another host


async def test_unknown_docs_asset_is_a_404_error(client: httpx.AsyncClient) -> None:
    """Only the listed files are served under /docs/assets/, with our error body otherwise."""
    for name in ("nope.js", "..%2F..%2Fapp.py", "LICENSE"):
        r = await client.get(f"/docs/assets/{name}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] in ("not_found",)


def test_each_path_gets_its_own_policy() -> None:
    """Pages get what they load; everything else, /api included, keeps the closed policy."""
    assert csp_for("/console") == csp_for("/console/static/js/main.js") == CONSOLE_CSP
    assert csp_for("/docs") == csp_for("/docs/assets/swagger-ui.css") == SWAGGER_CSP
    assert csp_for("/redoc") == csp_for("/redoc/logo-mini.svg") == REDOC_CSP
    for path in ("/", "/api/query", "/consoles", "/docsx", "/openapi.json", "/health"):
        assert csp_for(path) == CLOSED_CSP, path
    for policy in (CONSOLE_CSP, SWAGGER_CSP, REDOC_CSP):
        assert policy.startswith(CLOSED_CSP)
        script_src = re.search(r"script-src ([^;]*)", policy)
        assert script_src is not None and script_src.group(1) == "'self'"  # no inline, no eval
        assert "http" not in policy and "*" not in policy
    assert "'unsafe-inline'" not in CONSOLE_CSP + SWAGGER_CSP
    assert "require-trusted-types-for 'script'" in CONSOLE_CSP


async def test_pages_are_not_api_operations(client: httpx.AsyncClient) -> None:
    """The schema lists the API, not the pages; FastAPI's CDN pages are gone."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not {p for p in paths if p.startswith(("/console", "/docs", "/redoc"))}
    assert "cdn" not in (await client.get("/docs")).text.lower()


async def test_console_adds_no_way_around_the_gateway(client: httpx.AsyncClient) -> None:
    """The page is public, but what it calls is /api, which still wants a credential."""
    assert (await client.get("/console")).status_code == 200
    assert (await client.post("/console")).status_code == 405
    r = await client.get("/api/documents")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
