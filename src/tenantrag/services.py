"""The composition root: every backend one process uses, built from settings and opened.

`open_services(settings)` builds and opens everything in the order a request meets it, and is
the only place that knows which implementation stands behind each seam; the app's lifespan
calls it (tests and the CLI call it too) and `Services.close` undoes it. Nothing in `Services`
is optional or filled in later: a `Services` is ready to serve.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import structlog
from opentelemetry import trace

from tenantrag.auth import resolve_secret
from tenantrag.auth.credentials import Authenticator
from tenantrag.auth.oidc import OIDCVerifier
from tenantrag.backends import Embedder
from tenantrag.backends.breaker import CircuitBreaker
from tenantrag.backends.cache import Cache, build_cache
from tenantrag.backends.cache.lru import forget_everywhere
from tenantrag.backends.embedding import build_embedder, build_query_embedder
from tenantrag.backends.embedding.cache import CachingEmbedder
from tenantrag.backends.erasure import remove_index_files, remove_redis_entries
from tenantrag.backends.jwks import fetch_jwks
from tenantrag.backends.ledger import StoragePricing
from tenantrag.backends.llm import LLM, build_llm, close_llm
from tenantrag.backends.priority import QueryPriority
from tenantrag.backends.ratelimit import TenantRateLimiter
from tenantrag.backends.redis_link import RedisLink
from tenantrag.backends.store import ChangeRecords, CorpusReader, Store, build_store
from tenantrag.backends.store.follower import Follower, FollowerStatus
from tenantrag.backends.store.identity import Erasure
from tenantrag.backends.store.jobs import ClaimedItem
from tenantrag.errors import DependencyUnavailable
from tenantrag.governance.pii import PiiType, RedactionCache
from tenantrag.ingest.jobs import JobRecordsFor, JobWorker, WorkerOptions, publish_depth
from tenantrag.ingest.service import Ingestor, IngestResult, Refresh
from tenantrag.ingest.slots import ConversionSlots
from tenantrag.metering import CostRecorder, write_bill
from tenantrag.models import AuditEvent, RequestIds, Tenant
from tenantrag.observability import metrics
from tenantrag.observability.anchor import AnchorSigner
from tenantrag.observability.audit import Auditor, scrub_record
from tenantrag.observability.housekeeping import Anchorer, Chore, Periodic, node_name
from tenantrag.observability.security_log import SecurityLog
from tenantrag.pipeline.account import Account
from tenantrag.pipeline.cache import AnswerCache
from tenantrag.pipeline.embed import DetectInjection, Embed
from tenantrag.pipeline.generate import Generate
from tenantrag.pipeline.govern import Govern
from tenantrag.pipeline.postprocess import PostProcess
from tenantrag.pipeline.retrieve import Retrieve
from tenantrag.pipeline.search import SearchService
from tenantrag.pipeline.service import QueryService
from tenantrag.pipeline.validate import Validate
from tenantrag.retrieval import Retriever
from tenantrag.retrieval.indexes import Indexes, build_indexes
from tenantrag.settings import Settings

log = structlog.get_logger("tenantrag.services")


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request may use, built and opened; `close` releases it."""

    settings: Settings
    secret: str  # the JWT signing secret
    authenticator: Authenticator  # bearer credential -> principal (tokens, OIDC, API keys)
    tracer: trace.Tracer
    store: Store  # the store of record (also the cost ledger and the audit chain)
    reader: CorpusReader  # what search reads: the store itself, or this node's local copy
    follower: Follower | None  # with a database: keeps `reader` a copy of it
    refresh: Refresh  # after a change: this node's copy and indexes up to its seq
    auditor: Auditor
    security_log: SecurityLog  # refusals before a verified credential, apart from the chains
    chores: Periodic  # signs the audit chain's head, writes the security log's windows
    rate_limiter: TenantRateLimiter
    answer_cache: Cache
    query_embeddings: CachingEmbedder  # two tiers: this process's LRU, then Redis if set
    indexes: Indexes
    ingestor: Ingestor
    conversions: ConversionSlots  # uploads converted at once (ingest/slots.py)
    retriever: Retriever
    costs: CostRecorder
    llm: LLM  # the answer model behind its wrappers (retry, breaker, fallback)
    searches: SearchService
    queries: QueryService
    priority: QueryPriority  # held while a query is answered; job workers here yield to it
    jobs: JobWorker  # background ingestion: started by the app when settings.jobs says so

    @property
    def runs_jobs(self) -> bool:
        """Whether `serve` runs a job worker in this process (embedded mode, unless told)."""
        wanted = self.settings.jobs.in_process
        return not self.settings.postgres_store if wanted is None else wanted

    def lookup_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None when unknown (the auth middleware's look-up).

        Read locally (the node's copy follows suspensions through the change log); a tenant the
        copy does not know yet (created a moment ago) is looked up in the database. A tenant
        created since start-up gets its alert series here, at zero, on its first request (see
        `metrics.tenant_appeared`).
        """
        tenant = self.reader.get_tenant(tenant_id)
        if tenant is None and self.follower is not None:
            tenant = self.store.get_tenant(tenant_id)
        if tenant is not None:
            metrics.tenant_appeared(tenant.id, _tenant_breakers(self.settings))
        return tenant

    def degradable(self) -> frozenset[str]:
        """Dependencies the node keeps serving without: /ready says degraded (200), not 503.

        Redis, while the rate limiter falls back to per-process limits (fail open); failing
        closed, every /api request is refused without it, so the node is not ready.
        """
        return frozenset({"redis"}) if self.settings.rate_limit_fail_open else frozenset()

    async def erase_tenant(self, tenant_id: str, records: ChangeRecords) -> dict[str, int]:
        """Erase the tenant everywhere this process can reach; counts of what went, by place.

        The store's transaction removes its rows and logs an erase entry (other nodes delete
        their copies and index files on reading it); this node's index files go now, and the
        cache entries in Redis (shared) or in this process's memory.
        """
        erasure: Erasure = await asyncio.to_thread(self.store.erase_tenant, tenant_id, records)
        counts = dict(erasure.removed)
        counts["index_files"] = await asyncio.to_thread(self._drop_indexes, tenant_id)
        # This process's kept redactions, id scrubbing and passages: keyed by the raw texts.
        forgotten = forget_everywhere(tenant_id)
        try:
            counts["cache_entries"] = forgotten + await self.answer_cache.forget_tenant(tenant_id)
            if self.query_embeddings.shared is not None:
                shared = self.query_embeddings.shared
                counts["cache_entries"] += await shared.forget_tenant(tenant_id)
            if self.settings.redis_url:
                counts["cache_entries"] += await remove_redis_entries(
                    self.settings.redis_url, tenant_id
                )
        except Exception as exc:  # Redis is away: say what is left, and that a retry finishes it
            log.error("tenant_cache_erase_failed", tenant_id=tenant_id, error=type(exc).__name__)
            raise DependencyUnavailable(
                "The tenant's data is erased from the store and this node, but its cache"
                " entries could not be removed (Redis is unreachable); send the DELETE again.",
                retry_after=5,
            ) from exc
        return counts

    def _drop_indexes(self, tenant_id: str) -> int:
        if self.follower is not None:  # this node's copy first, as every other node does
            self.follower.catch_up()
        self.indexes.keyword.drop(tenant_id)
        self.indexes.vector.drop(tenant_id)
        return remove_index_files(self.settings.data_dir / "indexes", tenant_id)

    def replication(self) -> FollowerStatus | None:
        """How current this node's copy of the database is; None in embedded mode."""
        return self.follower.status() if self.follower is not None else None

    async def check_dependencies(self) -> dict[str, bool]:
        """Whether each dependency answers: data folder, store, Redis and OpenSearch if configured.

        With a database, `replica` says whether this node's first copy of it is done.
        """
        checks = {"data_dir": os.access(self.settings.data_dir, os.W_OK)}
        try:
            await asyncio.to_thread(self.store.ping)
            checks["store"] = True
        except Exception:  # readiness reports a failure; it must not raise
            checks["store"] = False
        status = self.replication()
        if status is not None:
            checks["replica"] = status.bootstrapped
        if self.settings.redis_url:
            answered = await self.rate_limiter.ping()
            link = self.rate_limiter.link
            if not answered:
                link.lost("readiness ping")  # no request needs to fail first to fall back
            # still on the fallback until the link's probe switches back: say so
            checks["redis"] = answered and link.up
            metrics.DEPENDENCY_UP.labels(dependency="redis").set(int(answered))
        ping = getattr(self.indexes.keyword, "ping", None)  # OpenSearch's; embedded needs none
        if self.settings.search_backend == "opensearch" and callable(ping):
            checks["opensearch"] = bool(await asyncio.to_thread(ping))
            metrics.DEPENDENCY_UP.labels(dependency="opensearch").set(int(checks["opensearch"]))
        return checks

    async def close(self) -> None:
        """Flush the cost ledger and the audit log, then close connections and the store.

        Records come first: a connection that fails to close (a hung Redis) is logged and
        must not cost an audit record or a cost event.
        """
        await asyncio.to_thread(self.jobs.stop)  # a batch mid-embedding is left to its leases
        if self.follower is not None:
            await asyncio.to_thread(self.follower.stop)
        await asyncio.to_thread(self.costs.flush)
        await asyncio.to_thread(self.auditor.close)
        await asyncio.to_thread(self.chores.close)  # the last anchor signs the last record
        await asyncio.to_thread(self.authenticator.close)
        closers: list[Callable[[], Awaitable[None]]] = [
            self.answer_cache.close,
            self.rate_limiter.close,
            partial(close_llm, self.llm),
        ]
        if self.query_embeddings.shared is not None:
            closers.append(self.query_embeddings.shared.close)
        for close in closers:
            try:
                await close()
            except Exception as exc:  # shutting down: note it and go on closing the rest
                what = getattr(close, "__qualname__", None) or repr(close)
                log.warning("close_failed", what=what, error=type(exc).__name__)
        self.store.close()
        if self.follower is not None:
            self.follower.replica.close()


@dataclass(frozen=True, slots=True)
class Corpus:
    """What ingestion and retrieval share: the model, the indexes with their sync, both ends.

    The server's `Services` hold these too; the CLI, the demo loader and the benchmarks build
    just this (`build_corpus`).
    """

    embedder: Embedder
    indexes: Indexes
    ingestor: Ingestor
    retriever: Retriever
    reader: CorpusReader
    follower: Follower | None
    refresh: Refresh
    # Popular hits' redactions, by tenant: /api/search and stage 4 share them; an erasure
    # (here or, through the follower, on another node) drops the tenant's.
    redactions: RedactionCache


def build_corpus(
    settings: Settings,
    store: Store,
    embedder: Embedder | None = None,
    *,
    threads: int = 1,
    follow: bool = True,
) -> Corpus:
    """The corpus side over an opened `store`.

    `threads` is onnxruntime's per-call thread count: 1 while serving (concurrent queries
    share the cores), all cores for a batch job such as the CLI's ingest. With a database,
    search reads a local copy kept by a `Follower` (not started here); `follow=False` (the
    CLI's ingest) writes to the database only and leaves the copies to the nodes.
    """
    if embedder is None:
        embedder = build_embedder(settings.embedding, model_dir=settings.onnx_dir, threads=threads)
    if settings.postgres_store:
        reader = _local_copy(settings)
    else:
        assert isinstance(store, CorpusReader)  # embedded: the SQLite store is its own reader
        reader = store
    indexes = build_indexes(settings, reader, embedder.dimensions)
    redactions = RedactionCache()
    follower = None
    if settings.postgres_store and follow:
        follower = Follower(
            store,  # type: ignore[arg-type]  # distributed: the store is a PostgresStore
            reader,  # type: ignore[arg-type]  # and the copy a SQLiteStore
            lock_path=settings.data_dir / "locks" / "replica.lock",
            on_applied=partial(_reindex, indexes),
            on_status=_publish_replication,
            on_progress=_publish_rebuild,
            on_erased=partial(_erase_indexes, indexes, settings.data_dir / "indexes"),
            poll_s=settings.replication_poll_s,
        )
    refresh: Refresh = partial(_refresh, indexes, follower)
    if settings.postgres_store and not follow:
        refresh = _nothing
    ingestor = Ingestor(
        store,
        embedder,
        refresh,
        max_tokens=settings.embedding.max_tokens,
        sentences=_sentence_model(settings, embedder),
    )
    retriever = Retriever(
        reader,
        indexes.keyword,
        indexes.vector,
        indexes.sync,
        candidates=settings.retrieval.candidates,
    )
    return Corpus(embedder, indexes, ingestor, retriever, reader, follower, refresh, redactions)


def _local_copy(settings: Settings) -> CorpusReader:
    from tenantrag.backends.store.sqlite import SQLiteStore

    copy = SQLiteStore(settings.db_path)
    copy.open()
    return copy


def _refresh(indexes: Indexes, follower: Follower | None, tenant_id: str, seq: int) -> None:
    """Bring this process's copy (if any) up to `seq`, then the tenant's indexes."""
    if follower is not None:
        follower.catch_up(at_least=seq)
    indexes.sync.ensure_current(tenant_id)


def _nothing(tenant_id: str, seq: int) -> None:
    """No local copy to refresh: the nodes follow the change log."""


def _reindex(indexes: Indexes, tenants: set[str]) -> None:
    """After the copy changed: replay the changes into each tenant's indexes."""
    for tenant in sorted(tenants):
        try:
            indexes.sync.ensure_current(tenant)
        except Exception as exc:  # the next search (or change) replays it
            log.error("index_update_deferred", tenant_id=tenant, error=type(exc).__name__)


def _erase_indexes(indexes: Indexes, index_root: Path, tenants: set[str]) -> None:
    """An erased tenant's indexes and kept texts: out of this process, its files off this node."""
    for tenant in sorted(tenants):
        forget_everywhere(tenant)
        try:
            indexes.keyword.drop(tenant)
            indexes.vector.drop(tenant)
            files = remove_index_files(index_root, tenant)
            log.info("tenant_indexes_erased", tenant_id=tenant, files=files)
        except Exception as exc:  # logged loudly: the next erase entry or restart retries
            log.error("tenant_index_erase_failed", tenant_id=tenant, error=type(exc).__name__)


def _publish_replication(status: FollowerStatus) -> None:
    metrics.REPLICATION_LAG.set(status.lag_s)
    metrics.REPLICA_APPLIED_SEQ.set(status.applied_seq)


def _publish_rebuild(done: int, total: int) -> None:
    metrics.REPLICA_REBUILD_PROGRESS.set(done / total if total else 1.0)


async def open_services(
    settings: Settings, *, embedder: Embedder | None = None, tracer: trace.Tracer | None = None
) -> Services:
    """Build and open every backend `settings` ask for.

    Args:
        settings: the process's settings.
        embedder: an embedding model already loaded (tests share one per session); by
            default the one the settings name, with one onnxruntime thread per call.
        tracer: a tracer of the caller's own provider; by default the global one, set up
            from the settings.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = build_store(settings, audit_scrub=scrub_record)
    await asyncio.to_thread(store.open)
    auditor = Auditor(store)
    security_log, chores = _audit_chores(settings, store)
    costs = CostRecorder(store)
    corpus = await asyncio.to_thread(build_corpus, settings, store, embedder)
    if corpus.follower is not None:
        corpus.follower.start()  # a new node copies the database first; /ready waits for it
    query_model = await asyncio.to_thread(
        build_query_embedder,
        settings.embedding,
        model_dir=settings.onnx_dir,
        documents=corpus.embedder,
    )
    rate_limiter = _rate_limiter(settings)
    link = rate_limiter.link
    query_embeddings = CachingEmbedder(
        query_model,
        ttl_s=settings.cache_ttl_s,
        # no fallback here: the embedder keeps its own in-process tier in front of Redis
        shared=_cache(settings, "embeddings", link) if settings.redis_url else None,
        on_result=_count_cache,
    )
    retriever = corpus.retriever
    answer_cache = _cache(settings, "answers", link, local_fallback=True)
    llm = answer_model(settings, query_embeddings)
    tenants = await asyncio.to_thread(store.list_tenants)
    metrics.start_at_zero(
        tenants=[t.id for t in tenants],
        pii_types=[str(t) for t in PiiType],
        dependencies=["answers", "embeddings"] if settings.redis_url else [],
        tenant_dependencies=_tenant_breakers(settings),
    )
    chores.start()
    priority = QueryPriority()
    secret = resolve_secret(settings, create=False)
    authenticator = Authenticator(secret, store, oidc=_oidc(settings))
    await asyncio.to_thread(authenticator.start)
    redactions = corpus.redactions
    return Services(
        settings=settings,
        secret=secret,
        authenticator=authenticator,
        tracer=tracer or _tracer(settings),
        store=store,
        reader=corpus.reader,
        follower=corpus.follower,
        refresh=corpus.refresh,
        auditor=auditor,
        security_log=security_log,
        chores=chores,
        rate_limiter=rate_limiter,
        answer_cache=answer_cache,
        query_embeddings=query_embeddings,
        indexes=corpus.indexes,
        ingestor=corpus.ingestor,
        conversions=ConversionSlots(
            settings.max_concurrent_conversions, wait_s=settings.conversion_wait_s
        ),
        retriever=retriever,
        costs=costs,
        llm=llm,
        searches=SearchService(
            query_embeddings,
            retriever,
            auditor,
            costs,
            settings.cost,
            max_query_chars=settings.max_query_chars,
            redactions=redactions,
        ),
        queries=_query_service(
            settings,
            corpus.reader,
            auditor,
            costs,
            query_embeddings,
            retriever,
            answer_cache,
            llm,
            redactions,
        ),
        priority=priority,
        jobs=job_worker(settings, store, corpus.ingestor, costs, priority),
    )


def job_worker(
    settings: Settings,
    store: Store,
    ingestor: Ingestor,
    costs: CostRecorder,
    priority: QueryPriority | None,
) -> JobWorker:
    """A background ingestion worker (not started) writing with the records a request would."""
    jobs = settings.jobs
    options = WorkerOptions(
        concurrency=jobs.concurrency,
        batch=jobs.batch,
        lease_s=jobs.lease_s,
        poll_s=jobs.poll_s,
        yield_max_s=jobs.yield_max_s,
        nice=jobs.nice,
        index_every_s=jobs.index_every_s,
    )
    return JobWorker(store, ingestor, job_records(settings, costs), options, priority=priority)


def job_records(settings: Settings, costs: CostRecorder) -> JobRecordsFor:
    """A job write's records: the `ingest` audit record of the job's creator, its bill."""
    pricing = settings.cost
    storage = StoragePricing(usd_per_gb_month=pricing.storage_per_gb_month)

    def make(item: ClaimedItem, results: list[IngestResult], seconds: float) -> ChangeRecords:
        bill = write_bill(pricing, seconds=seconds, tokens=sum(r.tokens for r in results))
        audit = AuditEvent(
            "ingest",
            "success",
            item.tenant_id,
            item.user_id,
            RequestIds(request_id=item.request_id),
            tuple(r.id for r in results),
            {"job_id": item.job_id},
        )
        events = costs.events(item.tenant_id, bill, request_id=item.request_id, model=None)
        return ChangeRecords(audit, events, storage, costs.announce)

    return make


def _oidc(settings: Settings) -> OIDCVerifier | None:
    """The identity provider's token verifier, when TENANTRAG_OIDC__* configure one."""
    oidc = settings.oidc
    if not oidc.enabled or oidc.jwks_url is None:
        return None
    return OIDCVerifier(oidc, partial(fetch_jwks, oidc.jwks_url, timeout_s=oidc.jwks_timeout_s))


def _audit_chores(settings: Settings, store: Store) -> tuple[SecurityLog, Periodic]:
    """The security log, and the thread that flushes it and signs the chain's head.

    Without TENANTRAG_AUDIT__ANCHOR_KEY no anchor is written: say so, since `audit verify`
    can then check the chain's links but not show records cut from its end.
    """
    audit, node = settings.audit, node_name(settings.data_dir)
    security_log = SecurityLog(
        store,
        interval_s=audit.security_interval_s,
        max_clients=audit.security_max_clients,
        retention_days=audit.security_retention_days,
        node=node,
    )
    chores: list[Chore] = [
        ("security_log", security_log.tick),
        ("job_depth", partial(publish_depth, store)),  # the queue's alert reads it
    ]
    finals: list[Chore] = [("security_log", security_log.flush)]
    if audit.anchor_key is None:
        log.warning(
            "audit_anchor_disabled",
            reason="TENANTRAG_AUDIT__ANCHOR_KEY is not set: the audit chain's head is not"
            " signed, so `tenantrag audit verify` cannot show records cut from its end"
            " (docs/audit.md)",
        )
    else:
        signer = AnchorSigner(audit.anchor_key.get_secret_value())
        anchorer = Anchorer(store, signer, settings.anchor_file, node)
        chores.append(("anchor", anchorer.sign))
        finals.append(("anchor", anchorer.sign))
    return security_log, Periodic(audit.anchor_interval_s, chores, finals)


def _sentence_model(settings: Settings, documents: Embedder) -> Embedder | None:
    """The model that embeds chunks' sentences at ingestion, or None when none are stored.

    The questions' model (int8 by default), so a sentence and a question share one space: half
    the fp32 model's ingestion CPU, and sentences embedded by it score as many COVID-QA dev
    answers as the fp32 model's (63.2%, docs/benchmarks/answers.md, second pass).
    Local model only: with a remote one every sentence would be another paid request.
    """
    if not settings.embedding.sentence_vectors or settings.embedding.provider != "onnx":
        return None
    return build_query_embedder(
        settings.embedding, model_dir=settings.onnx_dir, documents=documents
    )


def _query_service(
    settings: Settings,
    store: CorpusReader,
    auditor: Auditor,
    costs: CostRecorder,
    embeddings: CachingEmbedder,
    retriever: Retriever,
    answer_cache: Cache,
    llm: LLM,
    redactions: RedactionCache,
) -> QueryService:
    """The stages of /api/query, in the order they run; the answer cache wraps 3 to 6."""
    # The extractive answerer counts its usage in the embedder's word pieces.
    count = embeddings.count_tokens if settings.llm.provider == "extractive" else None
    return QueryService(
        Validate(settings.max_query_chars),  # 1
        Embed(embeddings),  # 2
        DetectInjection(),  # 2, reads the vector
        AnswerCache.around(
            Retrieve(retriever, auditor),  # 3
            Govern(auditor, redactions),  # 4
            Generate(
                llm,
                settings.llm,
                count,
                tuple(settings.answer_link_hosts),
                sentence_vectors=store.sentence_vectors,
            ),  # 5
            PostProcess(tuple(settings.answer_link_hosts)),  # 6
            cache=answer_cache,
            store=store,
            model=llm.model,
            ttl_s=settings.cache_ttl_s,
        ),
        Account(settings.cost, auditor, costs),
    )


def answer_model(settings: Settings, embeddings: CachingEmbedder) -> LLM:
    """The answer model the settings name, behind retry, breaker and the extractive fallback."""
    breaker = CircuitBreaker(
        what="The language model",
        threshold=settings.llm.breaker_threshold,
        reset_s=settings.llm.breaker_reset_s,
        on_state_change=_publish_breaker,
    )
    return build_llm(
        settings.llm,
        count_tokens=embeddings.count_tokens,
        breaker=breaker,
        embed=embeddings.embed,  # the extractive answerer weighs its best sentences by meaning
        query_vector=embeddings.lookup,  # and reuses the question's vector stage 2 computed
    )


def _tenant_breakers(settings: Settings) -> tuple[str, ...]:
    """The dependencies with a circuit per tenant: the answer model's, when it is remote."""
    return () if settings.llm.provider == "extractive" else (f"openai:{settings.llm.model}",)


def _count_cache(cache: str, result: str) -> None:
    metrics.CACHE.labels(cache=cache, result=result).inc()


def _publish_breaker(tenant: str, dependency: str, state: str) -> None:
    metrics.set_breaker_state(dependency, tenant, state)


def _cache(
    settings: Settings, name: str, link: RedisLink, *, local_fallback: bool = False
) -> Cache:
    return build_cache(
        settings.redis_url,
        name=name,
        on_result=_count_cache,
        on_state_change=_publish_breaker,
        link=link,
        local_fallback=local_fallback,
    )


def _rate_limiter(settings: Settings) -> TenantRateLimiter:
    """The limiter with the process's `RedisLink`, which the Redis caches share."""

    async def ping() -> bool:
        return await limiter.ping()

    link = RedisLink(
        ping, on_change=_redis_link_changed, on_fallback_seconds=metrics.REDIS_FALLBACK_SECONDS.inc
    )
    limiter = TenantRateLimiter(
        settings.redis_url,
        fallback=settings.rate_limit_fail_open,
        expected_processes=settings.expected_replicas,
        link=link,
    )
    if settings.redis_url:
        metrics.REDIS_FALLBACK.set(0)
        metrics.REDIS_FALLBACK_SECONDS.inc(0)
    return limiter


def _redis_link_changed(up: bool) -> None:
    metrics.REDIS_FALLBACK.set(0 if up else 1)
    metrics.DEPENDENCY_UP.labels(dependency="redis").set(int(up))


def _tracer(settings: Settings) -> trace.Tracer:
    """The global provider's tracer, installed from the settings unless one is installed.

    The request span and the stage spans (which use the global provider) must come from one
    provider, or a request's spans are split between two exporters; `setup_tracing` returns a
    fresh provider when a global one exists already (a second `open_services`, or an
    `opentelemetry-instrument` launch), so it is not the provider to take the tracer from.
    """
    from tenantrag.observability.tracing import TRACER_NAME, setup_tracing

    setup_tracing(
        settings.tracing.service_name,
        otlp_endpoint=settings.tracing.otlp_endpoint,
        sample_ratio=settings.tracing.sample_ratio,
        record_content=settings.tracing.record_content,
    )
    return trace.get_tracer_provider().get_tracer(TRACER_NAME)
