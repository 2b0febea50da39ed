"""Failures at the HTTP boundary become our error types: refused, timed out, 5xx, TLS, auth."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.unit.backends.opensearch.replies import error
from tests.unit.backends.opensearch.standin import OpenSearchStandIn, hang

from tenantrag.backends.opensearch import OpenSearchIndex
from tenantrag.errors import DependencyUnavailable, UpstreamError, UpstreamTimeout
from tenantrag.models import Chunk, Classification

ACME = "acme"
PUBLIC = Classification.PUBLIC


def search(index: OpenSearchIndex) -> object:
    """One BM25 search of acme."""
    return index.keyword.search(ACME, "word", limit=5, max_classification=PUBLIC)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_dependency_unavailable(closed_port: int) -> None:
    """With nothing listening, every operation raises DependencyUnavailable (503)."""
    index = OpenSearchIndex(f"http://127.0.0.1:{closed_port}", dimensions=4, backoff_s=0)
    chunk = Chunk(ACME, "d", 0, "x", rowid=1)
    operations: list[Callable[[], object]] = [
        lambda: search(index),
        lambda: index.vector.search(ACME, np.ones(4), limit=5, max_classification=PUBLIC),
        lambda: index.keyword.applied_seq(ACME),
        lambda: index.keyword.apply(ACME, [chunk], replace_documents=[], seq=1),
        lambda: index.drop(ACME),
    ]
    for operation in operations:
        with pytest.raises(DependencyUnavailable, match="unreachable") as caught:
            operation()
        assert caught.value.status_code == 503
    assert index.ping() is False


def test_a_slow_answer_is_upstream_timeout(
    make_index: Callable[..., OpenSearchIndex], standin: OpenSearchStandIn
) -> None:
    """No answer within timeout_s raises UpstreamTimeout (504), without a retry."""
    index = make_index(timeout_s=0.2)
    standin.script("POST", "/_search$", hang(standin))
    with pytest.raises(UpstreamTimeout, match="did not answer"):
        search(index)
    assert len(standin.requests("POST", "/_search$")) == 1


@pytest.mark.parametrize(
    ("status", "kind", "raised", "attempts"),
    [
        (503, "cluster_block_exception", DependencyUnavailable, 3),
        (429, "rejected_execution_exception", DependencyUnavailable, 1),
        (504, "gateway_timeout", UpstreamTimeout, 3),
        (500, "null_pointer_exception", UpstreamError, 1),
        (403, "security_exception", UpstreamError, 1),
    ],
)
def test_error_statuses_map_to_our_errors(
    status: int,
    kind: str,
    raised: type[UpstreamError],
    attempts: int,
    index: OpenSearchIndex,
    standin: OpenSearchStandIn,
) -> None:
    """5xx, 429 and auth errors raise the matching error; 502-504 are retried by the client."""
    standin.script("POST", "/_search$", *[error(status, kind, "it broke")] * 3)
    with pytest.raises(raised) as caught:
        search(index)
    assert type(caught.value) is raised
    assert str(status) in caught.value.message
    assert len(standin.requests("POST", "/_search$")) == attempts


def test_credentials_in_the_url_are_sent_but_never_reported(closed_port: int) -> None:
    """user:password in the URL becomes basic auth; error messages never contain it."""
    index = OpenSearchIndex(f"http://admin:s3cret-pw@127.0.0.1:{closed_port}", backoff_s=0)
    with pytest.raises(DependencyUnavailable) as caught:
        search(index)
    assert "s3cret-pw" not in str(caught.value) and "admin" not in str(caught.value)
    with OpenSearchStandIn() as node:
        port = node.url.rsplit(":", 1)[1]
        search(OpenSearchIndex(f"http://admin:s3cret-pw@127.0.0.1:{port}"))
        (request,) = node.recorded
        assert request.headers["authorization"] == "Basic YWRtaW46czNjcmV0LXB3"


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for 127.0.0.1, like the security plugin's demo certificates."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "node.pem", folder / "node-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    yield cert, key


def test_ca_certs_lets_a_self_signed_cluster_be_verified(self_signed: tuple[Path, Path]) -> None:
    """With ca_certs the TLS handshake verifies and requests go through; without, it fails."""
    cert, _ = self_signed
    with OpenSearchStandIn(tls=self_signed) as node:
        assert node.url.startswith("https://")
        trusted = OpenSearchIndex(node.url, ca_certs=cert, dimensions=4)
        assert search(trusted) == []
        assert trusted.ping() is True
        untrusted = OpenSearchIndex(node.url, dimensions=4, backoff_s=0)
        with pytest.raises(DependencyUnavailable, match="TENANTRAG_OPENSEARCH_CA_CERTS"):
            search(untrusted)
        assert [r.method for r in node.recorded] == ["POST", "HEAD"]
