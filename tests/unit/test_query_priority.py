"""QueryPriority: a worker waits while a query is answered, and never longer than its bound."""

from __future__ import annotations

import threading
import time

from tenantrag.backends.priority import QueryPriority


def test_no_query_no_wait() -> None:
    """With nothing being answered the worker goes on at once."""
    assert QueryPriority().yield_to_queries(1.0) < 0.05


def test_the_worker_waits_for_the_query_to_end() -> None:
    """A query held for 0.2 s holds the worker about that long, then releases it."""
    priority = QueryPriority()
    held = threading.Event()

    def query() -> None:
        with priority.query():
            held.set()
            time.sleep(0.2)

    thread = threading.Thread(target=query)
    thread.start()
    held.wait(5)
    waited = priority.yield_to_queries(5.0)
    thread.join()
    assert 0.1 < waited < 2.0 and priority.active == 0


def test_the_wait_is_bounded_under_constant_queries() -> None:
    """Queries that never stop still let ingestion move after the bound."""
    priority = QueryPriority()
    with priority.query():
        waited = priority.yield_to_queries(0.1)
    assert 0.09 < waited < 1.0
