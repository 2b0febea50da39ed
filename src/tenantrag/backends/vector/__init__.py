"""Vector indexes: the input checks every one makes the same way, and the snapshot file format.

A snapshot is an uncompressed .npz archive: a JSON "meta" record (format version, seq,
dimensions, trained levels, document ids), one serialised index per classification level, and
the document -> rowids map as three flat arrays.
"""

from __future__ import annotations

import fcntl
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

from tenantrag.models import Chunk

SNAPSHOT_VERSION = 1

log = structlog.get_logger(__name__)


def unit_rows(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """A C-contiguous float32 copy of `vectors` (n, dimensions) with every row L2-normalised.

    Cosine similarity is then the inner product. A zero row stays zero (it matches nothing).
    """
    array = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
    if array.shape[0] == 0:
        return np.zeros((0, dimensions), dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != dimensions:
        raise ValueError(f"vectors of shape {array.shape}, expected (n, {dimensions})")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    np.divide(array, norms, out=array, where=norms > 0)
    return np.ascontiguousarray(array)


def check_batch(tenant: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
    """Raise ValueError unless every chunk is the tenant's and there is one vector per chunk."""
    rows = 0 if vectors.size == 0 else vectors.shape[0]
    if rows != len(chunks):
        raise ValueError(f"{len(chunks)} chunks but {rows} vectors")
    for chunk in chunks:
        if chunk.tenant_id != tenant:
            raise ValueError(f"chunk of tenant {chunk.tenant_id!r} given for {tenant!r}")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a vector index needs to come back without a replay: its serialised sub-indexes."""

    seq: int
    dimensions: int
    blobs: dict[int, np.ndarray]  # classification level -> serialised index (uint8)
    trained: dict[int, int]  # approximate level -> vectors it was trained on
    docs: dict[str, tuple[np.ndarray, np.ndarray]]  # document id -> (rowids, levels)


def write_snapshot(path: Path, snapshot: Snapshot) -> bool:
    """Atomically replace the snapshot at `path` unless it already holds this seq or a newer one.

    Writers in other processes are kept out by a flock on `path` + ".lock"; readers never see a
    partial file (temp file, fsync, os.replace). Returns True when written.
    """
    with _snapshot_lock(path):
        current = read_snapshot(path, snapshot.dimensions, meta_only=True)
        if current is not None and current.seq >= snapshot.seq:
            return False
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temp, "wb") as out:
                np.savez(out, **_arrays(snapshot))  # type: ignore[arg-type]  # stub types **kwds as the bool flag
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)  # only left behind when writing failed
        return True


def remove_snapshot(path: Path) -> None:
    """Delete the snapshot at `path`, if any, under the same lock as its writers."""
    with _snapshot_lock(path):
        path.unlink(missing_ok=True)


@contextmanager
def _snapshot_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def read_snapshot(path: Path, dimensions: int, *, meta_only: bool = False) -> Snapshot | None:
    """The snapshot at `path`, or None when absent, unreadable or of other dimensions."""
    try:
        # Opened here, not by np.load: np.load leaves its file open when the zip is corrupt.
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]))
            if meta["version"] != SNAPSHOT_VERSION or meta["dimensions"] != dimensions:
                return None
            trained = {int(k): int(v) for k, v in meta["trained"].items()}
            if meta_only:
                return Snapshot(meta["seq"], dimensions, {}, trained, {})
            blobs = {int(name[6:]): data[name] for name in data.files if name.startswith("level_")}
            ends = np.cumsum(data["doc_sizes"])[:-1]
            rowids = np.split(data["doc_rowids"], ends) if meta["docs"] else []
            levels = np.split(data["doc_levels"], ends) if meta["docs"] else []
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        log.warning("vector_snapshot_unreadable", path=str(path), error=str(exc))
        return None
    docs = dict(zip(meta["docs"], zip(rowids, levels, strict=True), strict=True))
    return Snapshot(int(meta["seq"]), dimensions, blobs, trained, docs)


def _arrays(snapshot: Snapshot) -> dict[str, np.ndarray]:
    meta = {
        "version": SNAPSHOT_VERSION,
        "seq": snapshot.seq,
        "dimensions": snapshot.dimensions,
        "trained": {str(k): v for k, v in snapshot.trained.items()},
        "docs": list(snapshot.docs),
    }
    entries = list(snapshot.docs.values())
    arrays: dict[str, np.ndarray] = {
        "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        "doc_sizes": np.array([len(r) for r, _ in entries], dtype=np.int64),
        "doc_rowids": np.concatenate([r for r, _ in entries] or [np.zeros(0, np.int64)]),
        "doc_levels": np.concatenate([lv for _, lv in entries] or [np.zeros(0, np.int8)]),
    }
    arrays.update({f"level_{level}": blob for level, blob in snapshot.blobs.items()})
    return arrays
