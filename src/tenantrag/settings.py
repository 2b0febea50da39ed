"""One typed settings tree, read from TENANTRAG_* variables (nested groups use `__`)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_BYTES = 32
MIN_METRICS_TOKEN_BYTES = 16
PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "your-secret-here"}


class EmbeddingSettings(BaseModel):
    """Which model turns text into vectors (TENANTRAG_EMBEDDING__*)."""

    provider: Literal["onnx", "openai"] = "onnx"
    model: str = "all-MiniLM-L6-v2"
    max_tokens: int = 256
    # Texts per model call. For the onnx model, 1: a batched run's vector differs in its last
    # bits with its batch-mates, so a score could show what else was ingested in the same
    # request (restricted documents included). One text per call keeps a chunk's vector a
    # function of its text alone; on chunk-sized texts it is no slower (docs/retrieval.md).
    batch_size: int = 1
    base_url: str = "http://127.0.0.1:8080/v1"
    api_key: SecretStr = SecretStr("")
    dimensions: int = 384
    timeout_s: float = 10.0
    # The model that embeds questions (onnx only): int8, the documents' model quantised, at
    # ~45% of the CPU per question and SciFact nDCG@10 within 0.004 (docs/retrieval.md); or
    # fp32, the documents' own. The default falls back to fp32, with a warning, where no int8
    # model exists and none can be made (a lean install with an older export).
    query_precision: Literal["fp32", "int8"] = "int8"
    # Embed every sentence of a chunk at ingestion (with the questions' model) and store the
    # vectors beside it (migration 0007), so the extractive answerer compares a question with
    # its passages' sentences without embedding any while the question waits. Local model
    # (onnx) only: with a remote one it would multiply the embedding calls a document costs.
    sentence_vectors: bool = True


class LLMSettings(BaseModel):
    """Which model writes answers (TENANTRAG_LLM__*)."""

    provider: Literal["extractive", "openai"] = "extractive"
    model: str = "extractive"
    base_url: str = "http://127.0.0.1:8080/v1"
    api_key: SecretStr = SecretStr("")
    timeout_s: float = 30.0
    max_attempts: int = 3
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    breaker_threshold: int = 5
    breaker_reset_s: float = 60.0
    context_window: int = 8192
    max_completion_tokens: int = 512


class RetrievalSettings(BaseModel):
    """Hybrid retrieval defaults; tenants may override weights (TENANTRAG_RETRIEVAL__*)."""

    candidates: int = 100
    bm25_weight: float = 0.5
    vector_weight: float = 0.5
    fusion: Literal["zscore", "minmax", "rrf"] = "zscore"
    max_open_tenants: int = 256
    approximate_threshold: int = 200_000


class CostSettings(BaseModel):
    """The seed's cost model, in US dollars (TENANTRAG_COST__*)."""

    llm_per_1k_tokens: dict[str, float] = Field(default_factory=lambda: {"default": 0.03})
    embedding_per_1k_tokens: float = 0.0001
    retrieval_per_query: float = 0.001
    compute_per_second: float = 0.00005
    storage_per_gb_month: float = 0.10


class TracingSettings(BaseModel):
    """OpenTelemetry export (TENANTRAG_TRACING__*)."""

    otlp_endpoint: str | None = None
    sample_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    service_name: str = "tenantrag"
    record_content: bool = False  # query text and answers never go into span attributes


class AuditSettings(BaseModel):
    """The audit chain's signed anchor and the security log (TENANTRAG_AUDIT__*); docs/audit.md.

    `anchor_key` is an Ed25519 private key (base64 of its 32-byte seed, `tenantrag audit
    keygen` makes one). It comes from the environment or a secret store, never from a file
    beside the chain: whoever can rewrite the chain must not also be able to sign a new head.
    Verifiers need only `anchor_public_key` (or derive it from `anchor_key`).
    """

    anchor_key: SecretStr | None = None
    anchor_public_key: str | None = None
    anchor_path: Path | None = None  # default: <data folder>/audit.anchor
    anchor_interval_s: float = Field(default=10.0, gt=0, le=10)  # the contract: at least every 10 s
    # Authentication failures before a verified credential: one security-log row per client
    # address per interval, with a count, and at most `security_max_clients` rows an interval
    # (the rest go to one overflow row), so a flood cannot fill the disk.
    security_interval_s: float = Field(default=60.0, ge=1, le=3600)
    security_max_clients: int = Field(default=100, ge=1, le=100_000)
    security_retention_days: int = Field(default=90, ge=1, le=3650)


