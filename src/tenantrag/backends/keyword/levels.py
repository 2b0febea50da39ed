"""Where a tenant's per-level Tantivy indexes live on disk, and the file holding its applied seq.

root/<tenant>/bm25-levels/
    0/ 1/ 2/ 3/     one Tantivy index per classification level that has been *materialized*:
                    index L holds every chunk classified at or below L (cumulative), so a search
                    at clearance C reads exactly one index, the highest materialized L <= C, whose
                    BM25 statistics are those of what the caller may read and nothing else.
    applied_seq     the newest store seq all the level indexes reflect (written last)
root/<tenant>/bm25/   the single index of older versions (every level together), deleted by the
                    first write of the rebuild that replaces it (see tantivy.py).

A level is materialized when the tenant's first chunk of exactly that level arrives: its folder
is a copy of the highest materialized level below it (or a new index), made complete in a
`.L.new` folder and renamed into place, so a reader sees either the old fallback or the whole
new index. A level holding no chunk of its own would be identical to the one below, so a tenant
whose documents all share one level keeps one index.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

LEVELS_DIR = "bm25-levels"
LEGACY_DIR = "bm25"
SEQ_FILE = "applied_seq"
STAGING_SUFFIX = ".new"
LEVEL_NUMBERS = range(4)  # Classification.PUBLIC .. Classification.RESTRICTED


class LevelFolders:
    """The level folders and the seq file of one tenant under `tenant_dir`."""

    def __init__(self, tenant_dir: Path) -> None:
        self.tenant_dir = tenant_dir
        self.root = tenant_dir / LEVELS_DIR
        self.legacy = tenant_dir / LEGACY_DIR
        self.seq_file = self.root / SEQ_FILE

    def folder(self, level: int) -> Path:
        """The index folder of `level` (which may not exist)."""
        return self.root / str(level)

    def staging(self, level: int) -> Path:
        """Where a new level index is built before it is renamed into place."""
        return self.root / f".{level}{STAGING_SUFFIX}"

    def present(self) -> list[int]:
        """The materialized levels, lowest first (a folder counts once its meta.json exists)."""
        return [lv for lv in LEVEL_NUMBERS if (self.folder(lv) / "meta.json").exists()]

    def readable(self, ceiling: int) -> int | None:
        """The level index a search at clearance `ceiling` reads; None when none is materialized.

        The highest materialized level at or below the ceiling: a level in between that was
        never materialized holds no chunk of its own, so the one below has the same contents.
        """
        for level in range(min(ceiling, max(LEVEL_NUMBERS)), -1, -1):
            if (self.folder(level) / "meta.json").exists():
                return level
        return None

    def stage(self, level: int, present: list[int]) -> Path:
        """A `.L.new` folder holding a copy of the highest present level below `level`, if any.

        Call with the tenant's write lock held and no writer open: Tantivy's files are then
        immutable, so a file copy is a consistent snapshot of that index.
        """
        target = self.staging(level)
        shutil.rmtree(target, ignore_errors=True)
        below = [lv for lv in present if lv < level]
        if below:
            shutil.copytree(self.folder(below[-1]), target)
        else:
            target.mkdir(parents=True)
        return target

    def publish(self, level: int, staged: Path) -> None:
        """Rename a complete staged index into place (atomic on one filesystem)."""
        os.rename(staged, self.folder(level))

    def remove_leftovers(self) -> None:
        """Delete staging folders a crashed write left behind, and the pre-level index."""
        if self.root.exists():
            for path in self.root.iterdir():
                if path.name.startswith(".") and path.name.endswith(STAGING_SUFFIX):
                    shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(self.legacy, ignore_errors=True)

    def remove_all(self) -> None:
        """Delete every level index, the seq file and the pre-level index."""
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.legacy, ignore_errors=True)

    def seq_stamp(self) -> tuple[int, int, int] | None:
        """(inode, mtime, size) of the seq file, which os.replace changes; None when absent."""
        try:
            stat = os.stat(self.seq_file)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def read_seq(self) -> int:
        """The recorded seq; 0 when there is none (nothing applied yet, or an older layout)."""
        try:
            return int(self.seq_file.read_text(encoding="ascii").strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def write_seq(self, seq: int) -> None:
        """Record `seq` durably and atomically (temp file, fsync, rename, fsync of the folder)."""
        temp = self.root / f".{SEQ_FILE}.{os.getpid()}.tmp"
        with open(temp, "w", encoding="ascii") as out:
            out.write(f"{int(seq)}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.seq_file)
        folder = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
