"""build_embedder picks the embedder the settings name."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tenantrag.backends.embedding import build_embedder
from tenantrag.backends.embedding.onnx import OnnxEmbedder
from tenantrag.backends.embedding.openai import OpenAIEmbedder
from tenantrag.settings import EmbeddingSettings


def test_onnx_provider_loads_the_export(model_dir: Path) -> None:
    """The default settings give an OnnxEmbedder over the export in model_dir."""
    embedder = build_embedder(EmbeddingSettings(batch_size=8), model_dir=model_dir.parent)
    assert isinstance(embedder, OnnxEmbedder)
    assert embedder.batch_size == 8
    assert embedder.embed(["hello"]).shape == (1, 384)


def test_onnx_provider_refuses_another_model(tmp_path: Path) -> None:
    """Asking the onnx provider for a model it does not serve fails before any export."""
    settings = EmbeddingSettings(model="text-embedding-3-small", dimensions=1536)
    with pytest.raises(ValueError, match="PROVIDER=openai"):
        build_embedder(settings, model_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_openai_provider_uses_the_settings() -> None:
    """The openai provider gets the model, dimensions and batch size from the settings."""
    settings = EmbeddingSettings(
        provider="openai",
        model="text-embedding-3-small",
        dimensions=1536,
        batch_size=16,
        api_key=SecretStr("sk-test"),
        base_url="http://127.0.0.1:9/v1",
    )
    embedder = build_embedder(settings, model_dir=Path("unused"))
    assert isinstance(embedder, OpenAIEmbedder)
    with embedder:
        assert (embedder.model_name, embedder.dimensions, embedder.batch_size) == (
            "text-embedding-3-small",
            1536,
            16,
        )
