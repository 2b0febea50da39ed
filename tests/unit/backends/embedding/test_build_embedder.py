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


def test_questions_are_embedded_in_int8_unless_fp32_is_asked(model_dir: Path) -> None:
    """int8 (the default) embeds questions with the quantised model; fp32 with the documents'."""
    from tenantrag.backends.embedding import build_query_embedder

    documents = build_embedder(EmbeddingSettings(), model_dir=model_dir.parent)
    int8 = build_query_embedder(
        EmbeddingSettings(), model_dir=model_dir.parent, documents=documents
    )
    assert isinstance(int8, OnnxEmbedder) and int8.model_name.endswith("-int8")
    fp32 = build_query_embedder(
        EmbeddingSettings(query_precision="fp32"), model_dir=model_dir.parent, documents=documents
    )
    assert fp32 is documents


def test_a_lean_install_without_the_int8_model_falls_back_only_by_default(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older export in a lean install: the default serves fp32 questions; an explicit int8
    refuses to start, naming how to make the model."""
    import shutil
    import sys

    from tenantrag.backends.embedding import build_query_embedder
    from tenantrag.backends.embedding.onnx import INT8_FILE, INT8_MANIFEST_FILE, ModelNotExported

    folder = tmp_path / model_dir.name
    shutil.copytree(model_dir, folder, ignore=shutil.ignore_patterns(INT8_FILE, INT8_MANIFEST_FILE))
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)  # no `onnx` installed
    documents = build_embedder(EmbeddingSettings(), model_dir=tmp_path)
    default = build_query_embedder(EmbeddingSettings(), model_dir=tmp_path, documents=documents)
    assert default is documents
    with pytest.raises(ModelNotExported, match="prepare-model --int8"):
        build_query_embedder(
            EmbeddingSettings(query_precision="int8"), model_dir=tmp_path, documents=documents
        )
