"""Converting uploads: each supported type, type detection, and hostile or malformed input."""

from __future__ import annotations

import contextlib
import io
import random
import struct
import zipfile
from collections.abc import Callable

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from tenantrag.errors import UnsupportedMediaType, ValidationFailed
from tenantrag.ingest import Converted, convert
from tenantrag.ingest.convert import DOCX_MIME, MAX_HTML_TAGS, MAX_PDF_PAGES, MAX_ZIP_ENTRIES

PdfMaker = Callable[..., bytes]


def make_docx() -> bytes:
    """A Word document with a title, headings, paragraphs, a list item and a table."""
    document = docx.Document()
    document.core_properties.title = "Travel policy"
    document.add_heading("Booking travel", level=1)
    document.add_paragraph("Book flights through the travel desk.")
    document.add_heading("Per diem", level=2)
    document.add_paragraph("Meals are reimbursed at the federal rate.")
    document.add_paragraph("Keep receipts", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("City", "Rate"), ("Boston", "$79")], strict=True):
        for cell, value in zip(row.cells, cells, strict=True):
            cell.text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A deflated zip archive holding `entries`."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return out.getvalue()


class TestSupportedTypes:
    def test_plain_text_is_kept_as_is(self) -> None:
        """A UTF-8 text file comes back as its text, with no title and type txt."""
        result = convert(
            "Grüße aus Köln.\nZweite Zeile.".encode(), filename="a.txt", content_type=None
        )
        assert result == Converted("Grüße aus Köln.\nZweite Zeile.", None, "txt")

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            ("\ufeffcafé".encode(), "café"),
            ("café".encode("utf-16"), "café"),
            ("café “quoted”".encode("cp1252"), "café “quoted”"),
            (b"caf\xe9 \x81", "café"),  # not cp1252 either: Latin-1, and the C1 control goes
        ],
    )
    def test_text_encodings_fall_back_in_the_documented_order(
        self, data: bytes, expected: str
    ) -> None:
        """Text decodes as UTF-8 (BOM dropped), UTF-16 by BOM, then Windows-1252, then Latin-1."""
        assert convert(data, filename="a.txt", content_type=None).text == expected

    def test_control_characters_and_nul_are_stripped(self) -> None:
        """NUL and other control characters go; tabs and newlines stay; CRLF becomes LF."""
        result = convert(
            b"a\x00b\x07c\r\nd\te\x1b[0m\r\n\r\n\r\n\r\nf", filename="a.txt", content_type=None
        )
        assert result.text == "abc\nd\te[0m\n\nf"

    def test_markdown_keeps_headings_and_takes_its_title_from_the_first(self) -> None:
        """Markdown headings stay as text lines and the first '# ' heading is the title."""
        text = "# Leave policy\n\nIntro.\n\n## Sick leave\n\nStay home."
        result = convert(text.encode(), filename="leave.md", content_type="text/markdown")
        assert result == Converted(text, "Leave policy", "md")

    def test_html_drops_scripts_and_navigation_and_marks_headings(self) -> None:
        """HTML keeps visible text, turns h1/h2 into '#'/'##' lines and takes <title> as title."""
        page = (
            "<html><head><title> Handbook </title><style>p{color:red}</style></head><body>"
            "<nav>Home | About</nav><script>alert('x')</script><h1>Welcome</h1>"
            "<p>Hello <b>world</b>.<br>Second line.</p><ul><li>one</li><li>two</li></ul>"
            "<h2>Details</h2><p>More   text.</p></body></html>"
        )
        result = convert(page.encode(), filename="index.html", content_type="text/html")
        assert result == Converted(
            "# Welcome\n\nHello world.\nSecond line.\n\n- one\n- two\n\n## Details\n\nMore text.",
            "Handbook",
            "html",
        )

    def test_html_without_title_takes_the_first_h1(self) -> None:
        """An HTML page with no <title> is titled by its first h1."""
        result = convert(b"<h1>First</h1><p>Body.</p>", filename="a.htm", content_type=None)
        assert result.title == "First"

    def test_pdf_text_comes_page_by_page_with_its_title(self, make_pdf: PdfMaker) -> None:
        """A PDF yields each page's text in order and the title from its metadata."""
        data = make_pdf([["Hello world.", "Second line (x)."], ["Page two."]], title="Report")
        result = convert(data, filename="report.pdf", content_type="application/pdf")
        assert result == Converted("Hello world.\nSecond line (x).\n\nPage two.", "Report", "pdf")

    def test_docx_marks_headings_by_style_and_keeps_tables(self) -> None:
        """A DOCX yields headings as '#' lines by style, list items, table rows and its title."""
        result = convert(make_docx(), filename="policy.docx", content_type=DOCX_MIME)
        assert result == Converted(
            "# Booking travel\n\nBook flights through the travel desk.\n\n## Per diem\n\n"
            "Meals are reimbursed at the federal rate.\n\n- Keep receipts\n\n"
            "| City | Rate |\n\n| Boston | $79 |",
            "Travel policy",
            "docx",
        )

    def test_huge_single_line_is_converted_whole(self) -> None:
        """A 5 MB text file on one line converts to the same 5 MB of text."""
        line = "word " * 1_000_000
        result = convert(line.encode(), filename="big.txt", content_type=None)
        assert result.text == line.strip()


