"""Shared fixtures: the exported embedding model is built once per machine and cached."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL_CACHE = ROOT / ".cache" / "models"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The ONNX export of all-MiniLM-L6-v2, made on first use and reused after."""
    from tenantrag.backends.embedding.onnx import prepare_model

    return prepare_model(MODEL_CACHE)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's evaluation data folder (../shared/data)."""
    if not SHARED_DATA.exists():
        pytest.fail(f"the shared data folder {SHARED_DATA} is missing")
    return SHARED_DATA
