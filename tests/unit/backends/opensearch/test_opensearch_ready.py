"""/ready checks OpenSearch when it holds the indexes, through the app, against the stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from tests.unit.backends.opensearch.standin import OpenSearchStandIn

from tenantrag.app import create_app
from tenantrag.services import open_services
from tenantrag.settings import Settings

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
async def app_and_node(
    tmp_path: Path, model_dir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, OpenSearchStandIn]]:
    """The app with search_backend=opensearch pointed at a running stand-in."""
    from tenantrag.backends.embedding.onnx import OnnxEmbedder

    with OpenSearchStandIn() as node:
        settings = Settings(
            data_dir=tmp_path / "data",
            jwt_secret=SecretStr(SECRET),
            redis_url=None,
            model_dir=model_dir.parent,
            search_backend="opensearch",
            opensearch_url=node.url,
        )
        services = await open_services(settings, embedder=OnnxEmbedder(model_dir))
        app = create_app(settings, services)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield http, node
        finally:
            await services.close()


async def test_ready_reports_opensearch(
    app_and_node: tuple[httpx.AsyncClient, OpenSearchStandIn],
) -> None:
    """Up: 200 with checks.opensearch true; refusing our login (401): 503 naming opensearch."""
    client, node = app_and_node
    answer = await client.get("/ready")
    assert answer.status_code == 200
    assert answer.json()["checks"]["opensearch"] is True
    assert [(r.method, r.path) for r in node.recorded] == [("HEAD", "/")]
    node.script("HEAD", "^/$", (401, None))
    answer = await client.get("/ready")
    assert answer.status_code == 503
    body = answer.json()
    assert body["checks"]["opensearch"] is False
    assert body["error"]["message"] == "Not ready: opensearch unavailable."
