"""The audit chain over HTTP: every write path and every document read leaves its record, user ids
of any shape are recorded (or refused with 401, never a 500), personal data is redacted, and
another tenant's reads never reach a tenant's chain."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import jwt
import pytest
import structlog
from pydantic import SecretStr
from tests.api.conftest import ALL, SECRET, TokenFactory, audit_text, audit_trail

from tenantrag.auth import issue_token
from tenantrag.backends import Embedder
from tenantrag.models import AuditEvent, Classification, Tenant
from tenantrag.observability.anchor import AnchorVerifier, generate_key_pair, read_anchor_file
from tenantrag.observability.audit import verify_records
from tenantrag.services import Services, open_services
from tenantrag.settings import AuditSettings, Settings


def records_of(services: Services, tenant: str, action: str) -> list[dict[str, object]]:
    return [r for r in audit_trail(services) if r["tenant_id"] == tenant and r["action"] == action]


def docs(*ids: str) -> dict[str, object]:
    return {"documents": [{"id": i, "text": f"Text of {i} about the audit."} for i in ids]}


async def test_every_write_over_http_commits_a_record_of_who_did_what(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """Posting, uploading, replacing and deleting each leave one record naming user and ids."""
    h = auth(user="writer")
    assert (await client.post("/api/documents", headers=h, json=docs("a", "b"))).status_code == 201
    files = {"file": ("notes.md", b"# Notes\n\nAudit me.", "text/markdown")}
    r = await client.post("/api/documents/upload", headers=h, files=files, data={"id": "c"})
    assert r.status_code == 201
    assert (await client.post("/api/documents", headers=h, json=docs("a"))).status_code == 201
    assert (await client.delete("/api/documents/b", headers=h)).status_code == 204
    writes = [
        (r["action"], r["resource_ids"], r["user_id"])
        for r in audit_trail(services)
        if r["action"] in ("ingest", "delete")
    ]
    assert writes == [
        ("ingest", ["a", "b"], "writer"),
        ("ingest", ["c"], "writer"),
        ("ingest", ["a"], "writer"),
        ("delete", ["b"], "writer"),
    ]
    upload = records_of(services, "acme", "ingest")[1]
    assert upload["detail"] == {"filename": "notes.md"}
    assert all(r["request_id"] for r in records_of(services, "acme", "ingest"))


async def test_document_reads_are_recorded_with_the_ids_shown(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """A list records the page's ids; a GET its id; a 404 a failed read of the id asked."""
    h = auth(user="reader")
    await client.post("/api/documents", headers=auth(), json=docs("d1", "d2", "d3"))
    assert (await client.get("/api/documents?limit=2", headers=h)).status_code == 200
    assert (await client.get("/api/documents/d3", headers=h)).status_code == 200
    assert (await client.get("/api/documents/nope", headers=h)).status_code == 404
    reads = [
        (r["outcome"], r["resource_ids"], r["user_id"])
        for r in records_of(services, "acme", "read")
    ]
    assert reads == [
        ("success", ["d1", "d2"], "reader"),
        ("success", ["d3"], "reader"),
        ("failure", ["nope"], "reader"),
    ]


