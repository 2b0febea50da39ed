"""CostEvent validation, UTC month arithmetic and the store url."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest

from tenantrag.backends.ledger import CostEvent, CostType, month_of
from tenantrag.backends.store import store_at


class TestCostEvent:
    def test_cost_type_is_parsed_from_its_name(self) -> None:
        """A cost type given as its wire name becomes the CostType member."""
        event = CostEvent("acme", "embedding", 0.5)  # type: ignore[arg-type]  # a wire name
        assert event.cost_type is CostType.EMBEDDING

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"tenant_id": "Acme!"}, "tenant"),
            ({"cost_type": "bandwidth"}, "bandwidth"),
            ({"amount_usd": -0.01}, "amount_usd"),
            ({"amount_usd": math.inf}, "amount_usd"),
            ({"tokens": -1}, "tokens"),
            ({"tokens": 1.5}, "tokens"),
            ({"at": math.nan}, "at"),
            ({"details": {"ratio": math.nan}}, "detail"),
            ({"details": {"nested": {"a": 1}}}, "detail"),
        ],
    )
    def test_refuses_bad_fields(self, changes: dict[str, object], message: str) -> None:
        """An event that could not be stored or summed faithfully is refused when made."""
        fields: dict[str, object] = {"tenant_id": "acme", "cost_type": "compute", "amount_usd": 1.0}
        with pytest.raises(ValueError, match=message):
            CostEvent(**(fields | changes))  # type: ignore[arg-type]  # deliberately wrong types


class TestMonthOf:
    @pytest.mark.parametrize(
        ("instant", "first", "resets"),
        [
            (datetime(2027, 2, 28, 23, 59, 59, tzinfo=UTC), date(2027, 2, 1), (2027, 3)),
            (datetime(2028, 2, 29, 12, tzinfo=UTC), date(2028, 2, 1), (2028, 3)),
            (datetime(2027, 12, 31, 23, 59, tzinfo=UTC), date(2027, 12, 1), (2028, 1)),
            (datetime(2027, 1, 1, tzinfo=UTC), date(2027, 1, 1), (2027, 2)),
        ],
    )
    def test_bounds(self, instant: datetime, first: date, resets: tuple[int, int]) -> None:
        """The month of an instant starts on its UTC 1st and resets at the next month's 1st."""
        assert month_of(instant.timestamp()) == (first, datetime(*resets, 1, tzinfo=UTC))


def test_unknown_store_url_is_refused() -> None:
    """Only sqlite:/// and postgresql:// urls name a store (and so a ledger)."""
    with pytest.raises(ValueError, match="sqlite"):
        store_at("mysql://127.0.0.1/test")
