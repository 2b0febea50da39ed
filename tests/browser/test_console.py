"""The console in headless Chromium against a real `tenantrag serve`: a person's way through it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Request, expect
from tests.browser.conftest import Watched, sign_in
from tests.browser.support import ConsoleServer

from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import AuditEvent

HANDBOOK = """# Travel handbook {tag}

Employees book business travel through the {tag} travel desk at least ten days ahead.
Economy class is the rule for flights shorter than six hours.
Receipts for hotels and taxis go to the finance team within thirty days of the trip.
"""


def post_document(
    server: ConsoleServer, tenant: str, title: str, text: str, *, user: str = "ada"
) -> str:
    """Store a document through the API (as another client would); its id."""
    r = httpx.post(
        f"{server.base_url}/api/documents",
        headers=server.headers(tenant, user=user),
        json={"documents": [{"title": title, "text": text}]},
        timeout=60,
    )
    r.raise_for_status()
    return str(r.json()["documents"][0]["id"])


def handbook(tmp_path: Path) -> tuple[Path, str]:
    """A markdown file with a unique tag in its title and text; (path, tag)."""
    tag = f"zx{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"handbook-{tag}.md"
    path.write_text(HANDBOOK.format(tag=tag))
    return path, tag


def test_sign_in_upload_ask_open_citation_delete(
    watched: Watched, server: ConsoleServer, tmp_path: Path
) -> None:
    """The whole round: sign in, upload, a streamed answer with a citation, its passage, delete."""
    page = watched.page
    page.goto(f"{server.base_url}/console")
    page.get_by_test_id("token-input").fill(server.token("acme"))
    expect(page.get_by_label("Tenant")).to_have_value("acme")  # read from the token's claims
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_role("tab", name="Ask")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("question-input")).to_be_focused()
    expect(page.locator("#identity-text")).to_have_text("ada · tenant acme")

    # Upload: choosing the file starts it.
    path, tag = handbook(tmp_path)
    page.get_by_role("tab", name="Documents").click()
    page.get_by_test_id("upload-input").set_input_files(str(path))
    expect(page.locator("#upload-text")).to_contain_text(f"Stored “{path.name}”")
    table = page.get_by_test_id("documents-table")
    expect(table).to_contain_text(f"Travel handbook {tag}")

    # Ask: a POST with "stream": true answered as Server-Sent Events.
    page.get_by_role("tab", name="Ask").click()
    page.get_by_test_id("question-input").fill(
        f"How far ahead is travel booked with the {tag} desk?"
    )
    with page.expect_response("**/api/query") as response_info:
        page.get_by_test_id("ask").click()
    response = response_info.value
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.request.post_data_json["stream"] is True
    citation = page.get_by_test_id("citation").first
    expect(citation).to_contain_text(f"Travel handbook {tag}")
    expect(page.get_by_test_id("answer")).to_contain_text("ten days ahead")
    expect(page.get_by_test_id("answer")).to_contain_text("[1]")

    # The citation opens its passage, with the document's details from GET /api/documents/{id}.
    opener = citation.get_by_role("button")
    opener.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#passage-text")).to_contain_text(f"{tag} travel desk at least ten days")
    expect(dialog.locator("#passage-document")).to_contain_text(path.name)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()  # focus comes back to where it was

    # Delete, after a confirmation; cancelling first keeps the document.
    page.get_by_role("tab", name="Documents").click()
    delete = page.get_by_role("button", name=f"Delete Travel handbook {tag}")
    delete.click()
    confirm = page.get_by_role("dialog", name="Delete document?")
    expect(confirm).to_contain_text(f"Travel handbook {tag}")
    confirm.get_by_role("button", name="Cancel").click()
    expect(table).to_contain_text(f"Travel handbook {tag}")
    delete.click()
    confirm.get_by_role("button", name="Delete").click()
    expect(table).not_to_contain_text(f"Travel handbook {tag}")
    expect(page.get_by_role("button", name="Refresh")).to_be_focused()

    listed = httpx.get(f"{server.base_url}/api/documents", headers=server.headers("acme"))
    assert tag not in json.dumps(listed.json())


def test_answer_is_shown_while_it_streams(watched: Watched, server: ConsoleServer) -> None:
    """Delta text reaches the answer region before `done` replaces it with the cited answer."""
    tag = f"st{uuid.uuid4().hex[:8]}"
    post_document(
        server,
        "acme",
        f"Onboarding {tag}",
        (
            f"New {tag} hires receive a laptop on their first day. "
            f"New {tag} hires meet their mentor during the first week. "
            f"New {tag} hires finish security training within a month."
        ),
    )
    page = watched.page
    sign_in(page, server, server.token("acme"))
    # Every change to the answer region, in order (the records, not snapshots: the extractive
    # answerer is fast, so deltas and `done` may land in one network read and one observer call).
    page.evaluate(
        """() => {
          window.answerChanges = [];
          const answer = document.querySelector('[data-testid="answer"]');
          new MutationObserver((records) => {
            for (const r of records) for (const n of r.addedNodes) window.answerChanges.push(
              {node: n.nodeName, text: n.textContent});
          }).observe(answer, {childList: true});
        }"""
    )
    page.get_by_test_id("question-input").fill(f"What do new {tag} hires do?")
    page.get_by_test_id("ask").click()
    expect(page.get_by_test_id("citation").first).to_be_visible()
    changes: list[dict[str, Any]] = page.evaluate("window.answerChanges")
    first_marker = next(i for i, c in enumerate(changes) if c["node"] == "BUTTON")
    deltas = [c["text"] for c in changes[:first_marker] if c["node"] == "#text" and c["text"]]
    assert len(deltas) >= 2, changes  # sentence by sentence, as the deltas came
    assert all(f"New {tag} hires" in d for d in deltas)
    assert page.get_by_test_id("answer").get_attribute("aria-live") in ("polite", "off")


def test_tabs_work_from_the_keyboard(watched: Watched, server: ConsoleServer) -> None:
    """Sign in with keys only; arrows, Home and End move between tabs; focus stays visible."""
    page = watched.page
    page.goto(f"{server.base_url}/console")
    page.get_by_test_id("token-input").focus()
    page.keyboard.insert_text(server.token("acme"))
    page.keyboard.press("Tab")
    expect(page.get_by_label("Tenant")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_test_id("sign-in")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("question-input")).to_be_focused()

    tabs = {
        name: page.get_by_role("tab", name=name) for name in ("Ask", "Documents", "Usage", "Audit")
    }
    tabs["Ask"].focus()
    for key, name in [
        ("ArrowRight", "Documents"),
        ("End", "Audit"),
        ("Home", "Ask"),
        ("ArrowLeft", "Audit"),
        ("ArrowLeft", "Usage"),
    ]:
        page.keyboard.press(key)
        expect(tabs[name]).to_be_focused()
        expect(tabs[name]).to_have_attribute("aria-selected", "true")
        expect(page.get_by_role("tabpanel")).to_have_attribute(
            "aria-labelledby", tabs[name].get_attribute("id") or ""
        )
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    # Only the selected tab is in the Tab order: Tab goes on into its panel.
    assert [t.get_attribute("tabindex") for t in tabs.values()] == ["-1", "-1", "0", "-1"]
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('[role=tabpanel]')?.id") == "panel-usage"
    # The panel is in the URL, so a reload (same tab, same session) comes back to it signed in.
    assert page.url.endswith("#usage")
    page.reload()
    expect(tabs["Usage"]).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("usage-chart").locator("svg").first).to_be_visible()


def test_credential_stays_in_this_tab(watched: Watched, server: ConsoleServer) -> None:
    """The token is in sessionStorage only: no cookie, not in the URL; sign out forgets it."""
    page = watched.page
    token = server.token("acme")
    sign_in(page, server, token)
    assert token in page.evaluate("JSON.stringify(Object.entries(sessionStorage))")
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert token not in page.url
    other = page.context.new_page()  # a new tab has its own sessionStorage: signed out
    try:
        other.goto(f"{server.base_url}/console")
        expect(other.get_by_test_id("token-input")).to_be_visible()
    finally:
        other.close()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_test_id("token-input")).to_be_focused()
    assert page.evaluate("sessionStorage.length") == 0


def test_sign_out_leaves_nothing_for_the_next_person(
    watched: Watched, server: ConsoleServer
) -> None:
    """After sign-out, someone else signing in the same tab sees none of the last one's data."""
    tag = f"so{uuid.uuid4().hex[:8]}"
    post_document(server, "acme", f"Board minutes {tag}", f"The {tag} board met on Monday.")
    page = watched.page
    sign_in(page, server, server.token("acme"))
    page.get_by_test_id("question-input").fill(f"When did the {tag} board meet?")
    page.get_by_test_id("ask").click()
    expect(page.get_by_test_id("citation").first).to_contain_text(tag)
    page.get_by_role("tab", name="Documents").click()
    expect(page.get_by_test_id("documents-table")).to_contain_text(tag)
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, server, server.token("globex", user="grace"))
    expect(page.get_by_role("tab", name="Ask")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("answer")).to_have_text("")
    expect(page.get_by_test_id("question-input")).to_have_value("")
    assert page.get_by_test_id("citation").count() == 0
    page.get_by_role("tab", name="Documents").click()
    expect(page.locator("#documents-page")).to_contain_text("Page 1")
    expect(page.get_by_test_id("documents-table")).not_to_contain_text(tag)
    assert tag not in page.content()


