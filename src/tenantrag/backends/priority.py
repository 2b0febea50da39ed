"""Queries first: background ingestion in this process steps aside while a query is answered.

On a shared node the worker's embedding and a search's compete for the same cores; a search
must not wait behind a 100,000-document job. The serving path holds `QueryPriority.query()`
while it answers a search or a query; the worker calls `yield_to_queries` before each text it
embeds, and waits (bounded, so ingestion still moves under constant load) while any is held.
It is per process: a standalone `tenantrag worker` lowers its own CPU priority instead
(docs/jobs.md, "Queries first").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class QueryPriority:
    """A count of queries being answered, which workers wait on."""

    def __init__(self) -> None:
        self._active = 0
        self._idle = threading.Condition()

    @property
    def active(self) -> int:
        """Queries being answered now."""
        return self._active

    @contextmanager
    def query(self) -> Iterator[None]:
        """Hold while answering a query: workers in this process wait for it."""
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                if self._active == 0:
                    self._idle.notify_all()

    def yield_to_queries(self, max_wait_s: float) -> float:
        """Wait until no query is being answered, at most `max_wait_s`; the seconds waited."""
        started = time.monotonic()
        with self._idle:
            if self._active:
                self._idle.wait_for(lambda: self._active == 0, timeout=max_wait_s)
        return time.monotonic() - started