class TestTypeDetection:
    def test_content_type_decides_when_the_name_has_no_extension(self) -> None:
        """With no extension, the content type (parameters ignored) chooses the converter."""
        result = convert(b"<p>Hi</p>", filename="upload", content_type="text/html; charset=utf-8")
        assert result.source_type == "html"

    def test_pdf_bytes_are_read_as_pdf_whatever_they_are_called(self, make_pdf: PdfMaker) -> None:
        """Bytes that start with %PDF- are a PDF even when named .txt or sent as octet-stream."""
        data = make_pdf([["Inside."]])
        assert convert(data, filename="x.txt", content_type=None).source_type == "pdf"
        assert convert(data, filename="", content_type="application/octet-stream").text == "Inside."

    def test_docx_is_recognised_without_a_name(self) -> None:
        """A zip holding word/document.xml is a DOCX even without name or content type."""
        assert convert(make_docx(), filename="", content_type=None).source_type == "docx"

    def test_unnamed_text_is_sniffed_as_html_or_text(self) -> None:
        """Without name or type, a doctype means HTML and other text means plain text."""
        html = convert(b"<!DOCTYPE html><p>Hi</p>", filename="", content_type=None)
        plain = convert(b"just words", filename="", content_type=None)
        assert (html.source_type, plain.source_type) == ("html", "txt")

    @pytest.mark.parametrize(
        ("data", "filename", "content_type"),
        [
            (b"\x89PNG\r\n\x1a\n" + bytes(100), "photo.png", "image/png"),
            (b"a,b\n1,2\n", "table.csv", "text/csv"),
            (b"plain words", "notes.rtf", None),
            (b"plain words", "", "application/json"),
            (random.Random(1).randbytes(4096), "", None),
            (b"\x89PNG\r\n\x1a\n" + bytes(100), "", "application/octet-stream"),
        ],
    )
    def test_unsupported_types_are_415_listing_what_is_supported(
        self, data: bytes, filename: str, content_type: str | None
    ) -> None:
        """Anything but txt, md, html, pdf and docx is a 415 that names the supported types."""
        with pytest.raises(UnsupportedMediaType, match="txt, md, html, pdf, docx"):
            convert(data, filename=filename, content_type=content_type)

    def test_a_plain_zip_is_unsupported(self) -> None:
        """A zip archive that is not a Word document is refused with 415."""
        with pytest.raises(UnsupportedMediaType, match="zip archive"):
            convert(zip_bytes({"a.txt": b"hello"}), filename="a.zip", content_type=None)


