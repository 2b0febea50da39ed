"""The audit's background chores: sign the chain's head, write the security log's windows.

One thread per process runs them every TENANTRAG_AUDIT__ANCHOR_INTERVAL_S (at most 10 s) and
once more at shutdown, after the last records are written. A chore that fails is logged and
tried again next time; it never stops the others.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import structlog

from tenantrag.backends.store.chain import Head
from tenantrag.observability import metrics
from tenantrag.observability.anchor import Anchor, AnchorSigner, write_anchor_file

log = structlog.get_logger("tenantrag.audit")
Chore = tuple[str, Callable[[], object]]


def node_name(data_dir: Path) -> str:
    """This node's name in anchors: its host and a digest of its data folder.

    Nodes of one database on one host (tests, a laptop) each keep their own anchor.
    """
    folder = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()[:64]}/{folder}"


class AnchorStore(Protocol):
    """What the anchorer reads and writes: the store of record."""

    def audit_head(self) -> Head:
        """The chain's last (seq, hash)."""
        ...

    def keep_anchor(self, node: str, seq: int, digest: str, text: str) -> None:
        """Keep `node`'s newest anchor, durably."""
        ...


class Anchorer:
    """Signs the chain's head into the store and the anchor file.

    The store first: its durable commit flushes every record up to the head to disk (the
    Auditor commits reads without waiting for the disk), so no anchor names a record a power
    cut could still take away. Then the file, atomically.
    """

    def __init__(self, store: AnchorStore, signer: AnchorSigner, path: Path, node: str) -> None:
        self.store = store
        self.signer = signer
        self.path = path
        self.node = node
        self._kept: Head | None = None

    def sign(self) -> Anchor:
        """Sign the current head now; returns the anchor written."""
        head = self.store.audit_head()
        anchor = self.signer.sign(head, self.node)
        if head != self._kept:
            self.store.keep_anchor(self.node, head.seq, head.hash, anchor.text)
            self._kept = head
        if not write_anchor_file(self.path, anchor, self.signer.verifier):
            log.error(
                "audit_anchor_ahead_of_chain",
                path=str(self.path),
                chain_seq=head.seq,
                hint="the anchor file names a later record than the chain holds: records were"
                " lost or the chain replaced; `tenantrag audit verify` says which",
            )
        metrics.AUDIT_ANCHORED.set_to_current_time()
        return anchor


class Periodic:
    """Runs `chores` every `interval_s` on one daemon thread, and `finals` once at `close`."""

    def __init__(self, interval_s: float, chores: Sequence[Chore], finals: Sequence[Chore]) -> None:
        self.interval_s = interval_s
        self.chores = chores
        self.finals = finals
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (the first round runs after one interval)."""
        if self.chores and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-chores", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            run_all(self.chores)

    def close(self) -> None:
        """Stop the thread, then run the final chores once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        run_all(self.finals)


def run_all(chores: Sequence[Chore]) -> None:
    """Run each chore; a failure is logged and the rest still run."""
    for name, chore in chores:
        try:
            chore()
        except Exception as exc:  # tried again next round; never stops the others
            log.error("audit_chore_failed", chore=name, error=type(exc).__name__, message=str(exc))
