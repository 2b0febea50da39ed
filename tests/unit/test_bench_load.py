"""The load generator's statistics and its bounds (bench/load.py)."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from bench.load import Budget, Sample, check_local, drive, drive_open, percentile, summarize
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class TestPercentile:
    def test_matches_numpy_linear_interpolation(self) -> None:
        """Percentiles equal numpy's default (linear) method on uneven samples."""
        samples = [12.0, 3.5, 7.25, 100.0, 0.5, 42.0, 8.0]
        for q in (0, 1, 25, 50, 95, 99, 100):
            assert percentile(samples, q) == pytest.approx(np.percentile(samples, q))

    def test_interpolates_between_ranks(self) -> None:
        """P50 of 1..4 lies halfway between the middle two; P95 of 0..100 is 95."""
        assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
        assert percentile([float(i) for i in range(101)], 95) == 95.0

    def test_one_sample_is_every_percentile(self) -> None:
        """With one sample, every percentile is that sample."""
        assert percentile([7.0], 1) == percentile([7.0], 99) == 7.0

    def test_rejects_out_of_range_q(self) -> None:
        """A percentile outside 0..100 is an error, not a silent clamp."""
        with pytest.raises(ValueError, match="0..100"):
            percentile([1.0], 101)


class TestSummarize:
    def test_counts_every_non_200_as_an_error(self) -> None:
        """429s, 500s and failed connections (status 0, exception named) all count as errors."""
        samples = [
            Sample(0, 0.01, 200),
            Sample(0, 0.01, 429),
            Sample(0, 0.01, 0, "ReadTimeout"),
            Sample(0, 0.01, 200),
        ]
        summary = summarize(samples, wall_s=2.0)
        assert (summary.requests, summary.errors, summary.error_rate) == (4, 2, 0.5)
        assert summary.statuses == {"200": 2, "429": 1, "0": 1}
        assert summary.exceptions == {"ReadTimeout": 1}
        assert summary.throughput_rps == 2.0

    def test_reports_milliseconds(self) -> None:
        """Latencies measured in seconds are reported in milliseconds."""
        summary = summarize([Sample(0, 0.004, 200), Sample(0, 0.006, 200)], wall_s=1.0)
        assert summary.p50_ms == 5.0
        assert summary.max_ms == 6.0


class TestBudget:
    def test_hands_out_exactly_max_requests(self) -> None:
        """The budget gives indexes 0..n-1 and then nothing, however often it is asked."""
        budget = Budget(3, 60.0)
        now = budget.started
        assert [budget.take(now) for _ in range(5)] == [0, 1, 2, None, None]

    def test_stops_at_the_deadline(self) -> None:
        """No slot is handed out once max_seconds have passed, even with requests left."""
        budget = Budget(100, 5.0)
        assert budget.take(budget.started + 4.9) == 0
        assert budget.take(budget.started + 5.0) is None

    def test_rejects_an_unbounded_budget(self) -> None:
        """Zero requests or zero seconds is refused: every run must be bounded."""
        with pytest.raises(ValueError):
            Budget(0, 1.0)
        with pytest.raises(ValueError):
            Budget(1, 0.0)


def test_refuses_targets_other_than_this_machine() -> None:
    """The generator only loads 127.0.0.1 (or localhost)."""
    check_local("http://127.0.0.1:8000")
    check_local("http://localhost:8000")
    with pytest.raises(ValueError, match="127.0.0.1"):
        check_local("http://example.com")


def counting_app(delay_s: float = 0.0) -> tuple[Starlette, list[dict[str, object]]]:
    """An ASGI app that records every JSON body it receives."""
    seen: list[dict[str, object]] = []

    async def endpoint(request: Request) -> JSONResponse:
        seen.append(await request.json())
        await asyncio.sleep(delay_s)
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/api/search", endpoint, methods=["POST"])]), seen


async def test_drive_sends_exactly_the_request_budget() -> None:
    """Eight clients send exactly max_requests requests, cycling through the bodies in order."""
    app, seen = counting_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        bodies: list[dict[str, object]] = [{"query": "a"}, {"query": "b"}, {"query": "c"}]
        samples, _ = await drive(
            client, "/api/search", bodies, concurrency=8, max_requests=25, max_seconds=60.0
        )
    assert len(samples) == len(seen) == 25
    assert all(s.status == 200 for s in samples)
    assert sorted(str(b["query"]) for b in seen) == sorted("abc" * 8 + "a")


async def test_drive_stops_at_the_time_bound() -> None:
    """With 50 ms per answer and a 0.2 s bound, two clients send at most ten requests."""
    app, seen = counting_app(delay_s=0.05)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        samples, _ = await drive(
            client,
            "/api/search",
            [{"query": "q"}],
            concurrency=2,
            max_requests=10_000,
            max_seconds=0.2,
        )
    assert 1 <= len(samples) == len(seen) <= 10


async def test_open_loop_sends_the_budget_at_the_rate_and_counts_queueing() -> None:
    """Open loop: exactly max_requests arrive; with one connection and answers slower than the
    arrivals, later requests wait, and that wait is part of their latency (from arrival)."""
    app, seen = counting_app(delay_s=0.02)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        samples, wall = await drive_open(
            client,
            "/api/search",
            [{"query": "q"}],
            rate=500.0,
            concurrency=1,
            max_requests=20,
            max_seconds=30.0,
        )
    assert len(samples) == len(seen) == 20
    assert all(s.status == 200 for s in samples)
    # 20 answers of >= 20 ms on one connection take >= 0.4 s, while they all arrived within
    # about 40 ms: the last ones queued for most of that, and their latency says so.
    assert wall >= 0.4
    assert max(s.seconds for s in samples) >= 0.3
    arrivals = sorted(s.started for s in samples)
    assert arrivals[-1] < 0.3
    # the wait for the one connection is the send lag, and it is inside each latency
    assert max(s.send_lag for s in samples) >= 0.25
    assert all(0 <= s.send_lag <= s.seconds for s in samples)
    assert summarize(samples, wall).send_lag_p95_ms >= 200


async def test_open_loop_stops_at_the_time_bound() -> None:
    """At 20 arrivals per second and a 0.3 s bound, far fewer than the budget are sent."""
    app, seen = counting_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        samples, _ = await drive_open(
            client,
            "/api/search",
            [{"query": "q"}],
            rate=20.0,
            concurrency=4,
            max_requests=10_000,
            max_seconds=0.3,
        )
    assert 1 <= len(samples) == len(seen) <= 30


async def test_open_loop_gives_up_on_answers_that_never_come() -> None:
    """With a server slower than the drain bound, the run still ends: the requests left in
    flight are cancelled and counted as errors, with their time since arrival."""
    app, _ = counting_app(delay_s=5.0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        samples, wall = await drive_open(
            client,
            "/api/search",
            [{"query": "q"}],
            rate=200.0,
            concurrency=2,
            max_requests=6,
            max_seconds=10.0,
            drain_s=0.2,
        )
    assert len(samples) == 6
    assert wall < 5.0  # did not wait for the 5 s answers
    assert {s.status for s in samples} == {0}
    assert {s.error for s in samples} == {"Unfinished"}
    assert all(s.seconds >= 0.2 for s in samples)
    assert summarize(samples, wall).error_rate == 1.0