class JobSettings(BaseModel):
    """Background ingestion's workers (TENANTRAG_JOBS__*); docs/jobs.md.

    `in_process`: whether `serve` runs a worker in each serving process. Unset, it does in
    embedded mode (so `make run` needs nothing else) and does not with a database, where
    `tenantrag worker` runs them (it may still be set true there).
    """

    in_process: bool | None = None
    concurrency: int = Field(default=1, ge=1, le=64)  # worker threads per process
    batch: int = Field(default=8, ge=1, le=256)  # documents claimed (and stored) at a time
    # How long a claimed item is a worker's without renewal: a worker killed with SIGKILL
    # holds its items this long before another takes them. Renewed while a long one embeds.
    lease_s: float = Field(default=60.0, ge=1.0, le=3600.0)
    poll_s: float = Field(default=0.5, gt=0, le=60)  # idle: how often to look for work
    # Queries first: before each text it embeds, a worker waits (up to this long) while this
    # process answers a search or query; docs/jobs.md, "Queries first".
    yield_max_s: float = Field(default=0.25, ge=0, le=10)
    # Each worker thread's CPU priority below the serving threads' (Linux nice steps; 0: same).
    nice: int = Field(default=10, ge=0, le=19)
    # While a tenant's job runs its indexes are refreshed at most this often (and when the
    # worker is idle); a search of that tenant replays anything newer first.
    index_every_s: float = Field(default=5.0, ge=0, le=3600)


class ServerSettings(BaseModel):
    """What one serving process lets a connection or a client cost (TENANTRAG_SERVER__*).

    docs/security.md, "Floods", says why each limit is what it is.
    """

    # Connections open at once per process (the seed's 50 per pod); past it a request gets 503
    # with Retry-After and the connection is closed. In-flight requests count against it too.
    max_connections: int = Field(default=50, ge=1, le=100_000)
    # From a connection's first byte (or its opening) to the end of a request's headers: a
    # client that trickles its headers (slowloris) is cut off after this long.
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # An idle keep-alive connection is closed after this many seconds (uvicorn's own timer).
    keep_alive_timeout_s: int = Field(default=5, ge=1, le=300)
    # A request line and headers larger than this are refused (431) and the connection closed.
    max_header_bytes: int = Field(default=65_536, ge=1024, le=1_048_576)
    # Requests refused before a verified credential (401, 403, a bad X-Tenant-ID) per client
    # address: a token bucket of `refusal_burst` refilled at `refusals_per_minute`; an address
    # that empties it gets 429 with Retry-After before any token is checked.
    refusal_burst: int = Field(default=20, ge=1, le=100_000)
    refusals_per_minute: float = Field(default=30.0, gt=0, le=1_000_000)


