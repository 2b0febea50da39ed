"""Fixtures for the cache tests: random tenant namespaces on the shared Redis, and a private
redis-server that a test may kill and restart."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def shared_redis_url() -> str:
    """The machine's shared Redis (tests keep to random tenant namespaces on it)."""
    return SHARED_REDIS_URL


@pytest.fixture
def clock() -> FakeClock:
    """A fake monotonic clock starting at 1000 s."""
    return FakeClock()


@pytest.fixture
def new_tenant() -> Iterator[Callable[[], str]]:
    """Makes random tenant ids; every key under them is deleted from the shared Redis after."""
    made: list[str] = []

    def make() -> str:
        tenant = f"t-{uuid.uuid4().hex[:12]}"
        made.append(tenant)
        return tenant

    yield make
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        for tenant in made:
            keys = list(client.scan_iter(match=f"{tenant}:*", count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisProcess:
    """A private redis-server on its own port, which a test may stop and start again."""

    port: int
    proc: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    """A running private redis-server (killed at the end of the test)."""
    server = RedisProcess(free_port())
    server.start()
    yield server
    server.kill()
