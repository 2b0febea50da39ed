"""The wire contract (docs/api.md) as pydantic models; the OpenAPI schema comes from here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tenantrag.models import DOCUMENT_ID_MAX_CHARS, DOCUMENT_ID_REGEX, Classification

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
DOCUMENT_ID = DOCUMENT_ID_REGEX  # models.py says why; at most DOCUMENT_ID_MAX_CHARS
CLASSIFICATIONS = Literal["public", "internal", "confidential", "restricted"]
MetadataValue = str | int | float | bool


class Strict(BaseModel):
    """Unknown fields are refused, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class DocumentIn(Strict):
    """One document to store; an existing id is replaced."""

    id: str | None = Field(default=None, pattern=DOCUMENT_ID, max_length=DOCUMENT_ID_MAX_CHARS)
    title: str | None = Field(default=None, max_length=1000)
    text: str = Field(min_length=1)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict, max_length=64)
    classification: CLASSIFICATIONS | None = None

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be blank")
        if len(value.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"text is over {MAX_DOCUMENT_BYTES} bytes; split the document")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, MetadataValue]) -> dict[str, MetadataValue]:
        for key, item in value.items():
            _check_metadata_key(key, "metadata")
            if isinstance(item, str) and len(item) > 1000:
                raise ValueError(f"metadata value of {key!r} is over 1000 characters")
        return value


def _check_metadata_key(key: str, what: str) -> None:
    """Raise ValueError unless `key` is 1-64 letters, digits, '_' or '-'.

    The same rule for stored metadata and for filters: a filter key no document can hold is a
    mistake to report, and quotes, dots or brackets never reach a backend's query syntax.
    """
    if not key or len(key) > 64 or not key.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"{what} key {key[:80]!r} must be 1-64 letters, digits, '_' or '-'")


def _check_filters(value: dict[str, MetadataValue] | None) -> dict[str, MetadataValue] | None:
    for key in value or {}:
        _check_metadata_key(key, "filter")
    return value


class DocumentsIn(Strict):
    """A batch of up to 256 documents."""

    documents: list[DocumentIn] = Field(min_length=1, max_length=256)


class DocumentStatus(BaseModel):
    """What happened to one posted document."""

    id: str
    chunks: int
    status: Literal["created", "replaced"]
    classification: CLASSIFICATIONS


class DocumentsOut(BaseModel):
    """The outcome of a batch, in the order posted."""

    documents: list[DocumentStatus]


class DocumentPublic(BaseModel):
    """A stored document's fields (not its text)."""

    id: str
    title: str
    source: str
    classification: CLASSIFICATIONS
    metadata: dict[str, MetadataValue]
    bytes: int
    chunks: int
    created_at: float
    updated_at: float


class DocumentList(BaseModel):
    """One page of documents and the cursor of the next."""

    documents: list[DocumentPublic]
    next_cursor: str | None


class SearchIn(Strict):
    """A search over the caller's tenant."""

    query: str = Field(min_length=1, max_length=20_000)
    top_k: int = Field(default=5, ge=1, le=100)
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    filters: dict[str, MetadataValue] | None = Field(default=None, max_length=16)
    dedupe_documents: bool = False
    fusion: Literal["zscore", "minmax", "rrf"] | None = None

    _filters = field_validator("filters")(_check_filters)


class Scores(BaseModel):
    """Each retriever's raw score (None where it did not find the chunk)."""

    bm25: float | None
    vector: float | None


class Ranks(BaseModel):
    """The chunk's 1-based rank in each retriever's list."""

    bm25: int | None
    vector: int | None


class SearchResult(BaseModel):
    """One retrieved chunk."""

    document_id: str
    chunk_id: str
    title: str
    text: str
    score: float
    scores: Scores
    ranks: Ranks
    classification: CLASSIFICATIONS
    metadata: dict[str, MetadataValue]


class SearchOut(BaseModel):
    """Search results, best first."""

    results: list[SearchResult]
    took_ms: float


def classification_label(value: Classification) -> CLASSIFICATIONS:
    """The wire name of a classification."""
    return value.label  # type: ignore[return-value]  # the enum's names are exactly the Literal


class QueryIn(Strict):
    """A question about the caller's documents."""

    query: str = Field(min_length=1, max_length=20_000)
    top_k: int = Field(default=5, ge=1, le=20)
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    filters: dict[str, MetadataValue] | None = Field(default=None, max_length=16)
    stream: bool = False

    _filters = field_validator("filters")(_check_filters)


class CitationOut(BaseModel):
    """A numbered source: the answer's [index] refers to it."""

    index: int
    document_id: str
    chunk_id: str
    title: str
    snippet: str
    score: float


