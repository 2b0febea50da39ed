"""Embedders: text to unit-length float32 vectors (the `Embedder` protocol in backends/).

onnx.py     OnnxEmbedder: all-MiniLM-L6-v2 on onnxruntime, exported once by `prepare_model`
openai.py   OpenAIEmbedder: any OpenAI-compatible /v1/embeddings endpoint, with retries
cache.py    CachingEmbedder: wraps either; remembers query vectors per tenant
"""

from __future__ import annotations

import functools
from pathlib import Path

import structlog

from tenantrag.backends import Embedder
from tenantrag.settings import EmbeddingSettings

log = structlog.get_logger("tenantrag.embedding")


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


def build_query_embedder(
    settings: EmbeddingSettings, *, model_dir: Path, documents: Embedder
) -> Embedder:
    """The embedder of questions: the documents' model quantised to int8, or the model itself.

    With `query_precision` int8 (the default; onnx only) questions are embedded by the int8
    model against documents embedded in fp32: the vectors share one space, and a question
    costs about 45% of the fp32 model's CPU. Where the int8 model is missing and cannot be
    made (a lean install whose export predates it), the default falls back to fp32 with a
    warning; asked for explicitly, int8 is required and its absence stops the start.
    """
    if settings.provider != "onnx" or settings.query_precision == "fp32":
        return documents
    from tenantrag.backends.embedding.onnx import ModelNotExported, prepare_int8, prepare_model

    folder = prepare_model(model_dir)
    try:
        prepare_int8(folder)
    except ModelNotExported as exc:
        if "query_precision" in settings.model_fields_set:
            raise
        log.warning("int8_query_model_missing", fallback="fp32", error=str(exc))
        return documents
    return _int8_embedder(folder, settings.max_tokens)


@functools.cache
def _int8_embedder(folder: Path, max_tokens: int) -> Embedder:
    """One int8 session per export and process: it is thread-safe, and loading costs ~0.2 s."""
    from tenantrag.backends.embedding.onnx import OnnxEmbedder

    return OnnxEmbedder(folder, max_tokens=max_tokens, threads=1, int8=True)