def test_bad_credentials_get_clear_messages(watched: Watched, server: ConsoleServer) -> None:
    """An API key needs the tenant typed; a bad token and a wrong tenant are refused by the API."""
    page = watched.page
    watched.expect_error(r"status of 40[13]")  # the refusals this test provokes
    page.goto(f"{server.base_url}/console")
    page.get_by_test_id("token-input").fill("trk_notarealkey")
    expect(page.get_by_label("Tenant")).to_have_value("")  # an API key names no tenant
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_role("alert").first).to_contain_text("Type your tenant's id")
    expect(page.get_by_label("Tenant")).to_be_focused()

    page.get_by_label("Tenant").fill("acme")
    page.get_by_test_id("sign-in").click()
    # The API's own 401 message, shown as it came.
    expect(page.locator("#signin-error")).to_contain_text("The API key is not valid")
    expect(page.locator("#app-view")).to_be_hidden()

    # globex's token with acme typed as the tenant: the gateway's 403, nothing of acme's shown.
    page.get_by_test_id("token-input").fill(server.token("globex"))
    page.get_by_label("Tenant").fill("acme")
    page.get_by_test_id("sign-in").click()
    expect(page.locator("#signin-error")).to_contain_text("does not match")
    expect(page.locator("#app-view")).to_be_hidden()