class OIDCSettings(BaseModel):
    """An identity provider whose RS256/ES256 tokens are accepted (TENANTRAG_OIDC__*).

    Off unless `issuer` and `jwks_url` are both set; then `audience` is required too (a token
    minted by the same provider for another application must not pass). docs/identity.md.
    """

    issuer: str | None = None
    jwks_url: str | None = None
    audience: str | None = None
    tenant_claim: str = "tenant_id"
    permissions_claim: str = "permissions"
    user_claim: str = "sub"
    clearance_claim: str = "clearance"
    leeway_s: int = Field(default=30, ge=0, le=300)  # clock skew allowed on exp, nbf and iat
    jwks_ttl_s: float = Field(default=300.0, gt=0, le=86_400)  # keys are refetched this often
    # An unknown `kid` refetches the JWKS (the provider rotated its keys), at most this often,
    # so a flood of tokens with made-up kids cannot make us hammer the provider.
    jwks_refetch_min_s: float = Field(default=10.0, ge=0, le=3600)
    jwks_timeout_s: float = Field(default=3.0, gt=0, le=30)

    @property
    def enabled(self) -> bool:
        """True when OIDC tokens are accepted."""
        return bool(self.issuer and self.jwks_url)

    @model_validator(mode="after")
    def _complete(self) -> OIDCSettings:
        if bool(self.issuer) != bool(self.jwks_url):
            raise ValueError(
                "set both TENANTRAG_OIDC__ISSUER and TENANTRAG_OIDC__JWKS_URL, or neither"
            )
        if self.enabled and not self.audience:
            raise ValueError("OIDC needs TENANTRAG_OIDC__AUDIENCE (the audience our tokens carry)")
        return self


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="TENANTRAG_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    data_dir: Path = Path("./data")
    jwt_secret: SecretStr | None = None
    redis_url: str | None = None
    # The store of record (docs/deployment.md, "The store"): PostgreSQL in distributed mode;
    # unset, a SQLite file under the data folder (embedded mode). It holds the cost ledger and
    # the audit chain too, so a change commits with its records.
    database_url: str | None = None
    opensearch_url: str | None = None
    opensearch_ca_certs: Path | None = None  # CA bundle for the security plugin's certificates
    # The name OpenSearch's certificate carries when it is not the URL's host: the security
    # plugin's demo certificate names only node-0.example.com and localhost (docs/opensearch.md).
    opensearch_tls_server_name: str | None = None
    opensearch_index_prefix: str = "tenantrag"
    search_backend: Literal["embedded", "opensearch"] = "embedded"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_body_bytes: int = 10 * 1024 * 1024
    cors_origins: list[str] = Field(default_factory=list)
    # Hosts (and their subdomains) whose images and data-carrying links an answer may keep, e.g.
    # the tenant's own intranet; every other image is removed and every link with a query
    # string or fragment defused (governance/exfiltration.py, docs/governance.md).
    answer_link_hosts: list[str] = Field(default_factory=list)
    hsts: bool = False
    rate_limit_per_minute: int = 100
    # Redis away (docs/security.md, "Rate limits"): true, each process enforces its share of the
    # limit, limit // expected_replicas, in its own windows until Redis returns; false, 503.
    rate_limit_fail_open: bool = True
    # How many serving processes share the traffic (pods x workers per pod): the divisor of the
    # per-process limit while Redis is away. Set it to the usual replica count, not the HPA max.
    expected_replicas: int = Field(default=1, ge=1, le=10_000)
    cache_ttl_s: int = 3600
    # With a database: how often a node polls the change log when no notification woke it, and
    # the lag past which /ready reports it behind (it keeps serving).
    replication_poll_s: float = Field(default=1.0, gt=0, le=60)
    # With several workers, uvicorn's supervisor kills a worker that does not answer its ping
    # within this many seconds. Its default of 5 s killed busy workers (and cut their in-flight
    # requests) on a saturated 2-core machine; a hung worker is still replaced, only later. Kept
    # short because the supervisor also handles SIGTERM only between its rounds of pings
    # (docs/deployment.md, graceful drain).
    worker_healthcheck_timeout_s: int = Field(default=10, ge=1, le=600)
    max_query_chars: int = 2000
    # Uploads converted at once per process (each bounded by ingest/convert.py's limits); an
    # upload finding none free waits this long, then gets 503 with Retry-After.
    max_concurrent_conversions: int = Field(default=2, ge=1, le=64)
    conversion_wait_s: float = Field(default=10.0, ge=0.0, le=300.0)
    metrics_token: SecretStr | None = None
    # In distributed mode /metrics needs metrics_token; this opts out, for a network where only
    # the scraper can reach the port (docs/security.md, "Metrics").
    metrics_public: bool = False
    model_dir: Path | None = None
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)

    server: ServerSettings = Field(default_factory=ServerSettings)

    oidc: OIDCSettings = Field(default_factory=OIDCSettings)

    @field_validator("jwt_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if raw.lower() in PLACEHOLDER_SECRETS or len(raw.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"TENANTRAG_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes"
                " and not a placeholder"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("TENANTRAG_DATABASE_URL must be a postgresql:// URL")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _strong_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if raw.lower() in PLACEHOLDER_SECRETS or len(raw.encode()) < MIN_METRICS_TOKEN_BYTES:
            raise ValueError(
                f"TENANTRAG_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_BYTES} bytes"
                " and not a placeholder"
            )
        return value

    @model_validator(mode="after")
    def _opensearch_needs_url(self) -> Settings:
        if self.search_backend == "opensearch" and not self.opensearch_url:
            raise ValueError("TENANTRAG_SEARCH_BACKEND=opensearch needs TENANTRAG_OPENSEARCH_URL")
        return self

    @property
    def distributed(self) -> bool:
        """True when nodes share state: through Redis, or PostgreSQL as the store of record.

        Such a deployment is reachable by more than one host, so it is never left open by
        default: /metrics then needs its token.
        """
        return self.redis_url is not None or self.postgres_store

    def metrics_token_missing(self) -> str | None:
        """Why /metrics cannot be served as configured (distributed, no token, no opt-out)."""
        if self.metrics_token is not None or self.metrics_public or not self.distributed:
            return None
        cause = "TENANTRAG_REDIS_URL" if self.redis_url is not None else "TENANTRAG_DATABASE_URL"
        return (
            f"{cause} makes this a distributed deployment, where /metrics needs"
            " TENANTRAG_METRICS_TOKEN (at least 16 bytes; give Prometheus the same value as its"
            " bearer token), e.g. from"
            " python3 -c 'import secrets; print(secrets.token_urlsafe(32))'."
            " Set TENANTRAG_METRICS_PUBLIC=true instead only if nothing but your scraper can"
            " reach the port."
        )

    @property
    def secret_file(self) -> Path:
        """Where `serve` keeps a generated signing secret when none is configured."""
        return self.data_dir / "jwt_secret"

    @property
    def db_path(self) -> Path:
        """The SQLite file under the data folder.

        The store of record in embedded mode; with a database, this node's local read model.
        """
        return self.data_dir / "tenantrag.db"

    @property
    def postgres_store(self) -> bool:
        """True when PostgreSQL is the store of record and the data folder only a cache."""
        return self.database_url is not None

    @property
    def store_url(self) -> str:
        """The store of record: TENANTRAG_DATABASE_URL, else the SQLite file's URL."""
        return self.database_url or f"sqlite:///{self.db_path.resolve()}"

    @property
    def anchor_file(self) -> Path:
        """Where the signed head of the audit chain is written (TENANTRAG_AUDIT__ANCHOR_PATH)."""
        return self.audit.anchor_path or self.data_dir / "audit.anchor"

    @property
    def onnx_dir(self) -> Path:
        """Where the ONNX export of the embedding model is kept (TENANTRAG_MODEL_DIR)."""
        return self.model_dir or self.data_dir / "models"


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