class Usage(BaseModel):
    """Model tokens this request used."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CostLine(BaseModel):
    """One line of the bill."""

    cost_type: str
    amount_usd: float
    details: dict[str, str | int | float]


class Cost(BaseModel):
    """What this request cost, by type."""

    total_usd: float
    items: list[CostLine]


class QueryOut(BaseModel):
    """The answer with its sources, usage and cost."""

    answer: str
    citations: list[CitationOut]
    classification: CLASSIFICATIONS
    usage: Usage
    cost: Cost
    cached: bool
    degraded: bool
    flags: list[str]
    trace_id: str | None


class MeOut(BaseModel):
    """The caller as the server sees it."""

    tenant_id: str
    user_id: str
    permissions: list[str]
    clearance: CLASSIFICATIONS
    rate_limit_per_minute: int


class HealthOut(BaseModel):
    """Liveness."""

    status: Literal["ok"]


class ErrorDetail(BaseModel):
    """The contract's error: a snake_case code and a message saying what to do."""

    code: str
    message: str


class ReplicationOut(BaseModel):
    """With a database: how current this node's local copy is (a lagging node keeps serving)."""

    applied_seq: int
    lag_s: float


class ReadyOut(BaseModel):
    """Readiness: each dependency's check; `error` names what is down (with status 503).

    `degraded` names what is down while the node keeps serving without it (status 200).
    """

    status: Literal["ready", "degraded", "unavailable"]
    checks: dict[str, bool]
    replication: ReplicationOut | None = None
    degraded: list[str] | None = None
    detail: str | None = None
    error: ErrorDetail | None = None


class Totals(BaseModel):
    """Money, tokens and event count of a group of cost events."""

    amount_usd: float
    tokens: int
    events: int


class Quota(BaseModel):
    """A limit and how much of it is used."""

    limit: int | float
    used: int | float


class Quotas(BaseModel):
    """The tenant's quotas and their use this month (storage and documents: now)."""

    monthly_tokens: Quota
    monthly_cost_usd: Quota
    storage_bytes: Quota
    documents: Quota
    resets_at: str


class FeedbackTotals(BaseModel):
    """Ratings of the tenant's answers given or changed in the period (POST /api/feedback)."""

    up: int
    down: int
    with_comment: int


class UsageOut(BaseModel):
    """Costs and tokens between two UTC dates (inclusive), by type, model and day."""

    tenant_id: str
    start: str
    end: str
    total: Totals
    by_type: dict[str, Totals]
    by_model: dict[str, Totals]
    by_day: dict[str, Totals]
    quotas: Quotas
    feedback: FeedbackTotals


class AuditRecord(BaseModel):
    """One audit record as the hash-chained log holds it (docs/audit.md)."""

    model_config = ConfigDict(extra="allow")

    seq: int
    time: str
    tenant_id: str | None
    user_id: str | None
    action: str
    outcome: str
    resource_ids: list[str]
    request_id: str | None
    trace_id: str | None
    detail: dict[str, MetadataValue]
    prev_hash: str
    hash: str


class AuditOut(BaseModel):
    """The caller's tenant's audit records, newest first, and the `before` of the next page."""

    records: list[AuditRecord]
    next_before: int | None


# A request id as the request-id middleware keeps or makes one (X-Request-ID).
REQUEST_ID = r"^[A-Za-z0-9._:-]{8,128}$"
MAX_COMMENT_CHARS = 2000


class FeedbackIn(Strict):
    """A thumbs up or down on one answer, named by the X-Request-ID its /api/query reply had."""

    request_id: str = Field(pattern=REQUEST_ID, description="The answer's X-Request-ID")
    rating: Literal["up", "down"]
    comment: str | None = Field(
        default=None,
        max_length=MAX_COMMENT_CHARS,
        description="Optional; personal data in it is redacted before it is stored",
    )

    @field_validator("comment")
    @classmethod
    def _comment(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for ch in value:
            # Text a person typed: no control characters but line breaks and tabs, and no lone
            # surrogates (which no database text column holds).
            if (
                (ord(ch) < 32 and ch not in "\n\t\r")
                or ord(ch) == 127
                or 0xD800 <= ord(ch) < 0xE000
            ):
                raise ValueError("comment holds a control character or a lone surrogate")
        return value.strip() or None


class FeedbackOut(BaseModel):
    """The rating as stored: the comment redacted; `created` false when it replaced yours."""

    request_id: str
    rating: Literal["up", "down"]
    comment: str | None
    created: bool