async def test_another_tenants_read_lands_in_its_own_chain_only(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """globex asking for acme's document is globex's failed read; acme's chain is untouched."""
    await client.post("/api/documents", headers=auth(), json=docs("secret-plan"))
    acme_before = [r["seq"] for r in audit_trail(services) if r["tenant_id"] == "acme"]
    r = await client.get("/api/documents/secret-plan", headers=auth("globex"))
    assert r.status_code == 404
    assert [r["seq"] for r in audit_trail(services) if r["tenant_id"] == "acme"] == acme_before
    (read,) = records_of(services, "globex", "read")
    assert (read["outcome"], read["resource_ids"]) == ("failure", ["secret-plan"])
    listed = await client.get("/api/documents", headers=auth("globex"))
    assert listed.json()["documents"] == []
    assert records_of(services, "globex", "read")[-1]["resource_ids"] == []


async def test_a_very_long_document_id_in_a_read_is_recorded_cut_not_refused(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """A 5,000-character id in the path is a 404 with a record of its first 200 characters."""
    r = await client.get("/api/documents/" + "x" * 5000, headers=auth())
    assert r.status_code == 404
    assert records_of(services, "acme", "read")[-1]["resource_ids"] == ["x" * 200]


ODD_USER_IDS = [
    "u" * 256,  # the longest allowed
    "Zoë Ångström-Øre",
    "用户名-测试-ユーザー",
    "مستخدم עברית",  # right-to-left scripts
    "🦊🚀" * 64,  # astral-plane characters (two UTF-16 units each)
    "e\u0301\u0301\u0301",  # combining marks
    "quote\"back\\slash'single",
    "x" + "\u00a0" * 10,  # no-break spaces
    "sub|auth0|5f7c8ec7c33c6c004bbafe82",
    "' OR 1=1; --",
]


@pytest.mark.parametrize("user", ODD_USER_IDS, ids=lambda u: repr(u)[:24])
async def test_odd_user_ids_are_served_and_recorded_as_given(
    client: httpx.AsyncClient, services: Services, user: str
) -> None:
    """Any user id a token may carry is served, recorded exactly, and the chain verifies."""
    token = issue_token(SECRET, tenant_id="acme", user_id=user, permissions=ALL)
    h = {"Authorization": f"Bearer {token}", "X-Tenant-ID": "acme"}
    assert (await client.post("/api/documents", headers=h, json=docs("odd"))).status_code == 201
    assert (await client.post("/api/search", headers=h, json={"query": "audit"})).status_code == 200
    assert (await client.get("/api/documents", headers=h)).status_code == 200
    assert {r["user_id"] for r in audit_trail(services)[-3:]} == {user}
    assert verify_records(services.store.iter_audit()).ok


def forged_token(user: object) -> str:
    now = int(time.time())
    claims = {
        "tenant_id": "acme",
        "user_id": user,
        "permissions": ALL,
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    "user",
    [
        "u" * 257,
        "a" * 100_000,
        "",
        "nul\x00byte",
        "tab\tin",
        "bell\x07",
        "\ud800lone",
        "rtl\u202eover",
        42,
        None,
        ["a"],
    ],
    ids=["257", "100k", "empty", "nul", "tab", "bell", "surrogate", "bidi", "int", "null", "list"],
)
async def test_user_ids_no_record_can_hold_are_401_not_500(
    client: httpx.AsyncClient, services: Services, user: object
) -> None:
    """A signed token whose user id is too long, empty, not text or holds control characters."""
    before = services.store.audit_head()
    h = {"Authorization": f"Bearer {forged_token(user)}", "X-Tenant-ID": "acme"}
    r = await client.post("/api/search", headers=h, json={"query": "audit"})
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_token"
    assert services.store.audit_head() == before


async def test_personal_data_in_user_ids_and_file_names_is_redacted(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """An email as user id and a phone number in a file name never reach the chain."""
    # The phone number in the file name raises the document to confidential (the default
    # auto-classification policy), so the reader is cleared for it.
    h = auth(user="dana.scully@fbi.example.gov", clearance=Classification.CONFIDENTIAL)
    files = {"file": ("call 415-555-0132.txt", b"Audit me please.", "text/plain")}
    r = await client.post("/api/documents/upload", headers=h, files=files, data={"id": "x1"})
    assert r.status_code == 201
    assert (await client.get("/api/documents/x1", headers=h)).status_code == 200
    text = audit_text(services)
    assert "scully" not in text and "555-0132" not in text
    upload = records_of(services, "acme", "ingest")[-1]
    assert upload["user_id"] == "[REDACTED_EMAIL]"
    assert upload["detail"] == {"filename": "call [REDACTED_PHONE].txt"}
    assert verify_records(services.store.iter_audit()).ok


async def test_a_client_request_id_holding_personal_data_is_replaced(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """X-Request-ID is kept when well formed and clean, replaced when it holds a phone number."""
    clean = await client.get("/api/documents", headers=auth() | {"X-Request-ID": "req-abc-12345"})
    assert clean.headers["X-Request-ID"] == "req-abc-12345"
    dirty = await client.get("/api/documents", headers=auth() | {"X-Request-ID": "415-555-0132"})
    assert dirty.headers["X-Request-ID"] != "415-555-0132"
    assert "555-0132" not in audit_text(services)


async def test_a_flood_of_bad_tokens_is_one_row_not_a_chain_of_records(
    client: httpx.AsyncClient, services: Services
) -> None:
    """500 refused requests naming acme: acme's chain does not move; one security-log row.

    Past the address's refusal burst the answers are 429 (middleware/floods.py), still counted.
    """
    before = services.store.audit_head()
    bad = {"Authorization": "Bearer not-a-token", "X-Tenant-ID": "acme"}
    statuses = [(await client.get("/api/me", headers=bad)).status_code for _ in range(500)]
    burst = services.settings.server.refusal_burst
    assert statuses == [401] * burst + [429] * (500 - burst)
    assert services.store.audit_head() == before
    services.security_log.flush()
    rows = services.store.security_log(limit=10)
    # One row per address and window: a flood that crosses a window's end is two rows.
    assert {r.client for r in rows} == {"127.0.0.1"} and len(rows) <= 2
    assert sum(r.count for r in rows) == 500


async def test_the_service_signs_its_head_every_interval_and_at_shutdown(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    """With TENANTRAG_AUDIT__ANCHOR_KEY the head is signed while serving and once more at close."""
    private, public = generate_key_pair()
    path = tmp_path / "kept-elsewhere" / "audit.anchor"
    audit = AuditSettings(anchor_key=SecretStr(private), anchor_interval_s=0.2, anchor_path=path)
    services = await open_services(settings.model_copy(update={"audit": audit}), embedder=embedder)
    verifier = AnchorVerifier(public)
    try:
        services.store.create_tenant(Tenant(id="acme"))
        for _ in range(100):  # the first signature within a couple of intervals
            if path.exists() and verifier.check(read_anchor_file(path)).head.seq == 1:
                break
            await asyncio.sleep(0.05)
        assert verifier.check(read_anchor_file(path)).head.seq == 1
        for _ in range(3):
            await services.auditor.arecord(AuditEvent("search", "success", "acme", "u1"))
        head = services.store.audit_head()
    finally:
        await services.close()
    assert verifier.check(read_anchor_file(path)).head == head
    assert gauge("tenantrag_audit_anchor_timestamp_seconds") > time.time() - 60


async def test_without_an_anchor_key_the_service_says_so(
    settings: Settings, embedder: Embedder
) -> None:
    """No key: a warning names the setting; nothing is signed; serving goes on."""
    with structlog.testing.capture_logs() as logs:
        services = await open_services(settings, embedder=embedder)
    await services.close()
    (warning,) = [e for e in logs if e["event"] == "audit_anchor_disabled"]
    assert "TENANTRAG_AUDIT__ANCHOR_KEY" in warning["reason"]
    assert not settings.anchor_file.exists()


def gauge(name: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name)
    assert value is not None
    return value
