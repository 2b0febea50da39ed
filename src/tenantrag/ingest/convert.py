"""Turn an uploaded file (txt, md, html, pdf, docx) into clean text with markdown-style headings.

Every file is hostile until read: a failure inside a parsing library becomes ValidationFailed (422),
an unknown type UnsupportedMediaType (415), and nothing else escapes. DOCX archives are checked for
zip bombs before python-docx opens them, and pypdf runs with tighter decompression limits.

Text files are decoded as UTF-8 (a byte-order mark is dropped; UTF-16 is read when it has one),
falling back to Windows-1252 and then Latin-1, which accepts any byte, for legacy files.
"""

from __future__ import annotations

import codecs
import io
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePath

import docx
import pypdf
from bs4 import BeautifulSoup, CData, Tag
from bs4.element import NavigableString, PageElement
from docx.text.paragraph import Paragraph

from tenantrag.errors import TenantRagError, UnsupportedMediaType, ValidationFailed
from tenantrag.ingest.chunking import parse_heading

MAX_TEXT_CHARS = 20_000_000
MAX_PDF_PAGES = 2_000
MAX_PDF_STREAM_BYTES = 20_000_000  # per decoded stream; pypdf's own default is 75 MB
MAX_HTML_TAGS = 200_000  # about 30 µs each to parse
MAX_ZIP_ENTRIES = 2_000
MAX_UNCOMPRESSED_BYTES = 50 * 1024 * 1024
# Every XML part is parsed whole by lxml (python-docx loads the document, styles, numbering,
# headers, footers, comments... eagerly), so each is bounded on its own, not just document.xml:
# a 45 MB styles.xml in a 5.8 MB upload took 1.4 GB. A 900-page report's document.xml is ~15 MB.
MAX_XML_PART_BYTES = 24 * 1024 * 1024
MAX_COMPRESSION_RATIO = 100  # Word's XML compresses about 10:1; bombs compress 1000:1
# lxml keeps ~140 bytes per element and python-docx ~60 µs per paragraph: 45 MB of tiny
# paragraphs (a 4 MB upload, 11:1) took 960 MB and minutes. A 900-page report has ~200k tags;
# the cap counts the tags of every XML part together.
MAX_DOCX_TAGS = 400_000
_READ_BLOCK = 2**20
_BOM_AND_SPACE = b"\xef\xbb\xbf \t\r\n"
# lxml also reads UTF-16 and UTF-32 XML: with a byte-order mark, or a '<' beside zero bytes.
_WIDE_XML_STARTS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"<\x00", b"\x00<")
TITLE_MAX_CHARS = 300

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SUPPORTED = "txt, md, html, pdf, docx"
_EXTENSIONS = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
_CONTENT_TYPES = {
    "text/plain": "txt",
    "text/markdown": "md",
    "text/x-markdown": "md",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    DOCX_MIME: "docx",
}
_GENERIC_CONTENT_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
_BINARY_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"\x1f\x8b", b"\xd0\xcf\x11\xe0", b"\x7fELF")
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_DROPPED_TAGS = {
    "script",
    "style",
    "nav",
    "noscript",
    "template",
    "svg",
    "iframe",
    "object",
    "head",
}
_BLOCK_TAGS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "tr",
    "figure",
    "figcaption",
    "form",
    "address",
    "hr",
}
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufeff]")
_BLANK_LINES = re.compile(r"\n{3,}")
_SPACES = re.compile(r"[ \t]+")
_MD_TITLE = re.compile(r"^#[ \t][^\n]*", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Converted:
    """A file's text (headings as '# ' lines), its title when it names one, and its type."""

    text: str
    title: str | None
    source_type: str


def convert(data: bytes, *, filename: str, content_type: str | None) -> Converted:
    """The text of an uploaded file.

    Raises:
        UnsupportedMediaType: the file is none of txt, md, html, pdf or docx.
        ValidationFailed: the file is malformed, too large once unpacked, or has no text.
    """
    kind = detect_type(data, filename=filename, content_type=content_type)
    try:
        text, title = _CONVERTERS[kind](data)
    except TenantRagError:
        raise
    except Exception as exc:  # hostile input can make any parser fail in any way
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ValidationFailed(f"the {kind} file is malformed: {reason}") from exc
    text = clean_text(text)
    if len(text) > MAX_TEXT_CHARS:
        raise ValidationFailed(
            f"the {kind} file holds {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}"
        )
    if not text:
        raise ValidationFailed(f"no text found in the {kind} file")
    title = " ".join(clean_text(title).split())[:TITLE_MAX_CHARS] if title else None
    return Converted(text=text, title=title or None, source_type=kind)


def detect_type(data: bytes, *, filename: str, content_type: str | None) -> str:
    """The file's type, from its bytes where they are telling, else its name or content type."""
    suffix = PurePath(filename).suffix.lower() if filename else ""
    mime = (content_type or "").split(";")[0].strip().lower()
    declared = _EXTENSIONS.get(suffix) or _CONTENT_TYPES.get(mime)
    if b"%PDF-" in data[:1024]:  # the header may follow up to 1 KiB of junk
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        if declared == "docx" or b"word/document.xml" in data:
            return "docx"
        raise UnsupportedMediaType(f"a zip archive is not a document we read; upload {SUPPORTED}")
    if declared is None:
        what = f"extension {suffix!r}" if suffix else f"content type {mime!r}"
        if not suffix and mime in _GENERIC_CONTENT_TYPES:
            if _looks_binary(data):
                raise UnsupportedMediaType(f"the file is not text; upload {SUPPORTED}")
            return "html" if _looks_like_html(data) else "txt"
        raise UnsupportedMediaType(f"unsupported file type ({what}); upload {SUPPORTED}")
    if declared in ("txt", "md", "html") and _looks_binary(data):
        raise ValidationFailed(f"the {declared} file holds binary data, not text")
    return declared


def clean_text(text: str) -> str:
    """`text` with Unix newlines, no control characters but tabs, NFC, at most one blank line."""
    text = text.replace("\r\n", "\n").translate({0x0D: "\n", 0x0B: "\n", 0x0C: "\n", 0x2028: "\n"})
    text = unicodedata.normalize("NFC", _CONTROL.sub("", text.replace("\u2029", "\n\n")))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def decode_text(data: bytes) -> str:
    """Bytes of a text file as str: UTF-16 by its BOM, else UTF-8, Windows-1252, Latin-1."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if head.startswith(_BINARY_MAGIC):
        return True
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    controls = sum(head.count(bytes([b])) for b in (*range(9), *range(14, 32), 127))
    # Text has almost none, random bytes 11%; a few in a short file are stripped as noise.
    return controls > max(16, len(head) * 0.05)


def _looks_like_html(data: bytes) -> bool:
    head = data[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _text(data: bytes) -> tuple[str, str | None]:
    return decode_text(data), None


def _markdown(data: bytes) -> tuple[str, str | None]:
    text = decode_text(data)
    first = _MD_TITLE.search(text)
    heading = parse_heading(first.group()) if first else None
    return text, heading[1] if heading else None


def _html(data: bytes) -> tuple[str, str | None]:
    if data.count(b"<") > MAX_HTML_TAGS:  # each tag costs a Python object; bound the memory
        raise ValidationFailed(f"the html file has over {MAX_HTML_TAGS:,} tags")
    soup = BeautifulSoup(_defuse_unclosed(decode_text(data)), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    first_h1 = soup.find("h1")
    title = title or (first_h1.get_text(" ", strip=True) if first_h1 else "")
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(_html_text(soup)).split("\n"))
    return "\n".join(lines), title or None


def _defuse_unclosed(html: str) -> str:
    """`html` with markup openers that nothing closes escaped as text.

    CPython 3.11's html.parser rescans the rest of the document for each unclosed comment, marked
    section or tag (CVE-2025-6069), which makes a megabyte of '<!--' take hours.
    """
    for opener, closer in (("<!--", "-->"), ("<![", "]]>"), ("<", ">")):
        end = html.rfind(closer)
        start = end + len(closer) if end >= 0 else 0
        if opener in html[start:]:
            html = html[:start] + html[start:].replace(opener, "&lt;" + opener[1:])
    return html


def _html_text(root: Tag) -> Iterator[str]:
    """The visible text under `root` with block breaks and '#' headings, walked without recursion.

    Editing the tree instead (insert_before and friends) costs time quadratic in nesting depth.
    """
    stack: list[tuple[PageElement, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if isinstance(node, NavigableString):
            if type(node) in (NavigableString, CData):  # not comments, doctypes or scripts
                yield str(node)
        elif not isinstance(node, Tag):
            continue
        elif leaving:
            yield " " if node.name in ("td", "th") else "\n\n"
        elif node.name not in _DROPPED_TAGS:
            if node.name in _HEADINGS:
                words = " ".join(node.get_text(" ").split())
                yield f"\n\n{'#' * int(node.name[1])} {words}\n\n" if words else "\n"
                continue
            if node.name == "br":
                yield "\n"
            elif node.name == "li":
                yield "\n- "
            elif node.name in _BLOCK_TAGS:
                yield "\n\n"
                stack.append((node, True))
            elif node.name in ("td", "th"):
                stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.contents))


def _pdf(data: bytes) -> tuple[str, str | None]:
    if b"%PDF-" not in data[:1024]:
        raise ValidationFailed("the pdf file is malformed: it has no %PDF- header")
    names = ("zlib", "lzw", "run_length", "array_based_stream", "brotli")
    limits = {f"{name}_maximum_output_length": MAX_PDF_STREAM_BYTES for name in names}
    # jbig2dec_binary=None: never run an external program on an uploaded file.
    configuration = pypdf.get_configuration().with_overwrites(
        jbig2dec_binary=None, maximum_declared_stream_length=MAX_PDF_STREAM_BYTES, **limits
    )
    with pypdf.apply_configuration(configuration):
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ValidationFailed("the pdf file is password-protected; upload it unlocked")
        if len(reader.pages) > MAX_PDF_PAGES:
            raise ValidationFailed(
                f"the pdf file has {len(reader.pages):,} pages; the limit is {MAX_PDF_PAGES:,}"
            )
        pages: list[str] = []
        total = 0
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            total += len(pages[-1])
            if total > MAX_TEXT_CHARS:
                raise ValidationFailed(f"the pdf file holds over {MAX_TEXT_CHARS:,} characters")
        title = reader.metadata.title if reader.metadata else None
    return "\n\n".join(pages), title


def _docx(data: bytes) -> tuple[str, str | None]:
    _check_archive(data)
    document = docx.Document(io.BytesIO(data))
    blocks: list[str] = []
    first_heading: str | None = None
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = " ".join(item.text.split())
            prefix = _paragraph_prefix(item.style.name if item.style is not None else "")
            if text:
                blocks.append(prefix + text)
                if prefix.startswith("#") and first_heading is None:
                    first_heading = text
            continue
        for row in item.rows:
            cells = list(dict.fromkeys(" ".join(c.text.split()) for c in row.cells))  # merged
            blocks.append("| " + " | ".join(cells) + " |")
    return "\n\n".join(blocks), document.core_properties.title or first_heading


def _paragraph_prefix(style: str) -> str:
    """'# ' for 'Title' and 'Heading 1' (up to '###### '), '- ' for list styles, else ''."""
    if style == "Title":
        return "# "
    if style.startswith("Heading ") and style[8:].isdigit():
        return "#" * min(max(int(style[8:]), 1), 6) + " "
    return "- " if style.startswith("List") else ""


def _check_archive(data: bytes) -> None:
    """Refuse a DOCX whose parts would unpack, or parse, to too much, before python-docx opens it.

    First what the zip declares (entry count, each part's and the total unpacked size, the
    compression ratio), then what it holds: every part is decompressed once, a block at a time,
    so a part that unpacks to more than it declares, or fails its checksum, is refused, and the
    tags of every XML part are counted against one budget.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ValidationFailed("the docx file is malformed: it is not a zip archive") from exc
    entries = archive.infolist()
    _check_declared(entries)
    if "word/document.xml" not in archive.namelist():
        raise ValidationFailed("the docx file is malformed: it has no word/document.xml")
    tags = 0
    for entry in entries:
        tags += _scan_part(archive, entry)
        if tags > MAX_DOCX_TAGS:
            raise ValidationFailed(f"the docx file has over {MAX_DOCX_TAGS:,} XML tags; split it")


def _check_declared(entries: list[zipfile.ZipInfo]) -> None:
    """Refuse on the sizes the archive declares, before decompressing anything."""
    if len(entries) > MAX_ZIP_ENTRIES:
        raise ValidationFailed(f"the docx file has {len(entries):,} parts; the limit is 2,000")
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > MAX_UNCOMPRESSED_BYTES:
        raise ValidationFailed(
            f"the docx file unpacks to {unpacked // 2**20:,} MiB; the limit is "
            f"{MAX_UNCOMPRESSED_BYTES // 2**20} MiB"
        )
    for entry in entries:
        if entry.file_size > 2**20 and entry.file_size > MAX_COMPRESSION_RATIO * max(
            entry.compress_size, 1
        ):
            raise ValidationFailed(
                f"the docx file is malformed: {entry.filename} is compressed "
                f"{entry.file_size // max(entry.compress_size, 1):,}:1, like a zip bomb"
            )


def _scan_part(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> int:
    """Decompress one part a block at a time; its tag count if it is XML, else 0.

    A part is XML when its first bytes could open an XML document (`_looks_like_xml`): that is
    what lxml would parse, whatever the part is called or declared to be.
    """
    size, tags, is_xml = 0, 0, False
    try:
        with archive.open(entry) as part:
            while block := part.read(_READ_BLOCK):
                if size == 0:
                    is_xml = _looks_like_xml(block)
                size += len(block)
                if is_xml:
                    tags += block.count(b"<")
                    _check_xml_part(entry, size, tags)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ValidationFailed(
            f"the docx file is malformed: {entry.filename} cannot be read ({reason})"
        ) from exc
    if size != entry.file_size:  # zipfile stops at the declared size; fewer bytes is a lie too
        raise ValidationFailed(
            f"the docx file is malformed: {entry.filename} declares {entry.file_size:,} bytes"
            f" but holds {size:,}"
        )
    return tags


def _looks_like_xml(head: bytes) -> bool:
    """True when lxml could read `head` as the start of an XML document, in any encoding.

    Counting b"<" in a UTF-16 part counts each tag once and a few other characters too: an
    overcount, the safe side of the budget.
    """
    return head.lstrip(_BOM_AND_SPACE).startswith(b"<") or head.startswith(_WIDE_XML_STARTS)


def _check_xml_part(entry: zipfile.ZipInfo, size: int, tags: int) -> None:
    if size > MAX_XML_PART_BYTES:
        raise ValidationFailed(
            f"the docx file's {entry.filename} unpacks to over {MAX_XML_PART_BYTES // 2**20} MiB"
            f" of XML; the limit per part is {MAX_XML_PART_BYTES // 2**20} MiB"
        )
    if tags > MAX_DOCX_TAGS:
        raise ValidationFailed(f"the docx file has over {MAX_DOCX_TAGS:,} XML tags; split it")


_CONVERTERS: dict[str, Callable[[bytes], tuple[str, str | None]]] = {
    "txt": _text,
    "md": _markdown,
    "html": _html,
    "pdf": _pdf,
    "docx": _docx,
}
