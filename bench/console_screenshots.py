"""`make bench` step: screenshots of the web console for docs/img/ (the README shows one).

Starts a real `tenantrag serve` on a temporary data folder, loads part of the demo handbook into
a tenant through the API, asks a question, and photographs the Ask, Documents, Usage and Audit
tabs in Debian's headless Chromium (the browser tests' set-up: tests/browser/support.py).

    .venv/bin/python -m bench.console_screenshots [--out docs/img] [--documents 24]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from importlib import resources
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright
from tests.browser.support import ConsoleServer, launch_options

from tenantrag.backends.embedding.onnx import prepare_model

ROOT = Path(__file__).resolve().parent.parent
TENANT = "demo"
QUESTION = "What does an account manager do at 18F?"
VIEWPORT = {"width": 1100, "height": 720}


def handbook(count: int) -> list[dict[str, str]]:
    """The first `count` pages of the demo handbook (public domain, 18F)."""
    path = resources.files("tenantrag.resources.demo").joinpath("handbook.jsonl")
    docs = []
    for line in path.read_text(encoding="utf-8").splitlines()[:count]:
        row = json.loads(line)
        docs.append(
            {"id": row["_id"].replace("/", "-")[:128], "title": row["title"], "text": row["text"]}
        )
    return docs


def seed(server: ConsoleServer, count: int) -> None:
    """The documents, and a few questions so usage and audit have something to show."""
    headers = server.headers(TENANT)
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=300) as client:
        docs = handbook(count)
        for start in range(0, len(docs), 8):
            batch = {"documents": docs[start : start + 8]}
            client.post("/api/documents", json=batch).raise_for_status()
        for question in ("How are projects staffed?", "Who approves travel?", QUESTION):
            client.post("/api/query", json={"query": question}).raise_for_status()
        bob = server.headers(TENANT, user="bob")
        client.post("/api/search", json={"query": "onboarding"}, headers=bob).raise_for_status()


def shoot(page: Page, out: Path, name: str) -> Path:
    """A PNG of the viewport; the file's path."""
    time.sleep(0.3)  # let the focus ring and the last paint settle
    path = out / f"console-{name}.png"
    page.screenshot(path=str(path))
    return path


def screenshots(server: ConsoleServer, out: Path, profile: Path) -> list[Path]:
    """Sign in, ask, and photograph each tab."""
    taken = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            **{**launch_options(profile), "viewport": VIEWPORT}
        )
        page = context.new_page()
        page.goto(f"{server.base_url}/console")
        page.get_by_test_id("token-input").fill(server.token(TENANT, user="ada"))
        page.get_by_test_id("sign-in").click()
        page.get_by_test_id("question-input").fill(QUESTION)
        page.get_by_test_id("ask").click()
        expect(page.get_by_test_id("citation").first).to_be_visible(timeout=60_000)
        taken.append(shoot(page, out, "ask"))
        for tab, ready in (
            ("Documents", "documents-table"),
            ("Usage", "usage-chart"),
            ("Audit", "audit-table"),
        ):
            page.get_by_role("tab", name=tab).click()
            expect(page.get_by_test_id(ready).locator("tbody tr, svg").first).to_be_visible()
            taken.append(shoot(page, out, tab.lower()))
        context.close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--documents", type=int, default=24)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model_dir = prepare_model(ROOT / ".cache" / "models")
    with tempfile.TemporaryDirectory(prefix="console-shots-") as tmp:
        root = Path(tmp)
        server = ConsoleServer(root / "data", model_dir, root / "server.log")
        server.create_tenant(TENANT)
        server.start()
        try:
            seed(server, args.documents)
            for path in screenshots(server, args.out, root / "profile"):
                print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KiB")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
