"""POST /v1/embeddings: the deployment's embedding model, in OpenAI's embedding list shape.

OpenAI's SDKs ask for `encoding_format="base64"` unless told otherwise and decode it
themselves: the bytes are the vector's float32 values, little-endian, base64-encoded. Both that
and plain floats are served. Token-id arrays (OpenAI's own tokenizer's ids) mean nothing to
our model and are refused.
"""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter

from tenantrag.api.deps import CanQuery, IdsDep, ServicesDep, TenantDep
from tenantrag.api.openai_schemas import (
    MAX_EMBEDDING_CHARS,
    MAX_EMBEDDING_INPUTS,
    Embedding,
    EmbeddingList,
    EmbeddingsIn,
    EmbeddingUsage,
)
from tenantrag.api.routes.openai import CHAT_MODEL, ERRORS, OpenAIRoute
from tenantrag.errors import ModelNotFound, ValidationFailed
from tenantrag.pipeline.embeddings import EmbeddingService

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute, responses=ERRORS)


@router.post("/embeddings", summary="Embed texts with your tenant's embedding model")
async def embeddings(
    body: EmbeddingsIn, principal: CanQuery, tenant: TenantDep, services: ServicesDep, ids: IdsDep
) -> EmbeddingList:
    """One vector per input, in order; billed to your tenant as embedding tokens."""
    model = services.query_embeddings.model_name
    if body.model not in (model, CHAT_MODEL):
        raise ModelNotFound(
            f"The model {body.model!r} does not exist; use {model!r} (GET /v1/models)."
        )
    if body.dimensions is not None and body.dimensions != services.query_embeddings.dimensions:
        raise ValidationFailed(
            f"The model's vectors have {services.query_embeddings.dimensions} dimensions;"
            " leave dimensions unset or send that.",
            param="dimensions",
        )
    texts = inputs(body)
    await services.costs.acheck_quota(tenant)  # in memory: never waits on the database
    service = EmbeddingService(
        services.query_embeddings,
        services.auditor,
        services.costs,
        services.settings.cost,
        max_tokens=services.settings.embedding.max_tokens,
    )
    done = await service.embed(tenant, principal, texts, ids)
    encode = _base64 if body.encoding_format == "base64" else _floats
    return EmbeddingList(
        data=[Embedding(index=i, embedding=encode(v)) for i, v in enumerate(done.vectors)],
        model=model,
        usage=EmbeddingUsage(prompt_tokens=done.tokens, total_tokens=done.tokens),
    )


def inputs(body: EmbeddingsIn) -> list[str]:
    """The texts to embed, or the error that says what is wrong with them."""
    raw = [body.input] if isinstance(body.input, str) else body.input
    if not raw:
        raise ValidationFailed("input is empty; send a string or a list of strings.", param="input")
    if len(raw) > MAX_EMBEDDING_INPUTS:
        raise ValidationFailed(
            f"input has {len(raw)} items; the limit is {MAX_EMBEDDING_INPUTS} per request.",
            param="input",
        )
    texts: list[str] = []
    for i, item in enumerate(raw):
        where = "input" if isinstance(body.input, str) else f"input[{i}]"
        if not isinstance(item, str):
            raise ValidationFailed(
                "Token-id arrays are not accepted (they are another tokenizer's ids);"
                " send the text.",
                code="unsupported_input",
                param=where,
            )
        if not item.strip():
            raise ValidationFailed("An input is empty; send text.", param=where)
        if len(item) > MAX_EMBEDDING_CHARS:
            raise ValidationFailed(
                f"An input is {len(item)} characters; the limit is {MAX_EMBEDDING_CHARS}.",
                param=where,
            )
        texts.append(item)
    return texts


def _floats(vector: np.ndarray) -> list[float]:
    floats: list[float] = vector.astype(float).tolist()
    return floats


def _base64(vector: np.ndarray) -> str:
    """float32, little-endian, base64: what OpenAI's SDKs decode (numpy.frombuffer '<f4')."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