def test_upload_of_unsupported_file_says_why(
    watched: Watched, server: ConsoleServer, tmp_path: Path
) -> None:
    """A file the service cannot read gets the API's message; nothing is stored."""
    page = watched.page
    watched.expect_error(r"status of 4\d\d")
    sign_in(page, server, server.token("acme"))
    page.get_by_role("tab", name="Documents").click()
    # Count the rows once the list is there (the page status is written with them).
    expect(page.locator("#documents-page")).to_contain_text("Page 1,")
    before = page.get_by_test_id("documents-table").locator("tbody tr").count()
    blob = tmp_path / "tool.exe"
    blob.write_bytes(b"MZ\x90\x00" + bytes(range(256)))
    page.get_by_test_id("upload-input").set_input_files(str(blob))
    expect(page.locator("#upload-text")).to_contain_text("Upload of “tool.exe” failed")
    expect(page.get_by_test_id("documents-table").locator("tbody tr")).to_have_count(before)


def test_upload_answered_202_follows_the_job(
    watched: Watched, server: ConsoleServer, tmp_path: Path
) -> None:
    """An upload goes as a background job (?async=true, 202): the page follows it to its end.

    The real server's in-process worker runs the job (embedded mode, docs/jobs.md); the page
    polls GET /api/jobs/{id} with the credential and shows done/total, then the document.
    """
    page = watched.page
    sign_in(page, server, server.token("acme"))
    page.get_by_role("tab", name="Documents").click()
    path, tag = handbook(tmp_path)
    with (
        page.expect_request(lambda r: "/api/jobs/" in r.url) as polled,
        page.expect_response("**/api/documents/upload?async=true") as posted,
    ):
        page.get_by_test_id("upload-input").set_input_files(str(path))
    assert posted.value.status == 202
    job_id = posted.value.json()["job_id"]
    assert polled.value.url.endswith(f"/api/jobs/{job_id}")
    assert polled.value.headers["authorization"].startswith("Bearer ")
    status = page.locator("#upload-text")
    expect(status).to_contain_text(f"Job {job_id}: succeeded, 1 of 1 done")
    expect(status).to_contain_text(f"Stored “{path.name}”")
    expect(page.locator("#upload-progress")).to_have_attribute("value", "1")
    expect(page.get_by_test_id("documents-table")).to_contain_text(f"Travel handbook {tag}")


