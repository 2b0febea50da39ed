"""Runs a SQuAD-format dataset's questions through /api/query's stages, in process.

The dataset's contexts become documents of the tenant (once); every question then goes through
the same stages as POST /api/query, as a user of the tenant with the given clearance, and is
scored by evaluation_answers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import Any

from tenantrag.backends.llm import ContextBlock
from tenantrag.backends.llm.extractive import ExtractiveLLM, Reply
from tenantrag.backends.llm.prompt import is_no_answer
from tenantrag.errors import TenantRagError
from tenantrag.evaluation_answers import (
    AnswerRun,
    Article,
    Outcome,
    Question,
    answer_words,
    contains_gold,
    holds_gold,
    token_f1,
)
from tenantrag.models import Classification, Principal, Tenant
from tenantrag.pipeline.retrieve import SearchParams
from tenantrag.pipeline.service import QueryService

INGEST_BATCH = 8


class RecordingExtractiveLLM(ExtractiveLLM):
    """The extractive answerer that also keeps each reply, for the benchmark's confidences."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.replies: list[Reply] = []

    def reply(self, question: str, blocks: Sequence[ContextBlock], *, tenant: str = "") -> Reply:
        """The answerer's reply, remembered."""
        made = super().reply(question, blocks, tenant=tenant)
        self.replies.append(made)
        return made


def outcome_of(
    article: Article,
    question: Question,
    body: dict[str, Any],
    blocks: Sequence[ContextBlock],
    confidence: float,
    latency_ms: float,
    cpu_ms: float,
) -> Outcome:
    """Score one answered question against its gold spans and the passages it was given."""
    golds = question.answers
    answer = str(body["answer"])
    refused = is_no_answer(answer)
    by_chunk = {b.chunk_id: b.text for b in blocks}
    cited_ids = [str(c["chunk_id"]) for c in body.get("citations", [])]
    return Outcome(
        question_id=question.id,
        document_id=article.document_id,
        split=article.split,
        answer=answer,
        confidence=confidence,
        latency_ms=latency_ms,
        cpu_ms=cpu_ms,
        gold_in_passages=any(holds_gold(b.text, golds) for b in blocks),
        contains_gold=not refused and contains_gold(answer, golds),
        f1=0.0 if refused else token_f1(answer, golds),
        words=len(answer_words(answer)),
        cited=len(cited_ids),
        cited_with_gold=sum(holds_gold(by_chunk.get(c, ""), golds) for c in cited_ids),
    )


async def ask_all(
    service: QueryService,
    tenant: Tenant,
    articles: Sequence[Article],
    *,
    clearance: Classification = Classification.INTERNAL,
    top_k: int = 5,
    limit: int | None = None,
) -> list[Outcome]:
    """Ask every question of `articles` through `service`, in order, one at a time."""
    principal = Principal(tenant.id, "eval-answers", frozenset({"query"}), clearance)
    llm = service.generate.llm
    recorder = llm if isinstance(llm, RecordingExtractiveLLM) else None
    outcomes: list[Outcome] = []
    pairs = [(a, q) for a in articles for q in a.questions][:limit]
    for article, question in pairs:
        if recorder is not None:
            recorder.replies.clear()
        params = SearchParams(query=question.text, top_k=top_k)
        ctx = service.context(tenant, principal, params, None, None)
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            body = await service.answer(ctx)
        except TenantRagError as exc:
            outcomes.append(_failed(article, question, exc.code))
            continue
        latency_ms = (time.perf_counter() - started) * 1000
        cpu_ms = (time.process_time() - cpu_started) * 1000
        blocks = ctx.prompt.blocks if ctx.prompt is not None else ()
        confidence = recorder.replies[-1].confidence if recorder and recorder.replies else 1.0
        outcomes.append(outcome_of(article, question, body, blocks, confidence, latency_ms, cpu_ms))
    return outcomes


def _failed(article: Article, question: Question, code: str) -> Outcome:
    return Outcome(
        question.id, article.document_id, article.split, "", 0.0, 0.0, 0.0, False, False, 0.0,
        0, 0, 0, error=code,
    )  # fmt: skip


def recording_service(service: QueryService, answerer: RecordingExtractiveLLM) -> QueryService:
    """`service` with its model replaced by `answerer` (everything else as configured)."""
    generate = dataclasses.replace(service.generate, llm=answerer)
    return dataclasses.replace(service, generate=generate)


def missing_articles(store: Any, tenant: Tenant, articles: Iterable[Article]) -> list[Article]:
    """The articles the tenant does not hold yet (or holds with another text)."""
    from tenantrag.errors import NotFound

    missing = []
    for article in articles:
        try:
            stored = store.get_document(tenant.id, article.document_id)
        except NotFound:
            missing.append(article)
            continue
        if stored.bytes != len(article.text.encode("utf-8", "surrogatepass")):
            missing.append(article)
    return missing


def ingest_articles(ingestor: Any, tenant: Tenant, articles: Sequence[Article]) -> int:
    """Store and index `articles` as the tenant's documents, a few at a time; how many."""
    from tenantrag.ingest.service import DocumentInput

    for start in range(0, len(articles), INGEST_BATCH):
        batch = articles[start : start + INGEST_BATCH]
        ingestor.ingest(
            tenant,
            [DocumentInput(text=a.text, id=a.document_id, title=a.title, source="eval-answers")
             for a in batch],
        )  # fmt: skip
    return len(articles)


async def evaluate_answers(
    settings: Any,
    store: Any,
    rag: Any,
    tenant: Tenant,
    articles: Sequence[Article],
    *,
    clearance: Classification = Classification.INTERNAL,
    top_k: int = 5,
    limit: int | None = None,
) -> AnswerRun:
    """Ingest what is missing, then ask every question through the /api/query stages.

    The answer cache is bypassed (a question asked twice is answered twice), and no audit
    record or bill is written for these questions. With the extractive answerer (the default)
    the run records every confidence; with another model the refusals are the model's own.
    """
    from tenantrag.answering import build_query_service

    missing = missing_articles(store, tenant, [a for a in articles if a.document_id])
    ingest_articles(rag.ingestor, tenant, missing)
    service = build_query_service(
        settings, store, rag, _NoCache(), lambda ctx: None,
        lambda ctx, chunk: None, _NoBill(),
    )  # fmt: skip
    threshold = 0.0
    if isinstance(service.generate.llm, ExtractiveLLM):
        configured = service.generate.llm
        threshold = configured.min_confidence
        recorder = RecordingExtractiveLLM(**(configured.options | {"min_confidence": 0.0}))
        service = recording_service(service, recorder)
    outcomes = await ask_all(
        service, tenant, articles, clearance=clearance, top_k=top_k, limit=limit
    )
    return AnswerRun(outcomes, threshold, len(missing))


class _NoCache:
    """An answer cache that keeps nothing: every question goes through every stage."""

    name = "eval-answers"
    hits = misses = errors = 0

    async def get(self, tenant: str, key: str) -> bytes | None:
        """Nothing is ever cached."""
        return None

    async def set(self, tenant: str, key: str, value: bytes, *, ttl_s: int) -> None:
        """Keep nothing."""

    async def ping(self) -> bool:
        """Always up."""
        return True

    async def close(self) -> None:
        """Nothing to release."""


class _NoBill:
    """Benchmark questions are not billed to the tenant."""

    def record(
        self, tenant_id: str, items: list[Any], *, request_id: str | None, model: str | None
    ) -> None:
        """Drop the bill."""
