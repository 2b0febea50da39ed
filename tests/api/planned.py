"""What docs/api.md names that is not built yet, each with the step that builds it.

The contract tests mark these `xfail(strict=True)`: the reason prints in every run, and the day a
step lands its entry must go, because a strict xfail that passes fails the suite.
"""

from __future__ import annotations

import pytest

STEP_3 = "not built yet: the PostgreSQL store of record, step 3 (issue 13)"
STEP_4 = "not built yet: background ingestion, step 4 (issue 14)"

ENDPOINTS: dict[str, str] = {
    "GET /api/jobs/{id}": STEP_4,
    "GET /api/jobs": STEP_4,
    "DELETE /api/jobs/{id}": STEP_4,
}

COMMANDS: dict[str, str] = {
    "tenantrag worker [--concurrency N]": STEP_4,
}

SETTINGS: dict[str, str] = {}


def param(value: object, key: str, planned: dict[str, str]) -> object:
    """`value` as a pytest param, marked strict xfail with its step when `key` is planned."""
    marks = [pytest.mark.xfail(strict=True, reason=planned[key])] if key in planned else []
    return pytest.param(value, marks=marks, id=key)
