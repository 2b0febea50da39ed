"""Whether this process uses Redis right now, and the probe that brings it back after an outage.

The rate limiter and the Redis caches of one process share one `RedisLink`. The first failed
call marks Redis lost: from then on every caller skips Redis at once and uses its per-process
fallback (the limiter's in-memory windows, the in-process answer cache), so an outage costs
one failed call, not a 0.25 s timeout per request. A background task pings Redis with a growing
delay (0.5 s doubling to 5 s: one PING per process that often costs nothing); the first answer
marks it back and callers return to Redis.

The link reports through callbacks (backends sit below observability): `on_change(up)` when
it flips and `on_fallback_seconds(s)` for the time spent in fallback, added while the outage
lasts (each probe round) so a scrape during a long outage already sees it grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

Ping = Callable[[], Awaitable[bool]]


class RedisLink:
    """Up or lost, shared by every user of Redis in this process."""

    def __init__(
        self,
        ping: Ping,
        *,
        first_delay_s: float = 0.5,
        max_delay_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
        on_fallback_seconds: Callable[[float], None] | None = None,
    ) -> None:
        if not 0 < first_delay_s <= max_delay_s:
            raise ValueError("need 0 < first_delay_s <= max_delay_s")
        self._ping = ping
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self._clock = clock
        self._on_change = on_change
        self._on_fallback_seconds = on_fallback_seconds
        self.up = True
        self.outages = 0  # how many times Redis was lost since start
        self._lost_at: float | None = None
        self._accounted_at = 0.0  # fallback time is reported up to here
        self._probe: asyncio.Task[None] | None = None

    @property
    def down_for_s(self) -> float:
        """Seconds since Redis was lost; 0 while it is up."""
        return 0.0 if self._lost_at is None else self._clock() - self._lost_at

    def lost(self, reason: str) -> None:
        """A call to Redis failed: fall back now and probe in the background until it answers."""
        if not self.up:
            return
        self.up = False
        self.outages += 1
        self._lost_at = self._accounted_at = self._clock()
        log.warning("redis_fallback_started", reason=reason)
        if self._on_change is not None:
            self._on_change(False)
        try:
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_back())
        except RuntimeError:  # no loop (a synchronous caller): the next async `lost` probes
            self.up = True
            self.outages -= 1
            self._lost_at = None

    async def _probe_until_back(self) -> None:
        delay = self.first_delay_s
        while True:
            await asyncio.sleep(delay)
            self._account()
            try:
                answered = await self._ping()
            except Exception:  # a probe must never end the loop: the outage just goes on
                answered = False
            if answered:
                self._restored()
                return
            delay = min(delay * 2, self.max_delay_s)

    def _account(self) -> None:
        now = self._clock()
        if self._on_fallback_seconds is not None and now > self._accounted_at:
            self._on_fallback_seconds(now - self._accounted_at)
        self._accounted_at = now

    def _restored(self) -> None:
        self._account()
        log.info("redis_fallback_ended", seconds=round(self.down_for_s, 3))
        self.up = True
        self._lost_at = None
        self._probe = None
        if self._on_change is not None:
            self._on_change(True)

    async def close(self) -> None:
        """Stop the probe (shutting down)."""
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
