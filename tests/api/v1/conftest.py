"""A real HTTP server (uvicorn, on a loopback port, in the test's own event loop) over the test's
services, and OpenAI's official SDK pointed at its /v1.

The server runs in-process so the test can reach the same services (store, audit, ledger) it
serves from, and streams go over a real socket, chunk by chunk, as they would to any client.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import pytest
import uvicorn
from tests.api.conftest import SECRET
from tests.api.v1.support import ALL, Live

from tenantrag.app import create_app
from tenantrag.auth import issue_token
from tenantrag.models import Classification
from tenantrag.services import Services
from tenantrag.settings import Settings


@pytest.fixture
async def live(settings: Settings, services: Services) -> AsyncIterator[Live]:
    """The app served by uvicorn on a free loopback port until the test ends."""
    app = create_app(settings, services)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", ws="none", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    served = Live(f"http://127.0.0.1:{port}")
    try:
        yield served
    finally:
        await served.close()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        sock.close()


TokenMaker = Callable[..., str]


@pytest.fixture
def token() -> TokenMaker:
    """A bearer token: token('acme', permissions=[...], clearance=..., user=...)."""

    def make(
        tenant: str = "acme",
        *,
        permissions: list[str] | None = None,
        clearance: Classification = Classification.INTERNAL,
        user: str = "alice",
    ) -> str:
        return issue_token(
            SECRET,
            tenant_id=tenant,
            user_id=user,
            permissions=ALL if permissions is None else permissions,
            clearance=clearance,
        )

    return make
