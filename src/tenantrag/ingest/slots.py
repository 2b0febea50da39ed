"""A cap on concurrent file conversions per process: excess uploads wait briefly, then get 503.

Converting a hostile but valid file takes memory proportional to what the per-file limits allow
(convert.py): with the caps there, one DOCX or PDF needs at most a few hundred MB. Three at once
took 3.7 GB before them; the slots keep the sum bounded as well, whatever arrives together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from tenantrag.errors import Overloaded

T = TypeVar("T")


class ConversionSlots:
    """At most `limit` conversions at once; a caller waits up to `wait_s` for a slot."""

    def __init__(self, limit: int, *, wait_s: float) -> None:
        self.limit, self.wait_s = limit, wait_s
        self._free = asyncio.Semaphore(limit)

    async def run(self, convert: Callable[[], T]) -> T:
        """`convert()` on the thread pool once a slot is free; Overloaded if none frees in time."""
        try:
            async with asyncio.timeout(self.wait_s):
                await self._free.acquire()
        except TimeoutError:
            raise Overloaded(
                f"{self.limit} file conversions are already running; retry shortly.",
                retry_after=max(1.0, self.wait_s),
            ) from None
        try:
            return await run_in_threadpool(convert)
        finally:
            self._free.release()
