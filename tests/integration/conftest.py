"""Real `tenantrag serve` processes on loopback ports, sharing one data folder and Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from tenantrag.auth import issue_token
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import Permission, Tenant

SECRET = "integration-secret-0123456789-abcdefghijklmnop"
METRICS_TOKEN = "integration-metrics-token-0123456789"
REDIS_URL = "redis://127.0.0.1:6379/13"


def free_port() -> int:
    """A TCP port nobody listens on right now (another process may take it before we bind it:
    Server retries on a new port when that happens)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One `tenantrag serve` process, started in its log's folder (so no `.env` is near it)."""

    # A start that lost its port to another process is retried on a new one, this many times.
    BIND_ATTEMPTS = 3

    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.env, self.workers, self.log = env, workers, log
        self._launch()

    def _launch(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "tenantrag.cli",
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.log.parent
            )

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Block until /health answers; fail with the server's log otherwise."""
        deadline = time.monotonic() + timeout_s
        attempts = 1
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = self.log.read_text()
                if "address already in use" in text.lower() and attempts < self.BIND_ATTEMPTS:
                    attempts += 1
                    self._launch()
                    continue
                pytest.fail(f"server exited early:\n{text[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        pytest.fail(f"server not ready in {timeout_s}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM, then wait for the process and its workers to exit."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def cluster(tmp_path: Path, model_dir: Path) -> Iterator[Callable[..., Server]]:
    """Start servers over one data folder: cluster(workers=2, redis=True)."""
    servers: list[Server] = []
    data = tmp_path / "data"
    store = SQLiteStore(data / "tenantrag.db")
    store.open()

    def start(
        *, workers: int = 1, redis: bool = True, env: Mapping[str, str] | None = None
    ) -> Server:
        """A ready server; `env` adds or overrides TENANTRAG_* variables (e.g. the LLM)."""
        full = {
            **os.environ,
            "TENANTRAG_DATA_DIR": str(data),
            "TENANTRAG_MODEL_DIR": str(model_dir.parent),  # the folder above the export
            "TENANTRAG_JWT_SECRET": SECRET,
            # With Redis (distributed mode) `serve` refuses to start without a metrics token.
            "TENANTRAG_METRICS_TOKEN": METRICS_TOKEN,
            "TENANTRAG_LOG_LEVEL": "WARNING",
        }
        if redis:
            full["TENANTRAG_REDIS_URL"] = REDIS_URL
        full.update(env or {})
        server = Server(full, workers, tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def tenant(tmp_path: Path) -> Callable[..., tuple[str, dict[str, str]]]:
    """Create a fresh tenant in the shared store; returns its id and full-permission headers."""

    def make(rate_limit: int = 100) -> tuple[str, dict[str, str]]:
        tid = f"it-{uuid.uuid4().hex[:12]}"
        store = SQLiteStore(tmp_path / "data" / "tenantrag.db")
        store.open()
        store.create_tenant(Tenant(id=tid, rate_limit=rate_limit))
        token = issue_token(
            SECRET, tenant_id=tid, user_id="it", permissions=[p.value for p in Permission]
        )
        return tid, {"Authorization": f"Bearer {token}", "X-Tenant-ID": tid}

    return make
