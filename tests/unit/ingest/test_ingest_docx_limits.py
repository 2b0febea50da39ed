"""DOCX limits on every XML part, not just document.xml, checked before python-docx opens a byte.

python-docx parses the styles, numbering, headers, footers and comments parts eagerly with lxml,
so a 45 MB styles.xml of tiny tags (a 5.8 MB upload) took 1.4 GB. Each part is now decompressed
once, a block at a time, its real size checked against what it declares and against the per-part
cap, and the tags of all XML parts counted against one budget.
"""

from __future__ import annotations

import base64
import io
import random
import string
import struct
import zipfile

import docx
import pytest
from tests.unit.ingest.test_ingest_convert import make_docx

from tenantrag.errors import ValidationFailed
from tenantrag.ingest import convert
from tenantrag.ingest.convert import MAX_DOCX_TAGS, MAX_XML_PART_BYTES

STYLES = "word/styles.xml"
BASE = make_docx()  # made before any test stops python-docx from opening documents


def with_part(name: str, content: bytes, base: bytes | None = None) -> bytes:
    """A copy of a real DOCX (`make_docx`) with the part `name` set to `content`."""
    source = zipfile.ZipFile(io.BytesIO(base or BASE))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in source.infolist():
            if item.filename != name:
                archive.writestr(item, source.read(item))
        archive.writestr(name, content)
    return out.getvalue()


def tiny_tags(count: int, seed: int = 0) -> bytes:
    """XML of `count` tiny elements with random attribute values (compresses about 8:1)."""
    rng = random.Random(seed)
    letters = string.ascii_letters + string.digits
    values = "".join(rng.choices(letters, k=4 * count))
    body = "".join(f'<s v="{values[i : i + 4]}"/>' for i in range(0, 4 * count, 4))
    return f'<?xml version="1.0"?><styles>{body}</styles>'.encode()


@pytest.fixture
def no_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if python-docx is asked to open the file: the checks must refuse it first."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("python-docx opened a file the archive checks should have refused")

    monkeypatch.setattr(docx, "Document", refuse)


@pytest.mark.usefixtures("no_parse")
class TestEveryXmlPartIsBounded:
    def test_tags_in_styles_count_against_the_budget(self) -> None:
        """A styles.xml of tiny tags is refused by the tag budget, document.xml being small."""
        data = with_part(STYLES, tiny_tags(MAX_DOCX_TAGS + 10))
        with pytest.raises(ValidationFailed, match="XML tags"):
            convert(data, filename="a.docx", content_type=None)

    def test_the_budget_is_shared_by_all_parts(self) -> None:
        """Two parts each under the budget but over it together are refused."""
        half = tiny_tags(MAX_DOCX_TAGS // 2 + 10)
        data = with_part("word/numbering.xml", half, with_part(STYLES, tiny_tags(100, 1) + half))
        with pytest.raises(ValidationFailed, match="XML tags"):
            convert(data, filename="a.docx", content_type=None)

    def test_a_wide_xml_part_is_counted_too(self) -> None:
        """UTF-16 XML (lxml reads it) cannot slip past the count."""
        data = with_part(STYLES, tiny_tags(MAX_DOCX_TAGS + 10).decode().encode("utf-16"))
        with pytest.raises(ValidationFailed, match="XML tags"):
            convert(data, filename="a.docx", content_type=None)

    def test_an_xml_part_over_its_own_cap_is_refused(self) -> None:
        """A styles.xml of few tags but more bytes than one part may hold is refused by size."""
        text = base64.b64encode(random.Random(0).randbytes(MAX_XML_PART_BYTES * 3 // 4 + 2**20))
        data = with_part(STYLES, b"<styles>" + text + b"</styles>")
        with pytest.raises(ValidationFailed, match="styles.xml unpacks to over"):
            convert(data, filename="a.docx", content_type=None)

    def test_a_part_holding_less_than_it_declares_is_refused(self) -> None:
        """A central directory overstating a part's size is caught by reading the part."""
        data = bytearray(with_part(STYLES, tiny_tags(50)))
        target = STYLES.encode()
        central = data.index(b"PK\x01\x02")
        while data[central + 46 : central + 46 + len(target)] != target:
            central = data.index(b"PK\x01\x02", central + 4)
        (declared,) = struct.unpack_from("<I", data, central + 24)
        struct.pack_into("<I", data, central + 24, declared + 1000)
        with pytest.raises(ValidationFailed, match="styles.xml"):
            convert(bytes(data), filename="a.docx", content_type=None)


def test_a_real_document_with_large_but_fair_parts_converts() -> None:
    """A document within the limits (20k style tags) still converts to its text."""
    data = with_part(
        STYLES,
        tiny_tags(20_000)
        .replace(
            b"<styles>",
            b'<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">',
        )
        .replace(b"</styles>", b"</w:styles>"),
    )
    converted = convert(data, filename="a.docx", content_type=None)
    assert "Book flights through the travel desk." in converted.text
