"""ConversionSlots: at most `limit` conversions at once; a caller finding none free in time gets
503 overloaded with Retry-After, and a slot is returned whatever the conversion did."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tenantrag.errors import Overloaded
from tenantrag.ingest.slots import ConversionSlots


async def test_excess_callers_wait_then_get_503_with_retry_after() -> None:
    slots = ConversionSlots(1, wait_s=0.2)
    release = threading.Event()
    first = asyncio.create_task(slots.run(lambda: release.wait(10)))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(Overloaded) as refused:
        await slots.run(lambda: "never")
    assert 0.15 < time.monotonic() - started < 2
    assert refused.value.status_code == 503 and refused.value.code == "overloaded"
    assert refused.value.headers() == {"Retry-After": "1"}
    release.set()
    assert await first is True
    assert await slots.run(lambda: "after") == "after"


async def test_no_more_than_the_limit_run_at_once() -> None:
    slots = ConversionSlots(2, wait_s=30)
    running, peak = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    await asyncio.gather(*(slots.run(work) for _ in range(8)))
    assert peak == 2


async def test_a_failed_conversion_gives_its_slot_back() -> None:
    slots = ConversionSlots(1, wait_s=0.1)

    def broken() -> None:
        raise ValueError("malformed")

    for _ in range(3):
        with pytest.raises(ValueError, match="malformed"):
            await slots.run(broken)
    assert await slots.run(lambda: 1) == 1
