"""/metrics in distributed mode needs its token by default; embedded mode stays open."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from pydantic import SecretStr
from tests.api.conftest import build_services

from tenantrag.app import create_app
from tenantrag.backends import Embedder
from tenantrag.settings import Settings

REDIS = "redis://127.0.0.1:6379/13"
TOKEN = "a-metrics-token-0123456789"
Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_client(settings: Settings, embedder: Embedder) -> Client:
    """An in-process client for an app built from `settings` changed by `update`."""

    @asynccontextmanager
    async def make(**update: object) -> AsyncIterator[httpx.AsyncClient]:
        own = settings.model_copy(update=update)
        services = await build_services(own, embedder)
        transport = httpx.ASGITransport(app=create_app(own, services))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                yield http
        finally:
            await services.close()

    return make


@pytest.mark.redis
async def test_distributed_without_a_token_refuses_every_scrape(app_client: Client) -> None:
    """An app started around `serve`'s check (no token, no opt-out) does not fall open: 403."""
    async with app_client(redis_url=REDIS) as http:
        r = await http.get("/metrics")
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "metrics_token_required"
        assert "TENANTRAG_METRICS_TOKEN" in r.json()["error"]["message"]
        r = await http.get("/metrics", headers={"Authorization": "Bearer anything-at-all-12345"})
        assert r.status_code == 403


@pytest.mark.redis
async def test_distributed_with_a_token_serves_only_its_bearer(app_client: Client) -> None:
    async with app_client(redis_url=REDIS, metrics_token=SecretStr(TOKEN)) as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer a-metrics-token-0123456780"}
        assert (await http.get("/metrics", headers=wrong)).status_code == 401
        r = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and "tenantrag_http_requests_total" in r.text


@pytest.mark.redis
async def test_distributed_opted_out_is_open(app_client: Client) -> None:
    async with app_client(redis_url=REDIS, metrics_public=True) as http:
        assert (await http.get("/metrics")).status_code == 200


async def test_embedded_mode_stays_open_by_default(app_client: Client) -> None:
    async with app_client() as http:
        assert (await http.get("/metrics")).status_code == 200


def test_a_weak_metrics_token_is_refused_at_start() -> None:
    for weak in ("short", "changeme", "secret"):
        with pytest.raises(ValueError, match="TENANTRAG_METRICS_TOKEN"):
            Settings(metrics_token=SecretStr(weak))


def test_a_database_url_alone_makes_the_deployment_distributed() -> None:
    """PostgreSQL as the store of record means several nodes, with or without Redis: /metrics
    then needs its token too, and the message names the variable that made it distributed."""
    database = "postgresql://tenantrag@db.internal:5432/tenantrag"
    alone = Settings(database_url=database)
    assert alone.distributed and alone.postgres_store
    problem = alone.metrics_token_missing()
    assert problem is not None and problem.startswith("TENANTRAG_DATABASE_URL makes this")
    assert (
        Settings(database_url=database, metrics_token=SecretStr(TOKEN)).metrics_token_missing()
        is None
    )
    assert Settings(database_url=database, metrics_public=True).metrics_token_missing() is None
    redis_only = Settings(redis_url=REDIS)
    assert redis_only.distributed and not redis_only.postgres_store  # SQLite stays the store
    assert not Settings().distributed and Settings().metrics_token_missing() is None