def test_another_tenant_never_sees_these_documents(watched: Watched, server: ConsoleServer) -> None:
    """Signed in as globex, nothing of acme's appears: documents, answers, citations, audit."""
    tag = f"xt{uuid.uuid4().hex[:8]}"
    acme_id = post_document(
        server,
        "acme",
        f"Merger plan {tag}",
        f"The secret {tag} merger closes in March with a price of 42 million.",
        user="mallory-of-acme",
    )
    post_document(
        server, "globex", f"Globex canteen {tag}", "The canteen opens at eight.", user="grace"
    )
    page = watched.page
    tenants_sent: set[str | None] = set()

    def record(request: Request) -> None:
        if "/api/" in request.url:
            tenants_sent.add(request.headers.get("x-tenant-id"))

    page.on("request", record)
    sign_in(page, server, server.token("globex", user="grace"))

    page.get_by_role("tab", name="Documents").click()
    table = page.get_by_test_id("documents-table")
    expect(table).to_contain_text(f"Globex canteen {tag}")
    expect(table).not_to_contain_text(f"Merger plan {tag}")
    expect(table).not_to_contain_text(acme_id)

    page.get_by_role("tab", name="Ask").click()
    page.get_by_test_id("question-input").fill(f"When does the secret {tag} merger close?")
    page.get_by_test_id("ask").click()
    expect(page.locator("#answer-meta")).to_contain_text("source")
    expect(page.locator("#citations")).not_to_contain_text(f"Merger plan {tag}")
    expect(page.get_by_test_id("answer")).not_to_contain_text("42 million")

    page.get_by_role("tab", name="Audit").click()
    audit = page.get_by_test_id("audit-table")
    expect(audit.locator("tbody tr").first).to_be_visible()
    expect(audit).to_contain_text("grace")
    expect(audit).not_to_contain_text(acme_id)
    expect(audit).not_to_contain_text("mallory-of-acme")
    assert tenants_sent == {"globex"}  # every API call of this page named globex


def test_usage_charts_and_quotas_render(watched: Watched, server: ConsoleServer) -> None:
    """Cost by day and by type are drawn as SVG with their data tables; quotas as meters."""
    post_document(server, "acme", "Usage seed", "Usage is measured per request and per day.")
    page = watched.page
    sign_in(page, server, server.token("acme"))
    page.get_by_role("tab", name="Usage").click()
    chart = page.get_by_test_id("usage-chart")
    expect(chart.get_by_role("img", name="Cost by day (USD)")).to_be_visible()
    expect(chart.get_by_role("img", name="Cost by type (USD)")).to_be_visible()
    heights = chart.locator("rect.chart-bar").evaluate_all(
        "bars => bars.map(b => Number(b.getAttribute('height')))"
    )
    assert max(heights) > 0
    expect(chart.get_by_role("img", name="Cost by type (USD)")).to_contain_text("embedding")
    chart.get_by_text("Show as a table").first.click()
    expect(chart.locator("details[open] table tbody tr").first).to_be_visible()
    expect(page.locator("#usage-total")).to_contain_text("$")
    expect(page.locator("#quotas meter")).to_have_count(4)
    expect(page.locator("#quotas")).to_contain_text("Monthly tokens")


