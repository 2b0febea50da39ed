"""Bulk ingestion for the CLI: a folder of files or a BEIR corpus.jsonl, in batches."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from tenantrag.ingest.convert import convert
from tenantrag.ingest.service import DocumentInput
from tenantrag.models import DOCUMENT_ID_MAX_CHARS

SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}


def count_documents(path: Path) -> int:
    """How many documents `path` holds (lines of a jsonl file, or convertible files)."""
    if path.is_file() and path.suffix == ".jsonl":
        with path.open() as handle:
            return sum(1 for line in handle if line.strip())
    if path.is_file():
        return 1
    return sum(1 for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def read_documents(
    path: Path, on_skip: Callable[[str, str], None] | None = None
) -> Iterator[DocumentInput]:
    """Documents from a BEIR-style corpus.jsonl ({"_id","title","text"}) or a folder of files."""
    if path.is_file() and path.suffix == ".jsonl":
        with path.open() as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    yield DocumentInput(
                        text=str(row["text"]),
                        id=str(row.get("_id") or row.get("id")),
                        title=str(row.get("title") or ""),
                        source=path.name,
                        metadata={
                            k: v
                            for k, v in (row.get("metadata") or {}).items()
                            if isinstance(v, str | int | float | bool)
                        },
                    )
        return
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    root = path if path.is_dir() else path.parent
    for file in files:
        if file.suffix.lower() not in SUFFIXES:
            continue
        try:
            converted = convert(file.read_bytes(), filename=file.name, content_type=None)
        except Exception as exc:  # one bad file must not stop a bulk load; it is reported
            if on_skip is not None:
                on_skip(str(file), str(exc))
            continue
        rel = file.relative_to(root).as_posix()
        yield DocumentInput(
            text=converted.text,
            id=file_document_id(rel),
            title=converted.title or file.stem,
            source=rel,
        )


def file_document_id(rel: str) -> str:
    """A valid, addressable document id for the file at the relative path `rel`.

    The path is kept where it can be (`guides/leave.md` stays): other characters become `-`,
    leading non-alphanumerics and empty or dot-only segments are dropped, and a path too long
    for an id keeps its head and ends in a hash of the whole, so two long paths never collide.
    """
    cleaned = "".join(c if (c.isascii() and c.isalnum()) or c in "._-/" else "-" for c in rel)
    segments = [seg for seg in cleaned.split("/") if seg.strip(".")]
    doc_id = "/".join(segments).lstrip("._-/")
    if not doc_id or len(doc_id) > DOCUMENT_ID_MAX_CHARS:
        digest = hashlib.sha256(rel.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        head = doc_id[: DOCUMENT_ID_MAX_CHARS - len(digest) - 1].rstrip("/")
        doc_id = f"{head}-{digest}" if head else digest
    return doc_id


def batches(docs: Iterator[DocumentInput], size: int = 64) -> Iterator[list[DocumentInput]]:
    """Lists of up to `size` documents."""
    batch: list[DocumentInput] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
