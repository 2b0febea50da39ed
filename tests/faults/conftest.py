"""Fixtures for fault tests: the API and integration fixtures, plus an LLM stand-in and a Redis.

In-process apps come from tests/api/conftest.py (faster); live `tenantrag serve` processes come
from tests/integration/conftest.py's `cluster` and `tenant`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from tests.api.conftest import auth, build_services, embedder, settings
from tests.faults.support import RedisServer
from tests.integration.conftest import cluster, tenant

from tenantrag.app import create_app
from tenantrag.backends import Embedder
from tenantrag.models import Tenant
from tenantrag.services import Services
from tenantrag.settings import LLMSettings, Settings
from tenantrag.testing import OpenAIStandIn

__all__ = ["auth", "cluster", "embedder", "settings", "tenant"]  # fixtures, re-exported

# Short enough that a test sees the breaker open and close within a second or two.
LLM_TIMEOUT_S = 0.5
LLM_ATTEMPTS = 2
BREAKER_THRESHOLD = 5
BREAKER_RESET_S = 1.0


@pytest.fixture
def standin() -> Iterator[OpenAIStandIn]:
    """An OpenAI-compatible API on 127.0.0.1, answering normally until scripted otherwise."""
    with OpenAIStandIn() as api:
        yield api


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free port, which the test may kill and restart."""
    with RedisServer() as server:
        yield server


def openai_settings(base_url: str, **overrides: object) -> LLMSettings:
    """LLM settings for the stand-in with short timeouts, backoff and breaker reset."""
    options: dict[str, object] = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": base_url,
        "timeout_s": LLM_TIMEOUT_S,
        "max_attempts": LLM_ATTEMPTS,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "breaker_threshold": BREAKER_THRESHOLD,
        "breaker_reset_s": BREAKER_RESET_S,
    }
    return LLMSettings.model_validate(options | overrides)


@pytest.fixture
async def llm_services(
    settings: Settings, embedder: Embedder, standin: OpenAIStandIn
) -> AsyncIterator[Services]:
    """Started backends whose answers come from the stand-in; the tenant acme."""
    configured = settings.model_copy(update={"llm": openai_settings(standin.base_url)})
    built = await build_services(configured, embedder)
    built.store.create_tenant(Tenant(id="acme", rate_limit=10_000))
    yield built
    await built.close()


@pytest.fixture
async def llm_client(llm_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of the app over `llm_services`."""
    app = create_app(llm_services.settings, llm_services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
