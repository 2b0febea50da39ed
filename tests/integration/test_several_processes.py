"""Several worker processes and several servers behave as one service."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from tests.integration.conftest import METRICS_TOKEN, Server

pytestmark = [pytest.mark.redis, pytest.mark.integration]


def test_rate_limit_is_exact_across_two_workers(
    cluster: Callable[..., Server], tenant: Callable[..., tuple[str, dict[str, str]]]
) -> None:
    """With two uvicorn workers sharing Redis, exactly 100 of 101 requests in a minute pass."""
    server = cluster(workers=2)
    _, headers = tenant(rate_limit=100)
    statuses = []
    for _ in range(101):
        with httpx.Client(base_url=server.base_url, timeout=10) as fresh:  # new connection each
            statuses.append(fresh.get("/api/me", headers=headers).status_code)
    assert statuses.count(200) == 100
    assert statuses.count(429) == 1
    scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    text = httpx.get(f"{server.base_url}/metrics", headers=scrape, timeout=10).text  # both workers
    served = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tenantrag_http_requests_total{") and "/health" not in line
    )
    assert served == 101  # 100 on /api/me, and the 429 refused before routing ("unmatched")


def test_two_servers_share_limits_cache_and_writes(
    cluster: Callable[..., Server], tenant: Callable[..., tuple[str, dict[str, str]]]
) -> None:
    """Two servers over one store and Redis: one rate window, one cache, one corpus."""
    a, b = cluster(), cluster()
    _, headers = tenant(rate_limit=100)
    doc = {"id": "shared", "text": "The shared parking garage opens at seven in the morning."}
    with httpx.Client(timeout=30) as http:
        r = http.post(f"{a.base_url}/api/documents", headers=headers, json={"documents": [doc]})
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 1.0
        found: list[object] = []
        while time.monotonic() < deadline and not found:
            found = http.post(
                f"{b.base_url}/api/search", headers=headers, json={"query": "parking garage"}
            ).json()["results"]
        assert found and found[0]["document_id"] == "shared"  # type: ignore[index]
        q = {"query": "When does the parking garage open?"}
        first = http.post(f"{a.base_url}/api/query", headers=headers, json=q).json()
        second = http.post(f"{b.base_url}/api/query", headers=headers, json=q).json()
        assert first["cached"] is False and second["cached"] is True
        _, limited = tenant(rate_limit=10)
        statuses = [
            http.get(f"{(a, b)[i % 2].base_url}/api/me", headers=limited).status_code
            for i in range(11)
        ]
    assert statuses.count(200) == 10
    assert statuses[-1] == 429


def test_a_write_through_one_worker_is_found_by_every_worker(
    cluster: Callable[..., Server], tenant: Callable[..., tuple[str, dict[str, str]]]
) -> None:
    """With two workers, a document posted once is found by 20 searches on fresh connections."""
    server = cluster(workers=2)
    _, headers = tenant(rate_limit=1000)
    doc = {"id": "w", "text": "Quarterly budget reviews happen every March and September."}
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert (
            http.post("/api/documents", headers=headers, json={"documents": [doc]}).status_code
            == 201
        )
    time.sleep(1.0)
    for _ in range(20):
        with httpx.Client(base_url=server.base_url, timeout=10) as fresh:
            results = fresh.post(
                "/api/search", headers=headers, json={"query": "budget reviews"}
            ).json()
            assert results["results"][0]["document_id"] == "w"
