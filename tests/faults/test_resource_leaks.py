"""What the soak found creeping: thread pools retire threads, and their SQLite files must close."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

from tenantrag.backends.ledger import CostEvent, CostType
from tenantrag.backends.store.sqlite import SQLiteStore


def open_files_under(folder: Path) -> int:
    """This process's file descriptors open on files in `folder`."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed while we looked
        count += target.startswith(str(folder))
    return count


def in_short_lived_threads(work: object, threads: int = 60) -> None:
    """Run `work()` once in each of `threads` threads, one after another, as a pool recycling."""
    assert callable(work)
    for _ in range(threads):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()


def test_ledger_closes_the_connections_of_finished_threads(tmp_path: Path) -> None:
    """60 threads that each wrote one cost event and ended leave at most a few files open."""
    ledger = SQLiteStore(tmp_path / "tenantrag.db")  # the ledger lives in the store
    in_short_lived_threads(ledger.open, threads=1)  # migrated from a thread that then ends
    event = CostEvent(
        tenant_id="acme", cost_type=CostType.RETRIEVAL, amount_usd=0.001, at=time.time()
    )
    in_short_lived_threads(lambda: ledger.record([event]))
    ledger.record([event])  # a new connection in this thread reaps the finished threads' ones
    assert open_files_under(tmp_path) <= 4  # this thread's database and WAL (and slack)
    ledger.close()
    assert open_files_under(tmp_path) == 0


def test_store_keeps_no_connection_of_a_finished_thread(tmp_path: Path) -> None:
    """After 120 threads used the store, closing this thread's connection frees every file.

    While one connection of the process holds a lock on the file, SQLite parks the descriptors
    of closed ones for reuse instead of closing them; so only once the last one is closed does
    the count show that the store itself kept none of the finished threads' connections.
    """
    store = SQLiteStore(tmp_path / "tenantrag.db")
    store.open()
    in_short_lived_threads(store.ping, threads=120)
    store.close()
    gc.collect()  # sqlite3 connections sit in reference cycles with their statement caches
    assert open_files_under(tmp_path) == 0
