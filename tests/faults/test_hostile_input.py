"""Hostile input against a live server: schema fuzzing, query fuzzing and malicious files.

Never a 5xx, every error in the contract's shape, the server stays up and its memory bounded.
"""

from __future__ import annotations

import io
import json
import random
import string
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response as FuzzResponse
from schemathesis.generation import GenerationMode
from schemathesis.schemas import APIOperation
from tests.faults.support import create_tenant, headers_for, start_server
from tests.integration.conftest import Server

pytestmark = pytest.mark.integration  # starts servers or subprocesses

SEED_DOCS = [
    {"id": "leave", "text": "Staff request annual leave in the HR portal; managers approve it."},
    {"id": "travel", "text": "Book travel through the agency. Economy class under six hours."},
    # Over 32 full chunks: the embedder's memory arena reaches its full-batch size now, so the
    # memory check below measures hostile files, not the model's warm-up.
    {"id": "long", "text": "Policy text repeats to fill the embedding model's window. " * 750},
]
# Tantivy's query-language characters, to build strings its parser might choke on.
QUERY_SYNTAX = list('+-&|!(){}[]^"~*?:\\/ ') + ["AND", "OR", "NOT", "TO", "title:", "leave"]
FUZZ = settings(
    max_examples=10,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MAX_PEAK_GROWTH = 100 * 2**20  # all these files together may raise the peak RSS this much


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path
) -> Iterator[tuple[Server, dict[str, str]]]:
    """One server (one worker, so /proc shows its whole memory) and a tenant with documents."""
    data = tmp_path_factory.mktemp("hostile") / "data"
    server = start_server(data)
    headers = headers_for(create_tenant(data, rate_limit=1_000_000))
    r = httpx.post(
        f"{server.base_url}/api/documents",
        headers=headers,
        json={"documents": SEED_DOCS},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    assert r.json()["documents"][2]["chunks"] >= 32  # one full batch of the embedder
    yield server, headers
    server.stop()


def contract_problem(status: int, body: bytes, where: str) -> str | None:
    """What is wrong with a response: a 5xx, or an error not shaped {"error": {code, message}}."""
    if status >= 500:
        return f"{where}: {status} {body[:300]!r}"
    if status < 400:
        return None
    try:
        error = json.loads(body)["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
    except (ValueError, KeyError, TypeError, AssertionError):
        return f"{where}: {status} is not the contract's error shape: {body[:300]!r}"
    return None


def fuzz(
    operation: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    headers: dict[str, str],
    session: requests.Session,
    problems: list[str],
) -> int:
    """Send FUZZ's examples of `mode` to `operation`, noting problems; how many were sent."""
    sent = 0

    @FUZZ
    @given(case=operation.as_strategy(mode, headers=headers))
    def send(case: schemathesis.Case[Any]) -> None:
        nonlocal sent
        sent += 1
        response: FuzzResponse = case.call(session=session, headers=headers, timeout=60)
        where = f"{mode.value} {operation.label}"
        problem = contract_problem(response.status_code, response.content, where)
        if problem:
            problems.append(f"{problem}\n  reproduce: {case.as_curl_command()}")

    try:
        send()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # nothing to get wrong in a parameterless GET
    return sent


def test_schema_fuzzing_finds_no_5xx_and_only_contract_errors(
    live: tuple[Server, dict[str, str]],
) -> None:
    """Schemathesis' valid and invalid requests to every operation: no 5xx, errors well-shaped."""
    server, headers = live
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    session = requests.Session()
    problems: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # our schema must load whole
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            sent += fuzz(result.ok(), mode, headers, session, problems)
    assert sent > 100
    assert not problems, "\n".join(problems[:10])
    assert httpx.get(f"{server.base_url}/health").status_code == 200


def test_any_unicode_search_query_is_answered_without_5xx(
    live: tuple[Server, dict[str, str]],
) -> None:
    """Arbitrary unicode and query-syntax soup in bm25 and hybrid mode never causes a 5xx."""
    server, headers = live
    problems: list[str] = []
    texts = st.one_of(
        st.text(min_size=1, max_size=200),
        st.lists(st.sampled_from(QUERY_SYNTAX), min_size=1, max_size=30).map("".join),
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=50).map(lambda t: t * 40),
    )

    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:

        @settings(FUZZ, max_examples=120)
        @given(query=texts, mode=st.sampled_from(["bm25", "hybrid"]))
        def search(query: str, mode: str) -> None:
            r = http.post("/api/search", json={"query": query, "mode": mode})
            problem = contract_problem(r.status_code, r.content, f"{mode} {query!r}")
            if problem:
                problems.append(problem)

        search()
    assert not problems, "\n".join(problems[:10])


def _zip(entries: dict[str, bytes], level: int = 9) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def _docx(document_xml: bytes, extra: dict[str, bytes] | None = None, level: int = 9) -> bytes:
    """A minimal DOCX package around `document_xml`, complete enough for python-docx to parse."""
    main = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    types = (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="xml" ContentType="application/xml"/><Default '
        'Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        f'<Override PartName="/word/document.xml" ContentType="{main}"/></Types>'
    )
    rels = (
        '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
        'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
        "</Relationships>"
    )
    return _zip(
        {
            "[Content_Types].xml": types.encode(),
            "_rels/.rels": rels.encode(),
            "word/document.xml": document_xml,
            **(extra or {}),
        },
        level,
    )


def _tiny_paragraphs(count: int) -> bytes:
    """document.xml with `count` paragraphs of three random letters (compresses only ~15:1)."""
    rng = random.Random(0)
    words = ("".join(rng.choices(string.ascii_lowercase, k=3)) for _ in range(count))
    body = "".join(f"<w:p><w:r><w:t>{w}</w:t></w:r></w:p>" for w in words)
    return (
        f'<?xml version="1.0"?><w:document xmlns:w="{W_NS}"><w:body>{body}</w:body></w:document>'
    ).encode()


def _pdf_with_stream(payload: bytes) -> bytes:
    """A one-page PDF whose content stream inflates to `payload`."""
    stream = zlib.compress(payload, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(b'<!ENTITY %c "%s">' % (c, (b"&%c;" % (c - 1)) * 10) for c in b"bcdefghi")
    + b']><w:document xmlns:w="'
    + W_NS.encode()
    + b'">'
    b"<w:body><w:p><w:r><w:t>&i;</w:t></w:r></w:p></w:body></w:document>"
)
HOSTILE_FILES: dict[str, tuple[str, bytes, str]] = {
    "pdf truncated": ("a.pdf", _pdf_with_stream(b"BT (hello) Tj ET")[:150], "application/pdf"),
    "pdf garbage": ("a.pdf", b"%PDF-1.4\n" + bytes(range(256)) * 64, "application/pdf"),
    "pdf stream bomb": ("a.pdf", _pdf_with_stream(b"\0" * 60_000_000), "application/pdf"),
    "docx not a zip": ("a.docx", b"PK\x03\x04" + b"\xff" * 4096, ""),
    "docx zip bomb": ("a.docx", _docx(b" " * 80_000_000), ""),
    "docx entity expansion": ("a.docx", _docx(LAUGHS), ""),
    "docx without document": ("a.docx", _zip({"word/other.xml": b"<x/>"}), ""),
    "docx of 3000 parts": ("a.docx", _zip({f"p{i}.xml": b"<x/>" for i in range(3000)}), ""),
    "docx of 70k tiny paragraphs": ("a.docx", _docx(_tiny_paragraphs(70_000)), ""),
    "html too many tags": ("a.html", b"<p>" * 250_000, "text/html"),
    "html only script": ("a.html", b"<script>" + b"x" * 100_000 + b"</script>", "text/html"),
    "binary as txt": ("a.txt", b"\x7fELF" + bytes(range(256)) * 16, "text/plain"),
    "empty txt": ("a.txt", b"", "text/plain"),
    "zip as upload": ("a.zip", _zip({"x.txt": b"hello"}), "application/zip"),
    "over the body limit": ("a.txt", b"word " * 2_200_000, "text/plain"),
}
# Long lines with little text (cheap to embed; the regexes see the length), stray markup.
ODD_BUT_VALID: dict[str, tuple[str, bytes, str]] = {
    "5 MB line of spaces": ("a.txt", b"start" + b" " * 5_000_000 + b"end", "text/plain"),
    "1 MB pre line of tabs": ("a.html", b"<pre>a" + b"\t" * 1_000_000 + b"b</pre>", "text/html"),
    "5 MB markdown heading": ("a.md", b"# a" + b" " * 5_000_000 + b"b\n\nbody", "text/markdown"),
    "html unclosed comments": ("a.html", b"<html><body>" + b"<!--" * 1_000, "text/html"),
    "20 kB single word": ("a.txt", b"x" * 20_000, "text/plain"),
}


def _peak_rss(server: Server) -> int:
    """The server process's peak resident memory so far (VmHWM), in bytes."""
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_hostile_files_get_clear_4xx_and_memory_stays_bounded(
    live: tuple[Server, dict[str, str]],
) -> None:
    """Malformed and malicious files get 4xx, odd ones no 5xx; peak memory grows < 100 MB."""
    server, headers = live
    outcomes: dict[str, int] = {}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as http:
        before = _peak_rss(server)
        for name, (filename, data, mime) in (HOSTILE_FILES | ODD_BUT_VALID).items():
            r = http.post("/api/documents/upload", files={"file": (filename, data, mime)})
            outcomes[name] = r.status_code
            assert contract_problem(r.status_code, r.content, name) is None
            if name in HOSTILE_FILES:
                assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
        assert outcomes["over the body limit"] == 413
        growth = _peak_rss(server) - before
        assert http.get("/health").status_code == 200
        assert http.post("/api/search", json={"query": "annual leave"}).json()["results"]
    assert server.process.poll() is None
    assert growth < MAX_PEAK_GROWTH, (growth // 2**20, outcomes)


def _styles_of_tiny_tags(megabytes: int) -> bytes:
    """A styles.xml of `megabytes` MB of tiny random tags, compressing about 7:1 like the review's.

    One random megabyte repeated: deflate's 32 KB window sees no repetition, so the ratio stays
    that of random tags, and building it costs a second rather than a minute.
    """
    rng = random.Random(0)
    letters = string.ascii_letters + string.digits
    values = "".join(rng.choices(letters, k=2 * 60_000))
    block = "".join(f'<w:s w:val="{values[i : i + 2]}"/>' for i in range(0, len(values), 2))
    body = block.encode() * max(1, megabytes * 2**20 // len(block))
    return (
        b'<?xml version="1.0"?><w:styles xmlns:w="' + W_NS.encode() + b'">' + body + b"</w:styles>"
    )


def test_docx_with_a_huge_styles_part_three_at_once_is_refused_in_bounded_memory(
    live: tuple[Server, dict[str, str]],
) -> None:
    """The review's file: a 45 MB styles.xml in a ~6 MB upload (1.4 GB each before, 3.7 GB for
    three). Three sent together are each refused with a 4xx, and the peak grows < 100 MB."""
    server, headers = live
    data = _docx(_tiny_paragraphs(10), {"word/styles.xml": _styles_of_tiny_tags(45)}, level=6)
    assert 3 * 2**20 < len(data) < 9 * 2**20
    before = _peak_rss(server)
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as http:

        def send(_: int) -> httpx.Response:
            return http.post(
                "/api/documents/upload", files={"file": ("styles.docx", data, DOCX_MIME)}
            )

        with ThreadPoolExecutor(3) as pool:
            replies = list(pool.map(send, range(3)))
    for r in replies:
        assert contract_problem(r.status_code, r.content, "styles bomb") is None
        assert 400 <= r.status_code < 500 or r.status_code == 503, (r.status_code, r.text[:300])
    assert any(r.status_code == 422 and "XML tags" in r.text for r in replies)
    growth = _peak_rss(server) - before
    assert server.process.poll() is None
    assert growth < MAX_PEAK_GROWTH, growth // 2**20
