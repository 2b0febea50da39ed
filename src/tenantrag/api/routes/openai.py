"""/v1: OpenAI's API over the caller's documents, for the SDKs and tools that speak it.

`POST /v1/chat/completions` runs the very QueryService of /api/query (the six stages, the
answer cache, costs, audit, injection screening, redaction); the conversation only decides the
question it is given (pipeline/conversation.py), and the client's other turns are screened
first (pipeline/screen.py). `GET /v1/models` lists what may be named; `POST /v1/embeddings` is
in openai_embeddings.py. The gateway is /api's (auth, tenant, limits, audit); errors carry
OpenAI's `type` and `param` (middleware/openai_errors.py). See docs/api-openai.md.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute

from tenantrag.api.deps import CanQuery, IdsDep, ServicesDep, TenantDep
from tenantrag.api.openai_schemas import (
    MAX_MESSAGE_CHARS,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionIn,
    ChatMessage,
    Choice,
    ChunkChoice,
    ChunkDelta,
    CompletionUsage,
    ModelCard,
    ModelList,
    OpenAIError,
)
from tenantrag.api.schemas import CitationOut
from tenantrag.errors import ModelNotFound, TenantRagError, ValidationFailed
from tenantrag.governance.injection import normalize_query
from tenantrag.middleware.openai_errors import error_type
from tenantrag.models import Tenant
from tenantrag.pipeline.context import QueryContext
from tenantrag.pipeline.conversation import standalone_question
from tenantrag.pipeline.screen import ScreenTurns, Turn
from tenantrag.pipeline.service import AnswerDelta, Answered
from tenantrag.retrieval import SearchParams
from tenantrag.services import Services

log = structlog.get_logger("tenantrag.openai")
CHAT_MODEL = "tenantrag"  # answers from the tenant's documents, with citations
OWNER = "tenantrag"
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIError, "description": what}
    for status, what in {
        400: "A message looks like a prompt injection (`param` names it)",
        401: "Missing or invalid credential",
        403: "Wrong tenant, permission missing, or tenant suspended",
        404: "No such model",
        422: "Invalid body (`param` names the field)",
        429: "Rate limit or quota exceeded (see Retry-After)",
    }.items()
}


class OpenAIRoute(APIRoute):
    """A route whose request-validation errors name the field at fault, as OpenAI's `param`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, with its validation error turned into one that names the field."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise invalid_request(exc) from exc

        return route


def invalid_request(exc: RequestValidationError) -> ValidationFailed:
    """The validation error as ours: every problem in the message, the first one's field named."""
    errors = list(exc.errors())
    parts = [f"{_param(e.get('loc', ())) or 'body'}: {e.get('msg', 'invalid')}" for e in errors[:5]]
    message = "; ".join(parts) or "The request is invalid."
    return ValidationFailed(message, param=_param(errors[0].get("loc", ())) if errors else None)


def _param(loc: Sequence[object]) -> str | None:
    """OpenAI's way of naming a field: ("body", "messages", 0, "content") is messages[0].content."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith(("function-", "list[", "str")):
            out += f".{part}" if out else part
    return out or None


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute, responses=ERRORS)


def model_cards(tenant: Tenant, services: Services) -> list[ModelCard]:
    """What a tenant may name: the answering model, and the embedding model under its own name."""
    created = int(tenant.created_at)
    return [
        ModelCard(id=CHAT_MODEL, created=created, owned_by=OWNER),
        ModelCard(id=services.query_embeddings.model_name, created=created, owned_by=OWNER),
    ]


@router.get("/models", summary="The models you may name (OpenAI's list shape)")
async def list_models(_: CanQuery, tenant: TenantDep, services: ServicesDep) -> ModelList:
    """`tenantrag` answers from your documents; the embedding model serves /v1/embeddings."""
    return ModelList(data=model_cards(tenant, services))


@router.get("/models/{model:path}", summary="One model")
async def get_model(model: str, _: CanQuery, tenant: TenantDep, services: ServicesDep) -> ModelCard:
    """The model's card, or 404 model_not_found."""
    for card in model_cards(tenant, services):
        if card.id == model:
            return card
    raise ModelNotFound(f"The model {model!r} does not exist; GET /v1/models lists them.")


@router.post(
    "/chat/completions",
    summary="Answer the conversation's last question from your documents (OpenAI's chat shape)",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionIn,
    principal: CanQuery,
    tenant: TenantDep,
    services: ServicesDep,
    ids: IdsDep,
) -> ChatCompletion | StreamingResponse:
    """A `chat.completion` whose content cites [n] the `citations`; SSE chunks with `stream`."""
    if body.model != CHAT_MODEL:
        raise ModelNotFound(
            f"The model {body.model!r} does not exist; use {CHAT_MODEL!r} (GET /v1/models)."
        )
    await services.costs.acheck_quota(tenant)  # in memory: never waits on the database
    user_turns, others = conversation(body.messages)
    max_chars = services.settings.max_query_chars
    question = standalone_question(user_turns, max_chars=max_chars)
    params = SearchParams(
        query=question.text, top_k=body.top_k, mode=body.mode, filters=body.filters
    )
    ctx = services.queries.context(tenant, principal, params, ids)
    if question.asked:
        ctx.asked = normalize_query(question.asked, max_chars=max_chars)
    await ScreenTurns(services.query_embeddings, MAX_MESSAGE_CHARS)(ctx, others)
    reply = Reply(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), CHAT_MODEL)
    if not body.stream:
        return reply.completion(await services.queries.answer(ctx))
    events = services.queries.stream(ctx)
    # Errors before the first delta (stages 1-4: 400, 422, 403 ...) raise here, as plain JSON.
    first = await anext(events)
    usage = bool(body.stream_options and body.stream_options.include_usage)
    return StreamingResponse(
        reply.sse(first, events, include_usage=usage),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )


