"""The cost ledger part of the store contract: every Store is a CostLedger, on SQLite and the
real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from tenantrag.backends.ledger import GIB, CostEvent, CostLedger, CostType, StoragePricing
from tenantrag.backends.store import store_at

ACME, GLOBEX = "acme", "globex"
PRICING = StoragePricing(usd_per_gb_month=0.10, granularity_s=3600)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: float = 0) -> float:
    """Unix time of a UTC wall-clock instant."""
    whole = datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()
    return whole + second


def event(
    tenant: str,
    cost_type: CostType,
    amount: float,
    when: float,
    *,
    tokens: int = 0,
    model: str | None = None,
) -> CostEvent:
    return CostEvent(tenant, cost_type, amount, {"why": "test"}, model, tokens, when, "req-1")


# A child process: open the ledger, wait for "go", then write batches and accrue storage.
WRITER = textwrap.dedent(
    """
    import sys
    from tenantrag.backends.ledger import CostEvent, StoragePricing
    from tenantrag.backends.store import store_at
    url, worker = sys.argv[1], int(sys.argv[2])
    ledger = store_at(url, pricing=StoragePricing(0.10, 3600))
    ledger.open()
    ledger.month_to_date("acme", now=1.8e9)  # connect and make the schema before "go"
    print("ready", flush=True)
    sys.stdin.readline()
    for batch in range(40):
        tenant = "acme" if batch % 2 else "globex"
        events = [
            CostEvent(tenant, "llm_inference", 0.25, {"w": worker}, "m", 10 + i, 1.8e9 + batch)
            for i in range(5)
        ]
        ledger.record(events)
        ledger.storage_accrual("acme", 1 << 30, now=1.8e9 + 3600 * (batch // 4))
    ledger.close()
    """
)


class LedgerContract:
    """Behaviour every CostLedger must have. Subclass it and provide a `url` fixture."""

    @pytest.fixture
    def ledger(self, url: str) -> Iterator[CostLedger]:
        ledger = store_at(url, pricing=PRICING)
        ledger.open()
        yield ledger
        ledger.close()

    def test_is_a_cost_ledger(self, ledger: CostLedger) -> None:
        """The implementation satisfies the CostLedger protocol."""
        assert isinstance(ledger, CostLedger)

    def test_totals_by_type_model_and_day(self, ledger: CostLedger) -> None:
        """Totals add up money, tokens and events per cost type, per model and per UTC day."""
        ledger.record(
            [
                event(
                    ACME, CostType.LLM_INFERENCE, 0.03, at(2027, 3, 1, 9), tokens=1000, model="a"
                ),
                event(
                    ACME, CostType.LLM_INFERENCE, 0.06, at(2027, 3, 2, 9), tokens=2000, model="b"
                ),
                event(ACME, CostType.EMBEDDING, 0.001, at(2027, 3, 2, 10), tokens=50, model="a"),
                event(ACME, CostType.RETRIEVAL, 0.002, at(2027, 3, 2, 23, 59, 59.5)),
            ]
        )
        report = ledger.totals(ACME, start=date(2027, 3, 1), end=date(2027, 3, 2))
        assert report.total.events == 4
        assert report.total.tokens == 3050
        assert report.total.amount_usd == pytest.approx(0.093)
        assert report.by_type["llm_inference"].amount_usd == pytest.approx(0.09)
        assert report.by_type["llm_inference"].tokens == 3000
        assert report.by_type["retrieval"].events == 1
        assert set(report.by_type) == {"llm_inference", "embedding", "retrieval"}
        assert report.by_model["a"].tokens == 1050
        assert report.by_model["b"].amount_usd == pytest.approx(0.06)
        assert set(report.by_model) == {"a", "b"}  # the retrieval event has no model
        assert list(report.by_day) == [date(2027, 3, 1), date(2027, 3, 2)]
        assert report.by_day[date(2027, 3, 2)].events == 3
        assert json.loads(json.dumps(report.as_dict()))["by_day"]["2027-03-01"]["tokens"] == 1000

    def test_range_includes_both_end_days_only(self, ledger: CostLedger) -> None:
        """`start` and `end` are whole UTC days, both included; a millisecond outside is not."""
        ledger.record(
            [
                event(ACME, CostType.COMPUTE, 1.0, at(2027, 3, 9, 23, 59, 59.999)),
                event(ACME, CostType.COMPUTE, 2.0, at(2027, 3, 10)),
                event(ACME, CostType.COMPUTE, 4.0, at(2027, 3, 11, 23, 59, 59.999)),
                event(ACME, CostType.COMPUTE, 8.0, at(2027, 3, 12)),
            ]
        )
        report = ledger.totals(ACME, start=date(2027, 3, 10), end=date(2027, 3, 11))
        assert report.total.amount_usd == pytest.approx(6.0)
        with pytest.raises(ValueError, match="before"):
            ledger.totals(ACME, start=date(2027, 3, 11), end=date(2027, 3, 10))

    def test_empty_range_reports_zero(self, ledger: CostLedger) -> None:
        """A tenant with nothing recorded gets zero totals and empty groups."""
        report = ledger.totals(ACME, start=date(2027, 1, 1), end=date(2027, 12, 31))
        assert (report.total.amount_usd, report.total.tokens, report.total.events) == (0.0, 0, 0)
        assert report.by_type == report.by_model == report.by_day == {}

    def test_month_to_date_respects_utc_month_boundaries(self, ledger: CostLedger) -> None:
        """The last millisecond of January counts for January; midnight of 1 February does not."""
        ledger.record(
            [
                event(ACME, CostType.LLM_INFERENCE, 1.0, at(2027, 1, 31, 23, 59, 59.999), tokens=1),
                event(ACME, CostType.LLM_INFERENCE, 2.0, at(2027, 2, 1), tokens=10),
                event(ACME, CostType.EMBEDDING, 4.0, at(2027, 2, 28, 23, 59, 59), tokens=100),
                event(ACME, CostType.EMBEDDING, 8.0, at(2027, 3, 1), tokens=1000),
            ]
        )
        feb = ledger.month_to_date(ACME, now=datetime(2027, 2, 15, tzinfo=UTC))
        assert feb.tokens == 110
        assert feb.cost_usd == pytest.approx(6.0)
        assert feb.month_start == date(2027, 2, 1)
        assert feb.resets_at == datetime(2027, 3, 1, tzinfo=UTC)
        jan = ledger.month_to_date(ACME, now=at(2027, 1, 3))
        assert jan.tokens == 1
        assert jan.cost_usd == pytest.approx(1.0)
        # 1 Feb 03:00 in UTC+5 is still 31 January in UTC.
        east = datetime(2027, 2, 1, 3, tzinfo=timezone(timedelta(hours=5)))
        assert ledger.month_to_date(ACME, now=east).month_start == date(2027, 1, 1)

    def test_month_to_date_rolls_over_the_year(self, ledger: CostLedger) -> None:
        """December's month resets at midnight UTC on 1 January of the next year."""
        usage = ledger.month_to_date(ACME, now=at(2027, 12, 31, 23))
        assert usage.month_start == date(2027, 12, 1)
        assert usage.resets_at == datetime(2028, 1, 1, tzinfo=UTC)

    def test_naive_now_is_refused(self, ledger: CostLedger) -> None:
        """A datetime without a zone is refused rather than guessed."""
        with pytest.raises(ValueError, match="timezone"):
            ledger.month_to_date(ACME, now=datetime(2027, 2, 1))

    def test_tenants_are_isolated(self, ledger: CostLedger) -> None:
        """Tenant A's events and storage never count for tenant B."""
        ledger.record([event(ACME, CostType.LLM_INFERENCE, 5.0, at(2027, 5, 2), tokens=500)])
        ledger.storage_accrual(ACME, GIB, now=at(2027, 5, 1))
        ledger.storage_accrual(ACME, GIB, now=at(2027, 5, 3))
        report = ledger.totals(GLOBEX, start=date(2027, 5, 1), end=date(2027, 5, 31))
        assert report.total.events == 0
        assert ledger.month_to_date(GLOBEX, now=at(2027, 5, 9)).tokens == 0
        assert ledger.storage_accrual(GLOBEX, GIB, now=at(2027, 5, 9)) is None  # its first report
        assert ledger.totals(ACME, start=date(2027, 5, 1), end=date(2027, 5, 31)).total.events == 2

    def test_batch_is_one_transaction(self, ledger: CostLedger) -> None:
        """A batch with one event that cannot be stored stores none of them."""
        good = event(ACME, CostType.COMPUTE, 1.0, at(2027, 6, 1))
        bad = event(ACME, CostType.COMPUTE, 1.0, at(2027, 6, 1))
        object.__setattr__(bad, "details", {"x": object()})  # slip past CostEvent's validation
        with pytest.raises(TypeError):
            ledger.record([good, good, bad])
        assert ledger.totals(ACME, start=date(2027, 6, 1), end=date(2027, 6, 1)).total.events == 0

    def test_storage_first_report_starts_the_clock(self, ledger: CostLedger) -> None:
        """The first size report owes nothing; the next charges the span since at that size."""
        assert ledger.storage_accrual(ACME, GIB, now=at(2027, 4, 1)) is None
        charged = ledger.storage_accrual(ACME, 2 * GIB, now=at(2027, 5, 1))
        assert charged is not None
        assert charged.cost_type is CostType.STORAGE
        assert charged.amount_usd == pytest.approx(0.10)  # 1 GB for all of April
        assert charged.details["gb_months"] == pytest.approx(1.0)
        assert ledger.month_to_date(ACME, now=at(2027, 4, 20)).cost_usd == pytest.approx(0.10)

    def test_storage_accrual_is_idempotent(self, ledger: CostLedger) -> None:
        """Reporting again at the same or an earlier time charges nothing more."""
        ledger.storage_accrual(ACME, GIB, now=at(2027, 4, 1))
        assert ledger.storage_accrual(ACME, GIB, now=at(2027, 4, 16)) is not None
        assert ledger.storage_accrual(ACME, GIB, now=at(2027, 4, 16)) is None
        assert ledger.storage_accrual(ACME, GIB, now=at(2027, 4, 10)) is None
        assert ledger.month_to_date(ACME, now=at(2027, 4, 20)).cost_usd == pytest.approx(0.05)

    def test_frequent_and_rare_reports_charge_the_same(self, ledger: CostLedger) -> None:
        """Reporting every 10 minutes or once at the end charges the same for a steady size."""
        start = at(2027, 4, 1)
        ledger.storage_accrual(ACME, 3 * GIB, now=start)
        ledger.storage_accrual(GLOBEX, 3 * GIB, now=start)
        for step in range(1, 3 * 24 * 6 + 1):
            ledger.storage_accrual(ACME, 3 * GIB, now=start + 600 * step)
        ledger.storage_accrual(GLOBEX, 3 * GIB, now=start + 3 * 86400)
        frequent = ledger.month_to_date(ACME, now=start)
        rare = ledger.month_to_date(GLOBEX, now=start)
        assert frequent.cost_usd == pytest.approx(rare.cost_usd, rel=1e-9)
        assert frequent.cost_usd == pytest.approx(3 * 3 / 30 * 0.10)
        # A steady size is charged at most once an hour, not once a report.
        assert ledger.totals(ACME, start=date(2027, 4, 1), end=date(2027, 4, 30)).total.events == 72

    def test_size_changes_are_charged_from_the_change(self, ledger: CostLedger) -> None:
        """Each span is charged at the size reported at its start, even within the hour."""
        ledger.storage_accrual(ACME, GIB, now=at(2027, 4, 1))
        ledger.storage_accrual(ACME, 3 * GIB, now=at(2027, 4, 11))  # grew on day 10
        ledger.storage_accrual(ACME, 0, now=at(2027, 4, 11, 0, 30))  # all deleted 30 min later
        ledger.storage_accrual(ACME, 0, now=at(2027, 4, 30))  # nothing held, nothing owed
        expected = (10 / 30 + 3 * 0.5 / 24 / 30) * 0.10
        assert ledger.month_to_date(ACME, now=at(2027, 4, 30)).cost_usd == pytest.approx(expected)

    def test_storage_span_is_split_at_the_month_boundary(self, ledger: CostLedger) -> None:
        """A span across midnight of the 1st charges each month its share, in its own length."""
        ledger.storage_accrual(ACME, GIB, now=at(2027, 1, 31, 12))
        latest = ledger.storage_accrual(ACME, GIB, now=at(2027, 2, 1, 12))
        assert latest is not None
        assert latest.amount_usd == pytest.approx(0.5 / 28 * 0.10)  # February 2027 has 28 days
        jan = ledger.month_to_date(ACME, now=at(2027, 1, 15))
        assert jan.cost_usd == pytest.approx(0.5 / 31 * 0.10)

    @pytest.mark.integration
    def test_concurrent_processes_lose_nothing(self, url: str, ledger: CostLedger) -> None:
        """Four processes writing and accruing at once: every event is kept and storage is
        charged once."""
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, url, str(n)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(4)
        ]
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:  # release them together so their writes overlap
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.close()
        assert [worker.wait(timeout=60) for worker in workers] == [0, 0, 0, 0]
        for worker in workers:
            assert worker.stdout is not None
            worker.stdout.close()
        day = date(2027, 1, 15)  # 1.8e9 s is 15 January 2027
        llm = [
            ledger.totals(tenant, start=day, end=day).by_type["llm_inference"]
            for tenant in (ACME, GLOBEX)
        ]
        assert [t.events for t in llm] == [4 * 20 * 5, 4 * 20 * 5]
        assert [t.tokens for t in llm] == [4 * 20 * 60, 4 * 20 * 60]
        assert llm[0].amount_usd == pytest.approx(4 * 20 * 5 * 0.25)
        storage = ledger.totals(ACME, start=day, end=day).by_type["storage"]
        assert storage.events == 9  # hours 1..9 each charged once, however many workers
        assert storage.amount_usd == pytest.approx(9 / 24 / 31 * 0.10)


class TestSQLiteLedger(LedgerContract):
    """SQLiteStore keeps the CostLedger contract."""

    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url


@pytest.mark.postgres
class TestPostgresLedger(LedgerContract):
    """PostgresStore keeps the CostLedger contract against the local PostgreSQL."""

    @pytest.fixture
    def url(self, postgres_url: str) -> str:
        return postgres_url
