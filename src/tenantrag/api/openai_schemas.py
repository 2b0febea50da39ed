"""The /v1 wire contract: OpenAI's chat, model and embedding shapes, as pydantic models.

Requests accept the parameters OpenAI's SDKs and the tools built on them send; those that do
not apply to answers grounded in the tenant's documents (temperature, penalties, seed ...) are
accepted and ignored, and those we cannot honour (tools, several choices, log-probabilities,
images) are refused with a clear error. Unknown top-level fields are refused, as OpenAI does.
Messages ignore unknown keys: clients send back our own earlier messages as they got them.
`top_k`, `mode` and `filters` are tenantrag's own (the SDK's `extra_body`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tenantrag.api.schemas import CitationOut, MetadataValue, Strict

MAX_MESSAGES = 200
MAX_MESSAGE_CHARS = 20_000
MAX_EMBEDDING_INPUTS = 256
MAX_EMBEDDING_CHARS = 20_000  # per input; the model reads the first 256 word pieces of it


class TextPart(BaseModel):
    """A text part of a message's content (the only kind we read)."""

    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One turn of the conversation."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None
    name: str | None = Field(default=None, max_length=256)

    def text(self) -> str:
        """The turn's text: the string, or its text parts joined by newlines."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text or "" for p in self.content)


class StreamOptions(BaseModel):
    """OpenAI's stream options: usage in a last chunk of its own."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ResponseFormat(BaseModel):
    """Only plain text answers are written."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text"]


class ChatCompletionIn(Strict):
    """A chat completion request, as OpenAI's API takes it."""

    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # Accepted and ignored: the answer is written from the sources by the server's model.
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    user: str | None = Field(default=None, max_length=256)
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    parallel_tool_calls: bool | None = None
    # Honoured only in their trivial form (validators below say why, for a clear error).
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    # tenantrag's own, as in /api/query.
    top_k: int = Field(default=5, ge=1, le=20)
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    filters: dict[str, MetadataValue] | None = Field(default=None, max_length=16)

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("only one choice is written; leave n unset or 1")
        return value

    @field_validator("logprobs", "top_logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | int | None) -> bool | int | None:
        if value:
            raise ValueError("log-probabilities are not available; leave it unset")
        return value

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value:
            raise ValueError("tools are not supported: the answer comes from your documents")
        return value

    @field_validator("tool_choice", "function_call")
    @classmethod
    def _no_tool_choice(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if value not in (None, "none", "auto"):
            raise ValueError("tools are not supported; leave it unset or 'none'")
        return value


class AssistantMessage(BaseModel):
    """The answer as a chat message."""

    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    """The one choice we write."""

    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class CompletionUsage(BaseModel):
    """Model tokens the answer used (zeros for an answer from the cache)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    """OpenAI's `chat.completion`, plus the answer's sources in `citations` (as /api/query)."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    citations: list[CitationOut]
    system_fingerprint: None = None


class ChunkDelta(BaseModel):
    """What a streamed chunk adds to the message."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    """The one choice of a chunk; `finish_reason` is set on the last."""

    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """OpenAI's `chat.completion.chunk`; the last carries the answer's `citations`."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    citations: list[CitationOut] | None = None
    system_fingerprint: None = None


class ModelCard(BaseModel):
    """A model the tenant may name."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    """The models of /v1/models."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingsIn(Strict):
    """An embeddings request: one text or a list of texts."""

    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = Field(default=None, max_length=256)


class Embedding(BaseModel):
    """One input's vector: floats, or base64 of little-endian float32 bytes."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    """Word pieces the model read."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    """The vectors, in the order of the inputs."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class OpenAIErrorDetail(BaseModel):
    """Our error's `code` and `message`, with OpenAI's `type` and `param`."""

    code: str
    message: str
    type: str
    param: str | None


class OpenAIError(BaseModel):
    """The body of every /v1 error."""

    error: OpenAIErrorDetail