def test_audit_table_filters_and_pages(watched: Watched, server: ConsoleServer) -> None:
    """The tenant's audit records, filtered by action, outcome and user; older ones by `before`."""
    tenant = "audited"
    doc_id = post_document(
        server, tenant, "Audited doc", "Every change to this tenant is recorded."
    )
    httpx.post(
        f"{server.base_url}/api/search",
        headers=server.headers(tenant, user="bob"),
        json={"query": "recorded"},
    ).raise_for_status()
    bad = {"Authorization": "Bearer not-a-token", "X-Tenant-ID": tenant}
    with httpx.Client(base_url=server.base_url) as client:
        for _ in range(5):  # refused unverified: the security log's, not this tenant's records
            assert client.get("/api/me", headers=bad).status_code == 401
    # 205 refusals of a missing permission, written to the store as the server writes them
    # (sent over HTTP they would pass the tenant's rate limit of 100 a minute).
    store = SQLiteStore(server.data_dir / "tenantrag.db")
    store.open()
    denied = AuditEvent("permission_denied", "denied", tenant, "mallory", detail={"p": "usage"})
    store.append_audit([denied] * 205)
    store.close()
    page = watched.page
    sign_in(page, server, server.token(tenant))
    page.get_by_role("tab", name="Audit").click()
    rows = page.get_by_test_id("audit-table").locator("tbody tr")
    expect(rows).to_have_count(200)  # the first page
    older = page.get_by_role("button", name="Older records")
    expect(older).to_be_enabled()
    older.click()
    expect(rows).to_have_count(208)  # with the CLI's tenant_created record
    expect(older).to_be_disabled()
    expect(page.locator("#audit-summary")).to_contain_text("That is all of them")

    page.get_by_label("Action").select_option("ingest")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(doc_id)
    page.get_by_label("Action").select_option("")
    page.get_by_label("Outcome").select_option("denied")
    expect(rows).to_have_count(205)
    page.get_by_label("Outcome").select_option("")
    page.get_by_label("User").fill("bob")
    page.get_by_label("User").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("search")


def test_documents_are_listed_a_page_at_a_time(watched: Watched, server: ConsoleServer) -> None:
    """Twenty a page; Next page follows `next_cursor`, First page goes back."""
    docs = [
        {"id": f"doc-{i:02d}", "title": f"Paged {i:02d}", "text": f"Page test number {i}."}
        for i in range(23)
    ]
    httpx.post(
        f"{server.base_url}/api/documents",
        headers=server.headers("paged"),
        json={"documents": docs},
        timeout=120,
    ).raise_for_status()
    page = watched.page
    sign_in(page, server, server.token("paged"))
    page.get_by_role("tab", name="Documents").click()
    rows = page.get_by_test_id("documents-table").locator("tbody tr")
    expect(rows).to_have_count(20)
    expect(rows.first).to_contain_text("doc-00")
    expect(page.get_by_role("button", name="First page")).to_be_disabled()
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("doc-20")
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    expect(page.locator("#documents-page")).to_have_text("Page 2, 3 documents")
    page.get_by_role("button", name="First page").click()
    expect(rows).to_have_count(20)


def test_readable_on_a_phone(watched: Watched, server: ConsoleServer) -> None:
    """At 390 px wide no panel scrolls sideways; wide tables scroll inside their card."""
    page = watched.page
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, server, server.token("acme"))
    for name in ("Ask", "Documents", "Usage", "Audit"):
        page.get_by_role("tab", name=name).click()
        expect(page.get_by_role("tabpanel")).to_be_visible()
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (name, overflow)


def test_event_stream_parser_handles_split_chunks(watched: Watched, server: ConsoleServer) -> None:
    """sse.js gives the same events however the bytes are split, CRLF and comments included."""
    page = watched.page
    page.goto(f"{server.base_url}/console")
    stream = (
        ': keep-alive\r\nevent: delta\r\ndata: {"text": "a"}\r\n\r\n'
        'event: delta\ndata: {"text":\ndata:  "b"}\n\n'
        'data: {"bare": 1}\r\r'
        'event: done\ndata: {"answer": "ab"}\n\n'
        'event: cut\ndata: {"never": 1}'  # no blank line: incomplete, not delivered
    )
    results = page.evaluate(
        """async (stream) => {
          const { createSseParser } = await import("./console/static/js/sse.js");
          const runs = [];
          for (let size = 1; size <= stream.length; size += 1) {
            const events = [];
            const parser = createSseParser((name, data) => events.push([name, JSON.parse(data)]));
            for (let i = 0; i < stream.length; i += size) parser.push(stream.slice(i, i + size));
            runs.push(JSON.stringify(events));
          }
          return runs;
        }""",
        stream,
    )
    expected = [
        ["delta", {"text": "a"}],
        ["delta", {"text": "b"}],
        ["message", {"bare": 1}],
        ["done", {"answer": "ab"}],
    ]
    assert {json.dumps(expected, separators=(",", ":"))} == set(results)