def conversation(messages: Sequence[ChatMessage]) -> tuple[list[str], list[Turn]]:
    """The user turns' texts, oldest first, and the other client text to screen.

    Assistant turns are not read (our own earlier answers, or a forgery of them). System and
    developer turns never reach the model: they are screened, then set aside.
    """
    user_turns: list[str] = []
    others: list[Turn] = []
    for i, message in enumerate(messages):
        if message.role == "assistant":
            continue  # not read, so not checked: clients send back what they received
        where = f"messages[{i}]"
        text = _text(message, where)
        if message.role == "user":
            user_turns.append(text)
        others.append(Turn(where, message.role, text))
    last = len(messages) - 1
    if messages[last].role != "user":
        raise ValidationFailed(
            "The last message must be the user's question (role 'user').", param="messages"
        )
    if not user_turns[-1].strip():
        raise ValidationFailed("The question is empty.", param=f"messages[{last}].content")
    others.pop()  # the question itself is screened by the pipeline's own stage 2
    return user_turns, others


def _text(message: ChatMessage, where: str) -> str:
    """The message's text, or the error saying why it cannot be read."""
    if message.role in ("tool", "function"):
        raise ValidationFailed(
            f"{message.role} messages are not supported: tenantrag calls no tools.",
            param=f"{where}.role",
        )
    if isinstance(message.content, list):
        for j, part in enumerate(message.content):
            if part.type != "text" or part.text is None:
                raise ValidationFailed(
                    f"Only text content parts are read, not {part.type!r}.",
                    param=f"{where}.content[{j}]",
                )
    text = message.text()
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValidationFailed(
            f"The message is {len(text)} characters; the limit is {MAX_MESSAGE_CHARS}.",
            param=f"{where}.content",
        )
    return text


def citations(ctx: QueryContext) -> list[CitationOut]:
    """The answer's sources, as /api/query gives them."""
    return [CitationOut(**asdict(c)) for c in ctx.citations]


def usage(ctx: QueryContext) -> CompletionUsage:
    """Model tokens of the answer (zeros when it came from the cache)."""
    c = ctx.completion
    return CompletionUsage(
        prompt_tokens=c.prompt_tokens if c else 0,
        completion_tokens=c.completion_tokens if c else 0,
        total_tokens=c.total_tokens if c else 0,
    )


@dataclass(frozen=True, slots=True)
class Reply:
    """One completion's id, time and model, shared by its whole body or each of its chunks."""

    id: str
    created: int
    model: str

    def completion(self, ctx: QueryContext) -> ChatCompletion:
        """The whole answer as a `chat.completion`."""
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[Choice(message=AssistantMessage(content=ctx.answer))],
            usage=usage(ctx),
            citations=citations(ctx),
        )

    def chunk(self, choices: list[ChunkChoice], **extra: Any) -> bytes:
        """One `chat.completion.chunk` as a Server-Sent Event."""
        body = ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, **extra
        )
        return f"data: {body.model_dump_json()}\n\n".encode()

    async def sse(
        self,
        first: AnswerDelta | Answered,
        rest: AsyncIterator[AnswerDelta | Answered],
        *,
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        """The role, then each delta, then the finish with the citations, usage, `[DONE]`."""
        yield self.chunk([ChunkChoice(delta=ChunkDelta(role="assistant", content=""))])
        event = first
        try:
            while isinstance(event, AnswerDelta):
                yield self.chunk([ChunkChoice(delta=ChunkDelta(content=event.text))])
                event = await anext(rest)
        except Exception as exc:  # the status is sent: the stream ends with OpenAI's error event
            yield _error_event(exc)
            return
        done = ChunkChoice(delta=ChunkDelta(), finish_reason="stop")
        yield self.chunk([done], citations=citations(event.ctx))
        if include_usage:  # as OpenAI does: a last chunk with no choices, only the usage
            yield self.chunk([], usage=usage(event.ctx))
        yield b"data: [DONE]\n\n"


def _error_event(exc: Exception) -> bytes:
    """An error after the stream began, as the `data: {"error": ...}` event OpenAI's SDKs raise."""
    if not isinstance(exc, TenantRagError):
        log.exception("stream_failed", error_type=type(exc).__name__)
        exc = TenantRagError("Something went wrong on our side; it has been logged.")
    error = {
        "code": exc.code,
        "message": exc.message,
        "type": error_type(exc.status_code, exc.code),
        "param": exc.param,
    }
    return f"data: {json.dumps({'error': error})}\n\n".encode()
