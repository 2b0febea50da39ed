"""Runs a SQuAD-format dataset's questions through /api/query's stages, in process.

The dataset's contexts become documents of the tenant (once); every question then goes through
the same stages as POST /api/query, as a user of the tenant with the given clearance, and is
scored by evaluation_answers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from tenantrag.backends.embedding import build_query_embedder
from tenantrag.backends.embedding.cache import CachingEmbedder
from tenantrag.backends.llm import LLM, ContextBlock
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
from tenantrag.models import Classification, Principal, RequestIds, Tenant
from tenantrag.observability.audit import Auditor
from tenantrag.pipeline.embed import DetectInjection, Embed
from tenantrag.pipeline.generate import Generate
from tenantrag.pipeline.govern import Govern
from tenantrag.pipeline.postprocess import PostProcess
from tenantrag.pipeline.retrieve import Retrieve
from tenantrag.pipeline.service import QueryService
from tenantrag.pipeline.validate import Validate
from tenantrag.retrieval import SearchParams
from tenantrag.services import Corpus, answer_model
from tenantrag.settings import Settings

INGEST_BATCH = 8
# Metadata naming the text an article was stored with: a document's `bytes` counts everything
# stored (chunks, metadata, embeddings), so it cannot tell whether the text changed.
TEXT_DIGEST = "text_sha256"


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
    recorder = _recorder(service)
    outcomes: list[Outcome] = []
    pairs = [(a, q) for a in articles for q in a.questions][:limit]
    for article, question in pairs:
        if recorder is not None:
            recorder.replies.clear()
        params = SearchParams(query=question.text, top_k=top_k)
        ctx = service.context(tenant, principal, params, RequestIds())
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            ctx = await service.answer(ctx)
        except TenantRagError as exc:
            outcomes.append(_failed(article, question, exc.code))
            continue
        latency_ms = (time.perf_counter() - started) * 1000
        cpu_ms = (time.process_time() - cpu_started) * 1000
        body = {"answer": ctx.answer, "citations": [asdict(c) for c in ctx.citations]}
        blocks = ctx.prompt.blocks if ctx.prompt is not None else ()
        confidence = recorder.replies[-1].confidence if recorder and recorder.replies else 1.0
        outcomes.append(outcome_of(article, question, body, blocks, confidence, latency_ms, cpu_ms))
    return outcomes


def _recorder(service: QueryService) -> RecordingExtractiveLLM | None:
    """The recording answerer of `service`'s stage 5, if it has one."""
    for stage in service.stages:
        if isinstance(stage, Generate) and isinstance(stage.llm, RecordingExtractiveLLM):
            return stage.llm
    return None


def _failed(article: Article, question: Question, code: str) -> Outcome:
    return Outcome(
        question.id,
        article.document_id,
        article.split,
        "",
        0.0,
        0.0,
        0.0,
        False,
        False,
        0.0,
        0,
        0,
        0,
        error=code,
    )


def question_embeddings(settings: Settings, corpus: Corpus) -> CachingEmbedder:
    """The questions' embedder as `tenantrag serve` builds it (int8 by default), cached.

    The Embed stage and the answerer share it, as in the server: the question is embedded once,
    by the server's model, and matched against the sentence vectors that model stored.
    """
    model = build_query_embedder(
        settings.embedding, model_dir=settings.onnx_dir, documents=corpus.embedder
    )
    return CachingEmbedder(model, ttl_s=settings.cache_ttl_s)


def evaluation_service(
    settings: Settings,
    corpus: Corpus,
    auditor: Auditor,
    answerer: LLM,
    embeddings: CachingEmbedder,
) -> QueryService:
    """/api/query's stages 1 to 6 over `corpus`, answered by `answerer`.

    Questions are embedded by `embeddings` (question_embeddings: the server's), the one the
    answerer reads the question's vector from.
    No answer cache (a question asked twice is answered twice) and no Account stage: the
    questions are neither billed nor recorded as queries. Leakage is still audited.
    """
    count = embeddings.count_tokens if settings.llm.provider == "extractive" else None
    return QueryService(
        Validate(settings.max_query_chars),
        Embed(embeddings),
        DetectInjection(),
        Retrieve(corpus.retriever, auditor),
        Govern(auditor),
        Generate(answerer, settings.llm, count, sentence_vectors=corpus.reader.sentence_vectors),
        PostProcess(),
    )


def text_digest(text: str) -> str:
    """What the article's document carries under TEXT_DIGEST."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


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
        if stored.metadata.get(TEXT_DIGEST) != text_digest(article.text):
            missing.append(article)
    return missing


def ingest_articles(ingestor: Any, tenant: Tenant, articles: Sequence[Article]) -> int:
    """Store and index `articles` as the tenant's documents, a few at a time; how many."""
    from tenantrag.ingest.service import DocumentInput

    for start in range(0, len(articles), INGEST_BATCH):
        batch = articles[start : start + INGEST_BATCH]
        ingestor.ingest(
            tenant,
            [
                DocumentInput(
                    text=a.text,
                    id=a.document_id,
                    title=a.title,
                    source="eval-answers",
                    metadata={TEXT_DIGEST: text_digest(a.text)},
                )
                for a in batch
            ],
        )
    return len(articles)


async def evaluate_answers(
    settings: Settings,
    store: Any,
    corpus: Corpus,
    tenant: Tenant,
    articles: Sequence[Article],
    *,
    clearance: Classification = Classification.INTERNAL,
    top_k: int = 5,
    limit: int | None = None,
) -> AnswerRun:
    """Ingest what is missing, then ask every question through the /api/query stages.

    The answer cache is bypassed, and no query record or bill is written for these questions.
    With the extractive answerer (the default) the run records every confidence, at threshold
    0, and reports the configured threshold; with another model the refusals are the model's.
    """
    missing = missing_articles(store, tenant, [a for a in articles if a.document_id])
    ingest_articles(corpus.ingestor, tenant, missing)
    embeddings = question_embeddings(settings, corpus)
    answerer = answer_model(settings, embeddings)
    threshold = 0.0
    if isinstance(answerer, ExtractiveLLM):
        threshold = answerer.min_confidence
        answerer = RecordingExtractiveLLM(**(answerer.options | {"min_confidence": 0.0}))
    auditor = Auditor(store)  # leakage caught on the way is a real security event
    service = evaluation_service(settings, corpus, auditor, answerer, embeddings)
    try:
        outcomes = await ask_all(
            service, tenant, articles, clearance=clearance, top_k=top_k, limit=limit
        )
    finally:
        auditor.close()
    return AnswerRun(outcomes, threshold, len(missing))
