"""A real `tenantrag serve` and Debian's headless Chromium under Playwright, for the browser tests
and `make bench`'s screenshots.

Playwright drives /usr/bin/chromium (scripts/install-tools.sh installs it from Debian's
`chromium` package); `playwright install` is never run and no browser is downloaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tenantrag.auth import issue_token
from tenantrag.models import Permission

CHROMIUM = Path("/usr/bin/chromium")
SECRET = "browser-tests-secret-0123456789-abcdefghij"
ALL_PERMISSIONS = [p.value for p in Permission]
# Headless, sandbox-free (we run as root in a container), and quiet: no GPU, no QUIC, no first-run
# page, and none of Chromium's own calls home (updates, sync, safe browsing lists).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> Path:
    """Debian's Chromium, or a loud failure saying how to get it (never a silent skip)."""
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: run `make tools` (scripts/install-tools.sh installs Debian's "
            "chromium and chromium-driver packages) before the browser tests."
        )
    return CHROMIUM


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ConsoleServer:
    """One `tenantrag serve` process on its own data folder, without Redis."""

    data_dir: Path
    model_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> tuple[str, str]:
        parts = urlsplit(self.base_url)
        return parts.scheme, parts.netloc

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRAG_")}
        env.update(
            TENANTRAG_DATA_DIR=str(self.data_dir),
            TENANTRAG_MODEL_DIR=str(self.model_dir),
            TENANTRAG_JWT_SECRET=SECRET,
            TENANTRAG_LOG_LEVEL="WARNING",
        )
        return env

    def cli(self, *args: str) -> str:
        """Run `tenantrag ARGS` against this server's data folder; its output."""
        result = subprocess.run(
            [sys.executable, "-m", "tenantrag.cli", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"tenantrag {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def create_tenant(self, tenant_id: str) -> None:
        """A real tenant, made by the CLI as an operator would."""
        self.cli("tenant", "create", tenant_id)

    def token(
        self, tenant_id: str, *, user: str = "ada", permissions: list[str] | None = None
    ) -> str:
        """A signed token for a user of `tenant_id` (every permission unless told)."""
        return issue_token(
            SECRET,
            tenant_id=tenant_id,
            user_id=user,
            permissions=ALL_PERMISSIONS if permissions is None else permissions,
        )

    def headers(self, tenant_id: str, **kwargs: Any) -> dict[str, str]:
        """API headers for a user of `tenant_id`."""
        return {
            "Authorization": f"Bearer {self.token(tenant_id, **kwargs)}",
            "X-Tenant-ID": tenant_id,
        }

    def start(self, timeout_s: float = 90) -> None:
        """Start `tenantrag serve` and wait until /health answers."""
        cmd = [sys.executable, "-m", "tenantrag.cli", "serve", "--port", str(self.port)]
        with self.log_path.open("w") as out:
            self.process = subprocess.Popen(
                cmd, env=self.env(), stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(
            f"server not ready in {timeout_s}s:\n{self.log_path.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        """SIGTERM, then wait (kill after 30 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def launch_options(user_data_dir: Path) -> dict[str, Any]:
    """Keyword arguments for Playwright's launch_persistent_context: Debian's Chromium, headless,
    on a fresh profile folder (the caller makes it new)."""
    return {
        "user_data_dir": str(user_data_dir),
        "executable_path": str(require_chromium()),
        "headless": True,
        "args": CHROMIUM_ARGS,
        "viewport": {"width": 1200, "height": 800},
    }
