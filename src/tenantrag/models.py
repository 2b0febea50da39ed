"""Domain types every layer shares: tenants, principals, documents, chunks and search hits."""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

TENANT_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
# A user id is written into audit records and the store of record: bounded, and text that
# PostgreSQL and JSON both hold (no control characters such as NUL, no lone surrogates).
MAX_USER_ID_CHARS = 256

MetadataValue = str | int | float | bool
Metadata = Mapping[str, MetadataValue]


# A document id is addressable as the rest of the URL path (/api/documents/{id}): ASCII letters,
# digits and `._:@-` in segments joined by `/`. The first character is a letter or digit, and no
# segment is empty or only dots, because clients and proxies rewrite `//`, `/./` and `/../`
# before the server sees them, which would make such an id unreachable (docs/retrieval.md).
DOCUMENT_ID_MAX_CHARS = 128
_SEGMENT = r"[A-Za-z0-9._:@-]*[A-Za-z0-9_:@-][A-Za-z0-9._:@-]*"
DOCUMENT_ID_REGEX = rf"^[A-Za-z0-9][A-Za-z0-9._:@-]*(?:/{_SEGMENT})*$"
DOCUMENT_ID_PATTERN = re.compile(DOCUMENT_ID_REGEX)


def is_valid_tenant_id(value: str) -> bool:
    """True when `value` is a well-formed tenant id (the whole string, no trailing newline)."""
    return TENANT_ID_PATTERN.fullmatch(value) is not None


def is_valid_user_id(value: object) -> bool:
    """True for 1 to MAX_USER_ID_CHARS characters, none a control, format or surrogate one."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_USER_ID_CHARS:
        return False
    return not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value)


def is_valid_document_id(value: str) -> bool:
    """True when `value` is a document id every route can address (see DOCUMENT_ID_REGEX)."""
    return len(value) <= DOCUMENT_ID_MAX_CHARS and DOCUMENT_ID_PATTERN.fullmatch(value) is not None


class Classification(enum.IntEnum):
    """Data classifications, lowest to highest; a user reads up to their clearance."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    RESTRICTED = 3

    @property
    def label(self) -> str:
        """The wire name: `public`, `internal`, `confidential` or `restricted`."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Classification:
        """The classification named `value`; ValueError for anything else."""
        try:
            return cls[value.upper()]
        except KeyError:
            names = ", ".join(c.label for c in cls)
            raise ValueError(f"unknown classification {value!r}; use one of {names}") from None


class Permission(enum.StrEnum):
    """What a token may do; every route declares the one it needs."""

    QUERY = "query"
    DOCUMENTS_READ = "documents:read"
    DOCUMENTS_WRITE = "documents:write"
    DOCUMENTS_DELETE = "documents:delete"
    USAGE_READ = "usage:read"
    AUDIT_READ = "audit:read"
    KEYS_ADMIN = "keys:admin"


# A platform operator's credential belongs to this pseudo-tenant, which no tenant id can name
# (tenant ids start with a letter or digit), and carries this one permission: it manages tenants
# on /api/admin/* and nothing else. It is not a `Permission` because no tenant's credential, and
# no role, may ever hold it.
PLATFORM_TENANT = "_platform"
PLATFORM_ADMIN = "platform:admin"


ROLES: dict[str, frozenset[Permission]] = {
    "viewer": frozenset({Permission.QUERY, Permission.DOCUMENTS_READ}),
    "editor": frozenset(
        {
            Permission.QUERY,
            Permission.DOCUMENTS_READ,
            Permission.DOCUMENTS_WRITE,
            Permission.DOCUMENTS_DELETE,
        }
    ),
    "admin": frozenset(Permission),
}


class AutoClassify(enum.StrEnum):
    """A tenant's policy for documents in which ingestion finds personal data (README).

    - `off`: the label is the uploader's (default `internal`); personal data is still redacted
      from search results, answers and logs when read.
    - `raise`: such a document is raised to at least `confidential`, so default users do not
      see it at all.
    - `raise-and-redact`: raised as with `raise`, and the values themselves are replaced by
      placeholders before anything is stored, indexed or embedded.
    """

    OFF = "off"
    RAISE = "raise"
    RAISE_AND_REDACT = "raise-and-redact"


class TenantStatus(enum.StrEnum):
    """A tenant is served only while active; an erased tenant's row stays as a tombstone.

    The tombstone keeps the id from being given to a new customer, who would otherwise read
    the erased tenant's kept audit and cost records as its own.
    """

    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Tenant:
    """A customer and its limits, as recorded at creation."""

    id: str
    status: TenantStatus = TenantStatus.ACTIVE
    rate_limit: int = 100
    storage_quota_bytes: int = 1_073_741_824
    document_quota: int = 100_000
    monthly_token_budget: int = 10_000_000
    monthly_cost_budget_usd: float = 1_000.0
    bm25_weight: float = 0.5
    vector_weight: float = 0.5
    fusion: str = "zscore"
    injection_policy: str = "block"
    redact_search_pii: bool = True
    created_at: float = 0.0
    # Deny by default: a document holding personal data is hidden from default users until the
    # tenant chooses otherwise (README, "Auto-classification").
    auto_classify: AutoClassify = AutoClassify.RAISE
    # Credentials issued before this instant (epoch seconds) are refused: set at creation, so a
    # token minted for the id before the tenant existed never becomes valid, and at each
    # suspension, so reactivating does not revive the tokens and keys of before (docs/identity.md).
    tokens_valid_after: float = 0.0

    @property
    def active(self) -> bool:
        """True when the tenant may be served."""
        return self.status is TenantStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the verified claims of a token."""

    tenant_id: str
    user_id: str
    permissions: frozenset[str]
    clearance: Classification = Classification.INTERNAL
    issued_at: float = 0.0  # the token's iat, or the API key's creation time
    token_id: str | None = None  # the token's jti: what `tenantrag token revoke` names
    key_id: str | None = None  # set when the credential is an API key
    rate_limit: int | None = None  # an API key's own requests per minute, within the tenant's

    def can(self, permission: Permission) -> bool:
        """True when the token carries `permission`."""
        return permission.value in self.permissions

    @property
    def platform(self) -> bool:
        """True for a platform operator's credential (tenant `_platform`, `platform:admin`)."""
        return self.tenant_id == PLATFORM_TENANT and PLATFORM_ADMIN in self.permissions