class TestMalformedInput:
    @pytest.mark.parametrize("filename", ["a.txt", "a.md", "a.html", "a.pdf", "a.docx"])
    def test_random_bytes_under_a_supported_name_are_422(self, filename: str) -> None:
        """Random bytes named as a supported type are a 422, never a crash."""
        data = random.Random(filename).randbytes(4096)
        with pytest.raises(ValidationFailed):
            convert(data, filename=filename, content_type=None)

    def test_truncated_pdf_is_422(self, make_pdf: PdfMaker) -> None:
        """A PDF cut off after its first object is a 422."""
        data = make_pdf([["Hello."]])
        with pytest.raises(ValidationFailed):
            convert(data[:40], filename="a.pdf", content_type=None)

    def test_pdf_garbage_after_the_header_is_422(self) -> None:
        """A %PDF- header followed by garbage is a 422."""
        with pytest.raises(ValidationFailed, match="pdf"):
            convert(b"%PDF-1.7\n" + bytes(range(256)) * 8, filename="a.pdf", content_type=None)

    def test_pdf_with_too_many_pages_is_422(self, make_pdf: PdfMaker) -> None:
        """A PDF over the page limit is refused before any page is read."""
        data = make_pdf([[]] * (MAX_PDF_PAGES + 1))
        with pytest.raises(ValidationFailed, match=f"{MAX_PDF_PAGES + 1:,} pages"):
            convert(data, filename="a.pdf", content_type=None)

    def test_password_protected_pdf_is_422(self, make_pdf: PdfMaker) -> None:
        """A PDF that needs a password to open is a 422 that says so."""
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([["Secret."]]))))
        writer.encrypt(user_password="pw", algorithm="RC4-128")
        out = io.BytesIO()
        writer.write(out)
        with pytest.raises(ValidationFailed, match="password"):
            convert(out.getvalue(), filename="a.pdf", content_type=None)

    def test_pdf_without_text_is_422(self, make_pdf: PdfMaker) -> None:
        """A PDF whose pages show no text (a scan, say) is a 422 'no text found'."""
        with pytest.raises(ValidationFailed, match="no text found in the pdf"):
            convert(make_pdf([[], []]), filename="scan.pdf", content_type=None)

    def test_truncated_docx_is_422(self) -> None:
        """A DOCX cut in half is a 422."""
        data = make_docx()
        with pytest.raises(ValidationFailed, match="docx"):
            convert(data[: len(data) // 2], filename="a.docx", content_type=None)

    def test_docx_without_document_xml_is_422(self) -> None:
        """A zip named .docx without word/document.xml is a 422 that names the missing part."""
        data = zip_bytes({"[Content_Types].xml": b"<Types/>", "word/styles.xml": b"<x/>"})
        with pytest.raises(ValidationFailed, match="word/document.xml"):
            convert(data, filename="a.docx", content_type=DOCX_MIME)

    def test_docx_zip_bomb_is_refused_by_its_compression_ratio(self) -> None:
        """A DOCX entry that compresses a thousand to one is refused as a zip bomb."""
        data = zip_bytes({"word/document.xml": b"<" + b"a" * 20_000_000})
        assert len(data) < 100_000
        with pytest.raises(ValidationFailed, match="zip bomb"):
            convert(data, filename="bomb.docx", content_type=None)

    def test_docx_that_unpacks_too_large_is_refused(self) -> None:
        """A DOCX whose entries declare more than 50 MiB in total is refused before opening."""
        data = zip_bytes({f"word/part{i}.xml": bytes(18 * 2**20) for i in range(3)})
        with pytest.raises(ValidationFailed, match="unpacks to 54 MiB; the limit is 50 MiB"):
            convert(data, filename="big.docx", content_type=None)

    def test_docx_with_too_many_entries_is_refused(self) -> None:
        """A DOCX with more parts than the limit is refused."""
        data = zip_bytes({f"word/p{i}.xml": b"" for i in range(MAX_ZIP_ENTRIES + 1)})
        with pytest.raises(ValidationFailed, match="parts"):
            convert(data, filename="a.docx", content_type=None)

    def test_docx_lying_about_its_sizes_is_422(self) -> None:
        """A DOCX whose headers understate an entry's size fails its checksum: a 422, no crash."""
        data = bytearray(make_docx())
        target = b"word/document.xml"
        # Shrink the declared size in the local header and the central directory to 10 bytes.
        local = data.index(b"PK\x03\x04")
        while data[local + 30 : local + 30 + len(target)] != target:
            local = data.index(b"PK\x03\x04", local + 4)
        struct.pack_into("<I", data, local + 22, 10)
        central = data.index(b"PK\x01\x02")
        while data[central + 46 : central + 46 + len(target)] != target:
            central = data.index(b"PK\x01\x02", central + 4)
        struct.pack_into("<I", data, central + 24, 10)
        with pytest.raises(ValidationFailed):
            convert(bytes(data), filename="a.docx", content_type=None)

    def test_truncated_html_keeps_the_text_it_has(self) -> None:
        """HTML cut off mid-tag still yields the text before the cut."""
        result = convert(b"<html><body><p>Hello <b>wor", filename="a.html", content_type=None)
        assert result.text == "Hello wor"

    def test_html_with_only_comments_and_scripts_has_no_text(self) -> None:
        """HTML whose only content is comments, scripts and styles is a 422 'no text found'."""
        page = b"<html><!-- note --><script>var a = 1;</script><style>p {}</style></html>"
        with pytest.raises(ValidationFailed, match="no text found in the html file"):
            convert(page, filename="a.html", content_type=None)

    @pytest.mark.parametrize(
        "data",
        [b"<!--" * 50_000, b"<![CDATA[" * 50_000, b"<?" * 50_000, b"<div>x" * 20_000],
        ids=["unclosed-comments", "unclosed-cdata", "unclosed-pi", "deep-nesting"],
    )
    def test_pathological_html_converts_in_linear_time(self, data: bytes) -> None:
        """Unclosed markup, which html.parser rescans quadratically, and deep nesting convert."""
        result = convert(data, filename="a.html", content_type=None)
        assert result.text.startswith(("<!--", "<![CDATA[", "<?", "x"))

    def test_html_with_too_many_tags_is_422(self) -> None:
        """HTML over the tag limit is refused before it is parsed."""
        with pytest.raises(ValidationFailed, match="tags"):
            convert(b"<b>" * (MAX_HTML_TAGS + 1), filename="a.html", content_type=None)

    @pytest.mark.parametrize("data", [b"", b"   \n\t\r\n", b"\x00\x00\x00"])
    def test_empty_text_is_422(self, data: bytes) -> None:
        """A text file with nothing but whitespace or NULs has no text: a 422."""
        with pytest.raises(ValidationFailed, match="no text found in the txt file"):
            convert(data, filename="a.txt", content_type=None)

    def test_corrupted_files_raise_only_our_errors(self, make_pdf: PdfMaker) -> None:
        """Randomly corrupted PDFs and DOCX files either convert or raise a 415 or 422."""
        rng = random.Random(7)
        samples = [(make_pdf([["Some text here."]] * 3), "a.pdf"), (make_docx(), "a.docx")]
        for original, filename in samples:
            for _ in range(40):
                data = bytearray(original)
                for _ in range(rng.randint(1, 20)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                with contextlib.suppress(ValidationFailed, UnsupportedMediaType):
                    convert(bytes(data), filename=filename, content_type=None)
