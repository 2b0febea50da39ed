"""An app on a fresh data folder with two tenants, driven in-process through httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tenantrag.app import create_app
from tenantrag.auth import issue_token
from tenantrag.models import Classification, Permission, Tenant
from tenantrag.services import Services
from tenantrag.settings import Settings

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
ALL = [p.value for p in Permission]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for one test: its own data folder, a strong secret, in-process limits."""
    return Settings(data_dir=tmp_path / "data", jwt_secret=SecretStr(SECRET), redis_url=None)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    """Started backends with the tenants acme and globex."""
    built = Services.build(settings)
    await built.start()
    built.store.create_tenant(Tenant(id="acme"))
    built.store.create_tenant(Tenant(id="globex"))
    yield built
    await built.stop()


@pytest.fixture
async def client(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the app in-process."""
    app = create_app(settings, services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


TokenFactory = Callable[..., dict[str, str]]


@pytest.fixture
def auth() -> TokenFactory:
    """Headers for a user of a tenant: auth('acme', permissions=[...], clearance=...)."""

    def make(
        tenant: str = "acme",
        *,
        permissions: list[str] | None = None,
        clearance: Classification = Classification.INTERNAL,
        user: str = "alice",
    ) -> dict[str, str]:
        token = issue_token(
            SECRET, tenant_id=tenant, user_id=user,
            permissions=ALL if permissions is None else permissions, clearance=clearance,
        )  # fmt: skip
        return {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant}

    return make
