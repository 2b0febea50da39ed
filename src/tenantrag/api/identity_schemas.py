"""The wire contract of API keys and tenant administration (docs/api.md, "Credentials")."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator

from tenantrag.api.schemas import CLASSIFICATIONS, Strict
from tenantrag.models import TENANT_ID_PATTERN, AutoClassify, Permission

PERMISSIONS = Literal[
    "query",
    "documents:read",
    "documents:write",
    "documents:delete",
    "usage:read",
    "audit:read",
    "keys:admin",
]
assert set(get_args(PERMISSIONS)) == {p.value for p in Permission}  # one vocabulary
MAX_KEY_DAYS = 3650


def _printable_name(value: str) -> str:
    if not value.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("name must be printable text, not blank")
    return value


class KeyIn(Strict):
    """A new API key: what it may do, for how long, how fast."""

    name: str = Field(min_length=1, max_length=100, description="What the key is for")
    permissions: list[PERMISSIONS] = Field(min_length=1, max_length=len(Permission))
    clearance: CLASSIFICATIONS = "internal"
    expires_in_days: int | None = Field(default=None, ge=1, le=MAX_KEY_DAYS)
    rate_limit_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Within the tenant's own limit"
    )

    _name = field_validator("name")(_printable_name)


class KeyOut(Strict):
    """An API key without its secret."""

    id: str
    name: str
    permissions: list[str]
    clearance: str
    expires_at: float | None
    rate_limit_per_minute: int | None
    created_at: float
    created_by: str
    last_used_at: float | None
    revoked_at: float | None


class NewKeyOut(KeyOut):
    """A key just made: `key` is the only time its secret is shown."""

    key: str = Field(description="trk_<id>_<secret>: store it now, it is not shown again")


class KeyList(Strict):
    """The tenant's keys, revoked ones included, without secrets."""

    keys: list[KeyOut]


class TenantLimits(Strict):
    """Limits and quotas a platform operator sets (all optional: omitted ones stay)."""

    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    storage_quota_bytes: int | None = Field(default=None, ge=1)
    document_quota: int | None = Field(default=None, ge=1)
    monthly_token_budget: int | None = Field(default=None, ge=1)
    monthly_cost_budget_usd: float | None = Field(default=None, ge=0)
    auto_classify: AutoClassify | None = None


class TenantIn(TenantLimits):
    """A new tenant."""

    id: str = Field(pattern=f"^{TENANT_ID_PATTERN.pattern}$")


class TenantPatch(TenantLimits):
    """Changes to a tenant: limits, quotas and its status."""

    status: Literal["active", "suspended"] | None = None


class TenantOut(Strict):
    """A tenant as a platform operator sees it."""

    id: str
    status: str
    rate_limit_per_minute: int
    storage_quota_bytes: int
    document_quota: int
    monthly_token_budget: int
    monthly_cost_budget_usd: float
    auto_classify: str
    created_at: float
    tokens_valid_after: float


class TenantList(Strict):
    """Every tenant, erased ones (status `deleted`) included."""

    tenants: list[TenantOut]


class ErasureOut(Strict):
    """What erasing a tenant removed, by place. Cost and audit records are kept."""

    id: str
    status: Literal["erased"]
    removed: dict[str, int]
