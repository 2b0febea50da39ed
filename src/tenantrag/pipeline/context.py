"""The state one /api/query request carries through the six stages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from tenantrag.backends.llm import Completion, Prompt
from tenantrag.models import Classification, CostItem, Hit, Principal, RequestIds, Tenant
from tenantrag.retrieval import SearchParams

# Where a streamed answer's text goes as it is written (already redacted), or None: not streamed.
DeltaSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Citation:
    """A numbered source the answer cites as [index]."""

    index: int
    document_id: str
    chunk_id: str
    title: str
    snippet: str
    score: float


@dataclass
class QueryContext:
    """A query on its way down the pipeline; each stage fills in its part."""

    tenant: Tenant
    principal: Principal
    params: SearchParams
    ids: RequestIds = RequestIds()
    deltas: DeltaSink | None = None
    question: str = ""
    # A chat follow-up's own words, when `question` (what retrieval and the cache read) was
    # completed with earlier turns' terms (pipeline/conversation.py); the answerer reads these.
    asked: str = ""
    vector: np.ndarray | None = None
    flags: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    untrusted: set[str] = field(default_factory=set)
    redactions: dict[str, int] = field(default_factory=dict)
    classification: Classification = Classification.PUBLIC
    prompt: Prompt | None = None
    completion: Completion | None = None
    answer: str = ""
    citations: list[Citation] = field(default_factory=list)
    costs: list[CostItem] = field(default_factory=list)
    embedding_tokens: int = 0
    cached: bool = False
    started: float = 0.0

    @property
    def degraded(self) -> bool:
        """True when the answer came from the offline fallback because the model failed."""
        return bool(self.completion and self.completion.degraded)

    def flag(self, name: str) -> None:
        """Add a flag once."""
        if name not in self.flags:
            self.flags.append(name)

    def count_redactions(self, counts: dict[str, int]) -> None:
        """Add PII redactions (by type) to this request's tally."""
        for kind, n in counts.items():
            self.redactions[kind] = self.redactions.get(kind, 0) + n
