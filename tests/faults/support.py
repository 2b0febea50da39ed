"""The fault harness: a private Redis we can kill, live server processes, /proc readings, load.

Shared by tests/faults (small, bounded runs) and bench/faults.py and bench/soak.py (long ones).
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from tests.integration.conftest import METRICS_TOKEN, SECRET, Server, free_port

from tenantrag.auth import issue_token
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import Permission, Tenant

ROOT = Path(__file__).resolve().parents[2]
ALL_PERMISSIONS = [p.value for p in Permission]
__all__ = ["SECRET", "Server", "free_port"]


def wait_for(predicate: Callable[[], bool], *, timeout_s: float, every_s: float = 0.05) -> bool:
    """Poll `predicate()` until it is true or `timeout_s` passes; its last verdict."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every_s)


class RedisServer:
    """A throw-away redis-server on a loopback port: no persistence, killable and restartable."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        """The redis:// URL of database `db`."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        """Start (or restart, on the same port) and wait until PING answers."""
        cmd = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for(self.answers, timeout_s=10):
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        return self

    def answers(self) -> bool:
        """True when a raw PING gets +PONG."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the data and every connection are gone at once, as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


# -- live server processes, as the operating system sees them -------------------------------------


def children(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name may hold spaces and parentheses; the fields after the last ")" do not.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (uvicorn's supervisor and its workers)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children(current))
    return tree


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (VmRSS); 0 once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass  # the process is gone: no resident memory to report
    return 0


def open_fds(pid: int) -> int:
    """How many file descriptors one process holds open; 0 once it has exited."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> list[int]:
    """Send `sig` to the workers first, then to `pid`; the pids signalled."""
    tree = process_tree(pid)
    for member in reversed(tree):
        with contextlib.suppress(ProcessLookupError):  # it exited on its own meanwhile
            os.kill(member, sig)
    return tree


def pids_of(server: Server) -> list[int]:
    """The server process and its uvicorn workers now."""
    return process_tree(server.process.pid)


def kill9(server: Server) -> None:
    """SIGKILL the workers and the server at once, as a power cut or the OOM killer would."""
    kill_tree(server.process.pid)
    server.process.wait(timeout=10)


def start_server(
    data_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    log: Path | None = None,
) -> Server:
    """A ready `tenantrag serve` over `data_dir` (created with its store), outside pytest too."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(data_dir / "tenantrag.db")
    store.open()
    store.close()
    full = {
        **os.environ,
        "TENANTRAG_DATA_DIR": str(data_dir),
        "TENANTRAG_MODEL_DIR": str(ROOT / ".cache" / "models"),
        "TENANTRAG_JWT_SECRET": SECRET,
        # With Redis (distributed mode) `serve` refuses to start without a metrics token.
        "TENANTRAG_METRICS_TOKEN": METRICS_TOKEN,
        "TENANTRAG_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    server = Server(full, workers, log or data_dir.parent / f"server-{uuid.uuid4().hex[:6]}.log")
    server.wait_ready(timeout_s=120)
    return server


def create_tenant(data_dir: Path, *, rate_limit: int = 100_000, prefix: str = "ft") -> str:
    """A fresh tenant in the store of `data_dir`; its id."""
    tenant_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
    store = SQLiteStore(data_dir / "tenantrag.db")
    store.open()
    try:
        store.create_tenant(Tenant(id=tenant_id, rate_limit=rate_limit))
    finally:
        store.close()
    return tenant_id


def headers_for(tenant_id: str, *, secret: str = SECRET, ttl_s: int = 86_400) -> dict[str, str]:
    """Authorization and X-Tenant-ID headers with every permission."""
    token = issue_token(
        secret, tenant_id=tenant_id, user_id="fault", permissions=ALL_PERMISSIONS, ttl_s=ttl_s
    )
    return {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant_id}
