"""Uploads share a per-process cap on conversions: past it, 503 overloaded with Retry-After."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from tests.api.conftest import SECRET, TokenFactory

from tenantrag.ingest.convert import Converted
from tenantrag.ingest.convert import convert as real_convert
from tenantrag.services import Services
from tenantrag.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, model_dir: Path) -> Settings:
    """One conversion at a time, and a short wait for it."""
    return Settings(
        data_dir=tmp_path / "data",
        jwt_secret=SecretStr(SECRET),
        redis_url=None,
        model_dir=model_dir.parent,
        audit_fsync_interval_s=0.0,
        max_concurrent_conversions=1,
        conversion_wait_s=0.3,
    )


async def test_an_upload_past_the_cap_is_503_and_stores_nothing(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While one (slow) conversion runs, a second upload, even another tenant's, waits 0.3 s and
    gets 503 with Retry-After; once the first is done, uploads go through again."""
    release = threading.Event()

    def slow(data: bytes, *, filename: str, content_type: str | None) -> Converted:
        release.wait(10)
        return real_convert(data, filename=filename, content_type=content_type)

    monkeypatch.setattr("tenantrag.api.routes.documents.convert", slow)

    def upload(tenant: str, doc_id: str) -> asyncio.Task[httpx.Response]:
        files = {"file": ("a.txt", io.BytesIO(b"Text of a plain upload."), "text/plain")}
        post = client.post(
            "/api/documents/upload", headers=auth(tenant), files=files, data={"id": doc_id}
        )
        return asyncio.ensure_future(post)

    first = upload("acme", "first")
    await asyncio.sleep(0.1)
    refused = await upload("globex", "second")
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "overloaded"
    assert refused.headers["Retry-After"] == "1"
    assert services.store.usage("globex").documents == 0
    release.set()
    assert (await first).status_code == 201
    assert (await upload("globex", "third")).status_code == 201
