"""/v1/embeddings end to end: the embedding model over a client's texts, audited and billed.

The texts are billed to the caller's tenant like every other use of the model.

No tenant data is read, so nothing is retrieved or redacted: the texts go to the model and the
vectors come back. The audit record holds counts only, never the texts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tenantrag.backends.embedding.cache import CachingEmbedder
from tenantrag.metering import CostRecorder, write_bill
from tenantrag.models import AuditEvent, Principal, RequestIds, Tenant
from tenantrag.observability.audit import Auditor
from tenantrag.observability.tracing import span
from tenantrag.settings import CostSettings


@dataclass(frozen=True, slots=True)
class Embedded:
    """The vectors, one row per text in order, and the word pieces the model read."""

    vectors: np.ndarray
    tokens: int


@dataclass(frozen=True, slots=True)
class EmbeddingService:
    """Embeds texts for a tenant, bills the tokens and records who asked."""

    embeddings: CachingEmbedder
    auditor: Auditor
    costs: CostRecorder
    pricing: CostSettings
    max_tokens: int  # the model reads at most this many word pieces of a text

    async def embed(
        self, tenant: Tenant, principal: Principal, texts: Sequence[str], ids: RequestIds
    ) -> Embedded:
        """The texts' vectors (uncached: each request's texts are its own), audited and billed."""
        started = time.perf_counter()
        with span("embed.inputs", {"gen_ai.request.model": self.embeddings.model_name}):
            done = await asyncio.to_thread(self._embed, texts)
        await self.auditor.arecord(
            AuditEvent(
                "embeddings",
                "success",
                tenant.id,
                principal.user_id,
                ids,
                detail={"inputs": len(texts), "tokens": done.tokens},
            )
        )
        # A document write's bill exactly: the embedding of its tokens and the compute time.
        bill = write_bill(self.pricing, seconds=time.perf_counter() - started, tokens=done.tokens)
        self.costs.record(tenant.id, bill, request_id=ids.request_id, model=None)
        return done

    def _embed(self, texts: Sequence[str]) -> Embedded:
        vectors = np.asarray(self.embeddings.embed(texts), dtype=np.float32)
        tokens = sum(min(self.embeddings.count_tokens(t), self.max_tokens) for t in texts)
        return Embedded(vectors, tokens)