def test_charts_helpers(watched: Watched, server: ConsoleServer) -> None:
    """The day series fills missing days with 0; axis maxima are 1, 2 or 5 times a power of 10."""
    page = watched.page
    page.goto(f"{server.base_url}/console")
    result = page.evaluate(
        """async () => {
          const { dailySeries } = await import("./console/static/js/usage.js");
          const { niceMax } = await import("./console/static/js/chart.js");
          return {
            days: dailySeries("2026-02-27", "2026-03-02", {"2026-03-01": {amount_usd: 0.5}}),
            maxima: [0, 0.0031, 1, 7, 12, 480].map(niceMax),
          };
        }"""
    )
    assert result["days"] == [
        {"label": "2026-02-27", "value": 0},
        {"label": "2026-02-28", "value": 0},
        {"label": "2026-03-01", "value": 0.5},
        {"label": "2026-03-02", "value": 0},
    ]
    assert result["maxima"] == [1, 0.005, 1, 10, 20, 500]


def test_thumbs_rate_the_answer_shown(watched: Watched, server: ConsoleServer) -> None:
    """Under the answer, Helpful and Not helpful are toggle buttons a keyboard can press.

    The rating names the answer by the X-Request-ID of its /api/query reply (read by fetch on
    the console's own origin), replaces the user's earlier one, carries a redacted comment, and
    is counted in the usage; a new question clears the buttons.
    """
    tag = f"fb{uuid.uuid4().hex[:8]}"
    post_document(
        server, "globex", f"Expenses {tag}", f"Claims for {tag} expenses are paid within a week."
    )
    page = watched.page
    sign_in(page, server, server.token("globex", user="rater"))
    page.get_by_test_id("question-input").fill(f"When are {tag} expenses paid?")
    with page.expect_response("**/api/query") as query:
        page.get_by_test_id("ask").click()
    request_id = query.value.headers["x-request-id"]
    group = page.get_by_role("group", name="Was this answer helpful?")
    expect(group).to_be_visible()
    up = group.get_by_role("button", name="Helpful", exact=True)
    down = group.get_by_role("button", name="Not helpful")
    expect(up).to_have_attribute("aria-pressed", "false")
    expect(down).to_have_attribute("aria-pressed", "false")

    up.focus()
    with page.expect_response("**/api/feedback") as rated:
        page.keyboard.press("Enter")
    assert rated.value.status == 201
    assert rated.value.request.post_data_json == {"request_id": request_id, "rating": "up"}
    expect(up).to_have_attribute("aria-pressed", "true")
    expect(down).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#feedback-status")).to_have_text("Thanks: marked helpful.")

    group.get_by_text("Add a comment").click()
    group.get_by_label("Comment on this answer").fill("Wrong week; call 415-555-0132.")
    down.focus()
    with page.expect_response("**/api/feedback") as changed:
        page.keyboard.press("Space")
    assert changed.value.status == 200  # the same user's rating, replaced
    assert changed.value.json()["comment"] == "Wrong week; call [REDACTED_PHONE]."
    expect(down).to_have_attribute("aria-pressed", "true")
    expect(up).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#feedback-status")).to_contain_text("with your comment")

    usage = httpx.get(f"{server.base_url}/api/usage", headers=server.headers("globex")).json()
    assert usage["feedback"] == {"up": 0, "down": 1, "with_comment": 1}

    page.get_by_test_id("question-input").fill(f"Who pays {tag} claims?")
    with page.expect_response("**/api/query") as second:
        page.get_by_test_id("ask").click()
    assert second.value.headers["x-request-id"] != request_id
    expect(group).to_be_visible()
    expect(up).to_have_attribute("aria-pressed", "false")
    expect(down).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#feedback-status")).to_have_text("")
