"""Embedders: text to unit-length float32 vectors (the `Embedder` protocol in backends/).

onnx.py     OnnxEmbedder: all-MiniLM-L6-v2 on onnxruntime, exported once by `prepare_model`
openai.py   OpenAIEmbedder: any OpenAI-compatible /v1/embeddings endpoint, with retries
cache.py    CachingEmbedder: wraps either; remembers query vectors per tenant
"""

from __future__ import annotations

from pathlib import Path

from tenantrag.backends import Embedder
from tenantrag.settings import EmbeddingSettings


def build_embedder(settings: EmbeddingSettings, *, model_dir: Path, threads: int = 1) -> Embedder:
    """The embedder `settings` names; for onnx, the model is exported under `model_dir` first.

    Args:
        settings: the TENANTRAG_EMBEDDING__* group.
        model_dir: where the ONNX export lives (Settings.model_dir); unused for openai.
        threads: onnxruntime threads per call; unused for openai.
    """
    if settings.provider == "openai":
        from tenantrag.backends.embedding.openai import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings)

    from tenantrag.backends.embedding.onnx import (
        DIMENSIONS,
        MODEL_NAME,
        OnnxEmbedder,
        prepare_model,
    )

    if settings.model != MODEL_NAME or settings.dimensions != DIMENSIONS:
        raise ValueError(
            f"the onnx provider serves {MODEL_NAME} ({DIMENSIONS} dimensions), not "
            f"{settings.model} ({settings.dimensions}); set TENANTRAG_EMBEDDING__PROVIDER=openai"
        )
    return OnnxEmbedder(
        prepare_model(model_dir),
        max_tokens=settings.max_tokens,
        batch_size=settings.batch_size,
        threads=threads,
    )
