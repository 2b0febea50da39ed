"""PostgreSQL drops every connection (pg_terminate_backend, as a restart or failover does).

An outside check saw each node freeze ~10 s after that: the quota check read the ledger on the
event loop, and the pool, finding its idle connections dead one by one, slept 1, 2, 4 s between
them until its timeout. Here an app on the real PostgreSQL store serves search, /health and
document reads while its database's backends are terminated three times: every answer is a 200
within a second, and /health is never held up behind a search.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from tests.api.conftest import SECRET, TokenFactory, auth, embedder
from tests.contract.conftest import migrated_schema

from tenantrag.app import create_app
from tenantrag.backends import Embedder
from tenantrag.models import Tenant
from tenantrag.services import Services, open_services
from tenantrag.settings import Settings

__all__ = ["auth", "embedder"]  # fixtures, re-exported
pytestmark = pytest.mark.postgres
BOUND_S = 1.0  # issue 13: the search hot path never waits on the database


@pytest.fixture
async def node(
    tmp_path: Path, model_dir: Path, embedder: Embedder, postgres_database: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Services, str]]:
    """One node on a migrated schema of this run's database, tenant acme."""
    with migrated_schema(postgres_database) as url:
        settings = Settings(
            data_dir=tmp_path / "data",
            jwt_secret=SecretStr(SECRET),
            redis_url=None,
            model_dir=model_dir.parent,
            database_url=url,
        )
        services = await open_services(settings, embedder=embedder)
        services.store.create_tenant(Tenant(id="acme", rate_limit=100_000))
        transport = httpx.ASGITransport(app=create_app(settings, services))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c, services, postgres_database
        finally:
            await services.close()


def _terminate(database_url: str) -> int:
    """Terminate every backend of the test database (ours only: its name is unique)."""
    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


async def _timed(call: Awaitable[httpx.Response]) -> tuple[int, float, str]:
    started = time.monotonic()
    response = await call
    return response.status_code, time.monotonic() - started, str(response.url.path)


async def test_search_and_health_stay_fast_when_postgres_drops_its_connections(
    node: tuple[httpx.AsyncClient, Services, str], auth: TokenFactory
) -> None:
    """Three drops under traffic: no 5xx, every search, /health and GET within a second."""
    http, _, database = node
    headers = auth()
    text = "Reactor {} coolant pumps are inspected weekly."
    docs = [{"id": f"d{i}", "text": text.format(i)} for i in range(4)]
    made = await http.post("/api/documents", json={"documents": docs}, headers=headers)
    assert made.status_code == 201, made.text
    search = {"query": "coolant pumps", "mode": "bm25", "top_k": 3}
    # warm: the quota snapshot, and several pooled connections (all of which will die)
    warm = await asyncio.gather(
        *[http.post("/api/search", json=search, headers=headers) for _ in range(4)],
        *[http.get(f"/api/documents/d{i}", headers=headers) for i in range(4)],
    )
    assert {r.status_code for r in warm} == {200}
    outcomes: list[tuple[int, float, str]] = []
    done = asyncio.Event()

    async def traffic() -> None:
        while not done.is_set():
            outcomes.extend(
                await asyncio.gather(
                    *[
                        _timed(http.post("/api/search", json=search, headers=headers))
                        for _ in range(4)
                    ],
                    _timed(http.get("/health")),
                    _timed(http.get("/api/documents/d1", headers=headers)),
                )
            )

    running = asyncio.create_task(traffic())
    for _ in range(3):  # the drops come while requests are in flight
        await asyncio.sleep(0.3)
        assert await asyncio.to_thread(_terminate, database) >= 1
    await asyncio.sleep(0.3)
    done.set()
    await running
    assert len(outcomes) >= 30
    statuses = {status for status, _, _ in outcomes}
    slowest = max(seconds for _, seconds, _ in outcomes)
    assert statuses == {200}, [o for o in outcomes if o[0] != 200]
    assert slowest < BOUND_S, outcomes
