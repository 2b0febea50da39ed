"""What docs/api.md names that is not built yet, each with the step that builds it.

The contract tests mark these `xfail(strict=True)`: the reason prints in every run, and the day a
step lands its entry must go, because a strict xfail that passes fails the suite.
"""

from __future__ import annotations

import pytest

ENDPOINTS: dict[str, str] = {}

COMMANDS: dict[str, str] = {}

SETTINGS: dict[str, str] = {}


def param(value: object, key: str, planned: dict[str, str]) -> object:
    """`value` as a pytest param, marked strict xfail with its step when `key` is planned."""
    marks = [pytest.mark.xfail(strict=True, reason=planned[key])] if key in planned else []
    return pytest.param(value, marks=marks, id=key)
