"""Shared fixtures, and what makes every run depend on the code and the lock only.

- The machine's settings never reach a test: every `TENANTRAG_*` variable is removed from the
  environment before collection (child servers inherit the cleaned environment), and no `.env` file
  is read. Tests opt into optional outside services with `TENANTRAG_TEST_*` variables only.
- A test declares the services it needs with a marker (`redis`, `postgres`, `root`, `promtool`,
  `browser`); when one is missing the test fails and says how to provide it: nothing is skipped
  quietly.
- Test data lives in tests/data/ and the package's resources: nothing outside the repository.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL_CACHE = ROOT / ".cache" / "models"
TEST_DATA = ROOT / "tests" / "data"
DEMO_DATA = ROOT / "src" / "tenantrag" / "resources" / "demo"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Variables a developer sets on purpose to point optional suites at a live service.
TEST_OPTION_PREFIX = "TENANTRAG_TEST_"


def _clean_environment() -> None:
    """Remove the machine's TENANTRAG_* settings and stop Settings from reading `.env`."""
    for name in list(os.environ):
        if name.startswith("TENANTRAG_") and not name.startswith(TEST_OPTION_PREFIX):
            del os.environ[name]
    from tenantrag.settings import Settings

    Settings.model_config["env_file"] = None


_clean_environment()


# What each marker needs, how to check it, and what to do when it is missing.
def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _postgres_answers() -> bool:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


REQUIREMENTS = {
    "redis": (
        _redis_answers,
        "Redis is not answering on 127.0.0.1:6379; start it with "
        "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''`",
    ),
    "postgres": (
        _postgres_answers,
        "PostgreSQL is not answering on 127.0.0.1:5432 as user postgres (trust auth); start it "
        "with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`",
    ),
    "root": (lambda: os.geteuid() == 0, "this test mounts a tmpfs and must run as root"),
    "promtool": (
        lambda: shutil.which("promtool") is not None,
        "promtool is missing; run scripts/install-tools.sh (make test does)",
    ),
    "browser": (
        lambda: Path("/usr/bin/chromium").exists(),
        "Chromium is missing; run scripts/install-tools.sh (make test does)",
    ),
}


@cache
def _available(marker: str) -> bool:
    return REQUIREMENTS[marker][0]()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail, loudly and with the fix, a test whose declared service is missing."""
    for marker in REQUIREMENTS:
        if item.get_closest_marker(marker) is not None and not _available(marker):
            pytest.fail(f"[{marker}] {REQUIREMENTS[marker][1]}", pytrace=False)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The ONNX export of all-MiniLM-L6-v2, made on first use and reused after.

    The folder that holds the model files; `TENANTRAG_MODEL_DIR` is its parent.
    """
    from tenantrag.backends.embedding.onnx import prepare_model

    return prepare_model(MODEL_CACHE)


@pytest.fixture(scope="session")
def test_data() -> Path:
    """Small evaluation data copied into the repository (tests/data, see its README)."""
    return TEST_DATA


@pytest.fixture(scope="session")
def handbook_corpus() -> Path:
    """The 18F staff handbook, one `{"_id", "title", "text"}` page a line (the demo tenant's)."""
    return DEMO_DATA / "handbook.jsonl"


@pytest.fixture(scope="session")
def scifact_sample() -> Path:
    """The first 300 abstracts of BEIR SciFact's corpus (the second demo tenant's)."""
    return DEMO_DATA / "scifact-sample.jsonl"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test run; dropped at the end."""
    import psycopg

    if not _available("postgres"):
        pytest.fail(f"[postgres] {REQUIREMENTS['postgres'][1]}", pytrace=False)
    name = f"tenantrag_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
