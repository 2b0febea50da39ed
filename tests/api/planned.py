"""What docs/api.md names that is not built yet, each with the step that builds it.

The contract tests mark these `xfail(strict=True)`: the reason prints in every run, and the day a
step lands its entry must go, because a strict xfail that passes fails the suite.
"""

from __future__ import annotations

import pytest

STEP_3 = "not built yet: the PostgreSQL store of record, step 3 (issue 13)"
STEP_6 = "not built yet: credentials and tenant administration, step 6 (issue 16)"

ENDPOINTS: dict[str, str] = {
    "POST /api/keys": STEP_6,
    "GET /api/keys": STEP_6,
    "DELETE /api/keys/{id}": STEP_6,
    "POST /api/admin/tenants": STEP_6,
    "DELETE /api/admin/tenants/{id}": STEP_6,
}

COMMANDS: dict[str, str] = {
    "tenantrag token --platform-admin": STEP_6,
}

SETTINGS: dict[str, str] = {
    "TENANTRAG_OIDC__ISSUER": STEP_6,
    "TENANTRAG_OIDC__JWKS_URL": STEP_6,
    "TENANTRAG_OIDC__AUDIENCE": STEP_6,
    "TENANTRAG_OIDC__TENANT_CLAIM": STEP_6,
    "TENANTRAG_OIDC__PERMISSIONS_CLAIM": STEP_6,
    "TENANTRAG_OIDC__USER_CLAIM": STEP_6,
}


def param(value: object, key: str, planned: dict[str, str]) -> object:
    """`value` as a pytest param, marked strict xfail with its step when `key` is planned."""
    marks = [pytest.mark.xfail(strict=True, reason=planned[key])] if key in planned else []
    return pytest.param(value, marks=marks, id=key)
