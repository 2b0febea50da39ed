"""/docs (Swagger UI) and /redoc (ReDoc) render in headless Chromium from the service's files."""

from __future__ import annotations

from playwright.sync_api import expect
from tests.browser.conftest import Watched
from tests.browser.support import ConsoleServer


def test_swagger_ui_lists_the_operations(watched: Watched, server: ConsoleServer) -> None:
    """Swagger UI renders every operation, e.g. POST /api/query, with nothing from a CDN."""
    page = watched.page
    page.goto(f"{server.base_url}/docs")
    query = page.locator(".opblock-post .opblock-summary-path[data-path='/api/query']")
    expect(query).to_be_visible()
    expect(
        page.locator(".opblock-get .opblock-summary-path[data-path='/api/usage']")
    ).to_be_visible()
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()  # the bearer scheme
    query.click()
    expect(page.get_by_role("button", name="Try it out")).to_be_visible()
    assert "/console" not in page.content()  # the pages are not API operations
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in watched.requests)


def test_redoc_renders_and_searches(watched: Watched, server: ConsoleServer) -> None:
    """ReDoc renders the operations; its search (a blob: worker) finds one."""
    page = watched.page
    page.goto(f"{server.base_url}/redoc")
    heading = page.get_by_role(
        "heading", name="Answer a question from your documents, with citations"
    )
    expect(heading).to_be_visible()
    page.get_by_placeholder("Search...").fill("audit records")
    expect(page.locator("[data-role='search:results']")).to_contain_text("audit records")
    assert any(url.endswith("/docs/assets/redoc.standalone.js") for url in watched.requests)
    assert any(url.endswith("/redoc/logo-mini.svg") for url in watched.requests)  # not the CDN's
