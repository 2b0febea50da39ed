"""Browser tests: one real `tenantrag serve` for the session, one headless Chromium per module, a
page per test.

Every test here carries the `browser` marker. Without /usr/bin/chromium they fail, saying how to
install it; they never skip. Each page is watched: a console error, an uncaught exception or a
request to another origin fails the test that caused it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright
from tests.browser.support import ConsoleServer, launch_options, require_chromium

HERE = Path(__file__).resolve().parent
TENANTS = ("acme", "globex", "audited", "paged")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)


# The modules here share one server (the API docs pages touch no tenant's data), so serve and the
# four CLI tenant creations run once, not per module. Session scope: a folder without __init__.py
# has no package to end with; the idle server is stopped when the session ends.
@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[ConsoleServer]:
    """`tenantrag serve` on a fresh data folder, with tenants made by the CLI."""
    root = tmp_path_factory.mktemp("console-server")
    srv = ConsoleServer(root / "data", model_dir, root / "server.log")
    for tenant in TENANTS:
        srv.create_tenant(tenant)  # the default rate limit: 100 requests a minute
    srv.start()
    yield srv
    srv.stop()


# Module scope, not longer: Playwright's sync API keeps an event loop running on the main thread
# while the browser is open, and the asyncio tests after this folder need that thread free.
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, on a fresh profile folder."""
    try:
        require_chromium()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            **launch_options(tmp_path_factory.mktemp("chromium-profile"))
        )
        context.set_default_timeout(20_000)
        yield context
        context.close()


@dataclass
class Watched:
    """A page whose console, uncaught errors and requests are recorded."""

    page: Page
    origin: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect_error(self, pattern: str) -> None:
        """Allow console errors matching `pattern` (e.g. the 401 a bad token is meant to get)."""
        self.expected.append(re.compile(pattern))

    def foreign_requests(self) -> list[str]:
        """Requests that went anywhere but this server (data: and blob: never leave the page)."""
        own = urlsplit(self.origin)
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "blob")
            and (urlsplit(url).scheme, urlsplit(url).netloc) != (own.scheme, own.netloc)
        ]

    def assert_clean(self) -> None:
        """No unexpected console error or page error, and no request left the origin."""
        unexpected = [e for e in self.errors if not any(p.search(e) for p in self.expected)]
        assert unexpected == [], unexpected
        assert self.foreign_requests() == []


@pytest.fixture
def watched(browser: BrowserContext, server: ConsoleServer) -> Iterator[Watched]:
    """A new tab (so a new sessionStorage) on the console's origin, checked when the test ends."""
    page = browser.new_page()
    watch = Watched(page, server.base_url)
    page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watch.errors.append(f"uncaught: {e}"))
    page.on("request", lambda r: watch.requests.append(r.url))
    yield watch
    page.close()
    watch.assert_clean()


def sign_in(page: Page, server: ConsoleServer, token: str, tenant: str | None = None) -> None:
    """Open /console and sign in with `token` (and `tenant` typed, when given)."""
    page.goto(f"{server.base_url}/console")
    page.get_by_test_id("token-input").fill(token)
    if tenant is not None:
        page.get_by_label("Tenant").fill(tenant)
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_role("tab", name="Ask")).to_be_visible()
