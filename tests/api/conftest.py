"""An app on a fresh data folder with two tenants, driven in-process through httpx."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from tenantrag.app import create_app
from tenantrag.auth import issue_token
from tenantrag.backends import Embedder
from tenantrag.models import Classification, Permission, Tenant
from tenantrag.services import Services, open_services
from tenantrag.settings import Settings

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
ALL = [p.value for p in Permission]


class RememberingEmbedder:
    """The real model, which computes each distinct text's vector once per session.

    Many tests ingest the same documents; the model (OnnxEmbedder's default batch size of 1)
    makes each vector depend on its text alone, so the vector it computed the first time is the
    one it would compute again, bit for bit. Every vector still comes from the real model.
    """

    def __init__(self, model: Embedder) -> None:
        self.model = model
        self.model_name = model.model_name
        self.dimensions = model.dimensions
        self.count_tokens = model.count_tokens
        self._known: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, dimensions) float32 array, one row per text: the model's, computed once."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._known))
        if missing:
            for text, row in zip(missing, self.model.embed(missing), strict=True):
                self._known[text] = row
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._known[text]
        return out


@pytest.fixture(scope="session")
def embedder(model_dir: Path) -> Embedder:
    """One loaded embedding model for the whole session, remembering the vectors it made."""
    from tenantrag.backends.embedding.onnx import OnnxEmbedder

    model = OnnxEmbedder(model_dir)
    assert model.batch_size == 1  # what makes a remembered vector the one it would compute
    return RememberingEmbedder(model)


@pytest.fixture
def settings(tmp_path: Path, model_dir: Path) -> Settings:
    """Settings for one test: its own data folder, a strong secret, in-process limits."""
    return Settings(
        data_dir=tmp_path / "data",
        jwt_secret=SecretStr(SECRET),
        redis_url=None,
        model_dir=model_dir.parent,
    )


async def build_services(settings: Settings, embedder: Embedder) -> Services:
    """Opened services for `settings` sharing the session's embedding model."""
    return await open_services(settings, embedder=embedder)


@pytest.fixture
async def services(settings: Settings, embedder: Embedder) -> AsyncIterator[Services]:
    """Opened backends with the tenants acme and globex."""
    built = await build_services(settings, embedder)
    built.store.create_tenant(Tenant(id="acme"))
    built.store.create_tenant(Tenant(id="globex"))
    yield built
    await built.close()


@pytest.fixture
async def client(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the app in-process."""
    app = create_app(settings, services)
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
            SECRET,
            tenant_id=tenant,
            user_id=user,
            permissions=ALL if permissions is None else permissions,
            clearance=clearance,
        )
        return {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant}

    return make


@pytest.fixture
def clear_of_month_end() -> None:
    """Wait out the last two minutes of a UTC month, if the test starts in them.

    A test that records usage and then reads "this month so far" must do both in one month;
    started at 23:59:59 on the 31st, it would read an empty new month.
    """
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (start + timedelta(days=32)).replace(day=1)
    left = (next_month - now).total_seconds()
    if left < 120:
        time.sleep(left + 1)


def audit_trail(services: Services) -> list[dict[str, object]]:
    """Every record of the store's audit chain, oldest first."""
    return [record for record, _ in services.store.iter_audit() if isinstance(record, dict)]


def audit_text(services: Services) -> str:
    """The audit chain as the JSON lines `tenantrag audit export` writes."""
    import json

    return "\n".join(json.dumps(r, separators=(",", ":")) for r in audit_trail(services))
