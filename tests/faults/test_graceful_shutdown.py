"""SIGTERM: the server stops taking work, finishes what is in flight, then exits 0."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import httpx
import pytest
from tests.faults.support import wait_for
from tests.integration.conftest import Server

from tenantrag.testing import CHAT_PATH, Hang, OpenAIStandIn

pytestmark = [
    pytest.mark.redis,
    pytest.mark.integration,
]  # two workers share limits and cache through Redis
TenantFactory = Callable[..., tuple[str, dict[str, str]]]
DOC = {"id": "garage", "text": "The parking garage opens at seven in the morning on weekdays."}


def test_sigterm_lets_a_slow_query_finish_then_exits_cleanly(
    cluster: Callable[..., Server], tenant: TenantFactory, standin: OpenAIStandIn
) -> None:
    """A query waiting 2 s on the model when SIGTERM arrives still gets its 200; exit code 0."""
    env = {
        "TENANTRAG_LLM__PROVIDER": "openai",
        "TENANTRAG_LLM__BASE_URL": standin.base_url,
        "TENANTRAG_LLM__MODEL": "gpt-4o-mini",
        "TENANTRAG_LLM__TIMEOUT_S": "10",
    }
    server = cluster(redis=True, env=env, workers=2)
    _, headers = tenant()
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.post("/api/documents", headers=headers, json={"documents": [DOC]}).is_success
    standin.script(Hang(2.0))  # the next chat request waits 2 s, then answers
    replies: list[httpx.Response] = []

    def ask() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            body = {"query": "When does the parking garage open?"}
            replies.append(http.post("/api/query", headers=headers, json=body))

    slow = threading.Thread(target=ask)
    slow.start()
    in_flight = lambda: any(r.path == CHAT_PATH for r in list(standin.recorded))  # noqa: E731
    assert wait_for(in_flight, timeout_s=30)  # the query is now waiting on the model
    server.process.send_signal(signal.SIGTERM)
    slow.join(timeout=30)

    assert len(replies) == 1
    assert replies[0].status_code == 200, replies[0].text
    body = replies[0].json()
    assert body["degraded"] is False and "stand-in's answer" in body["answer"]
    assert server.process.wait(timeout=30) == 0