@dataclass(frozen=True, slots=True)
class Chunk:
    """A searchable piece of a document, tagged with everything isolation and citations need."""

    tenant_id: str
    document_id: str
    position: int
    text: str
    title: str = ""
    classification: Classification = Classification.INTERNAL
    source: str = ""
    metadata: Metadata = field(default_factory=dict)
    rowid: int = 0  # the store's integer id; the vector index's id

    @property
    def chunk_id(self) -> str:
        """A stable id, unique within the tenant: the document id and the position."""
        return f"{self.document_id}#{self.position}"


@dataclass(frozen=True, slots=True)
class IndexHit:
    """One result of one index: the chunk's store id and the index's own score."""

    rowid: int
    score: float


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk with its fused score and the score from each retriever."""

    chunk: Chunk
    score: float
    bm25: float | None = None
    vector: float | None = None
    bm25_rank: int | None = None
    vector_rank: int | None = None


@dataclass(frozen=True, slots=True)
class RequestIds:
    """The ids that tie one request's audit records, logs and spans together.

    Passed explicitly to whatever records something for the request: log context (structlog's
    contextvars) is for log lines only, never a source of data.
    """

    request_id: str | None = None
    trace_id: str | None = None


DetailValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One security-relevant event, as the audit log (or, later, a store transaction) takes it.

    `detail` holds small scalars only; the audit log never holds free text.
    """

    action: str
    outcome: str
    tenant_id: str | None
    user_id: str | None
    ids: RequestIds = RequestIds()
    resource_ids: tuple[str, ...] = ()
    detail: Mapping[str, DetailValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CostItem:
    """One line of a request's bill (metering.py prices it; the cost recorder stores it)."""

    cost_type: str
    amount_usd: float
    details: Mapping[str, str | int | float]
