"""Follow-up questions: does building the question from the conversation help?

The demo corpora (the 18F handbook in tenant `demo`, the SciFact sample in `globex`) are
loaded once into .cache/bench/followups (reused while it holds them). For each strategy of
tenantrag.pipeline.conversation and each conversation of bench/followup_cases.py, the last
turn's question is built from the user turns and then:

- retrieved as /api/search would (top 5): a hit when the answering document is among them;
- answered by the very QueryService of /api/query and /v1 (extractive answerer, top_k 5): the
  answer contains one of the expected phrases, and cites the answering document.

Each strategy runs on freshly opened services (an empty answer cache). Finally the default
strategy is run through POST /v1/chat/completions itself, turn by turn, the service's own
answers fed back as assistant turns, to show the endpoint gives what was measured.

    .venv/bin/python -m bench.followups [--out bench/results/followups.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from bench.followup_cases import CASES, Case

from tenantrag.app import create_app
from tenantrag.auth import issue_token, resolve_secret
from tenantrag.governance.injection import normalize_query
from tenantrag.ingest.bulk import batches, read_documents
from tenantrag.models import Classification, Principal, RequestIds, Tenant
from tenantrag.pipeline.conversation import DEFAULT_STRATEGY, STRATEGIES, standalone_question
from tenantrag.retrieval import SearchParams
from tenantrag.services import Services, build_corpus, open_services
from tenantrag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / ".cache" / "bench" / "followups"
MODEL_DIR = Path(os.environ.get("TENANTRAG_MODEL_DIR", ROOT / ".cache" / "models"))
CORPORA = {"demo": "handbook.jsonl", "globex": "scifact-sample.jsonl"}
TOP_K = 5


@dataclass
class Outcome:
    """What one strategy did on one case."""

    retrieved: bool
    contains: bool
    cites: bool


def settings() -> Settings:
    """The service's settings over the bench folder: embedded mode, the default answerer."""
    return Settings(data_dir=FOLDER, model_dir=MODEL_DIR, redis_url=None)


def prepare(config: Settings) -> None:
    """Load the demo corpora into their tenants, unless the folder already holds them."""
    from tenantrag.backends.store import build_store
    from tenantrag.observability.audit import scrub_record

    resolve_secret(config, create=True)  # as `tenantrag serve` would; /v1 needs tokens

    store = build_store(config, audit_scrub=scrub_record)
    store.open()
    try:
        for tenant_id, corpus in CORPORA.items():
            tenant = store.get_tenant(tenant_id) or store.create_tenant(Tenant(id=tenant_id))
            if store.usage(tenant_id).documents:
                continue
            path = Path(str(resources.files("tenantrag.resources.demo").joinpath(corpus)))
            ingestor = build_corpus(config, store, threads=2).ingestor
            started = time.monotonic()
            for batch in batches(read_documents(path), 16):
                ingestor.ingest(tenant, batch)
            print(f"loaded {corpus} into {tenant_id} in {time.monotonic() - started:.0f} s")
    finally:
        store.close()


def reader(tenant: str) -> Principal:
    return Principal(tenant, "bench", frozenset({"query"}), Classification.RESTRICTED)


def matches(document_id: str, case: Case) -> bool:
    return document_id.endswith(case.document)


async def run_case(services: Services, case: Case, strategy: str) -> Outcome:
    """Retrieve and answer the case's last turn with the strategy's question."""
    tenant = services.store.get_tenant(case.tenant)
    assert tenant is not None, case.tenant
    limit = services.settings.max_query_chars
    question = standalone_question(list(case.turns), strategy=strategy, max_chars=limit)
    params = SearchParams(query=question.text, top_k=TOP_K)
    hits = await services.searches.search(tenant, reader(case.tenant), params, RequestIds())
    ctx = services.queries.context(tenant, reader(case.tenant), params, RequestIds())
    if question.asked:
        ctx.asked = normalize_query(question.asked, max_chars=limit)
    ctx = await services.queries.answer(ctx)
    answer = ctx.answer.lower()
    return Outcome(
        retrieved=any(matches(h.chunk.document_id, case) for h in hits),
        contains=any(p in answer for p in case.phrases),
        cites=any(matches(c.document_id, case) for c in ctx.citations),
    )


async def run_strategy(config: Settings, strategy: str) -> list[Outcome]:
    """Every case under one strategy, on services of its own (a cold answer cache)."""
    services = await open_services(config)
    try:
        return [await run_case(services, case, strategy) for case in CASES]
    finally:
        await services.close()


async def run_v1(config: Settings) -> list[Outcome]:
    """Every case through POST /v1/chat/completions, turn by turn, as a chat client sends it."""
    services = await open_services(config)
    secret = resolve_secret(config)
    try:
        app = create_app(config, services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            return [await _chat(http, secret, case) for case in CASES]
    finally:
        await services.close()


async def _chat(http: httpx.AsyncClient, secret: str, case: Case) -> Outcome:
    token = issue_token(
        secret,
        tenant_id=case.tenant,
        user_id="bench",
        permissions=["query"],
        clearance=Classification.RESTRICTED,
    )
    messages: list[dict[str, Any]] = []
    body: dict[str, Any] = {}
    for turn in case.turns:
        messages.append({"role": "user", "content": turn})
        r = await http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            json={"model": "tenantrag", "messages": messages, "top_k": TOP_K},
        )
        r.raise_for_status()
        body = r.json()
        messages.append({"role": "assistant", "content": body["choices"][0]["message"]["content"]})
    answer = str(messages[-1]["content"]).lower()
    return Outcome(
        retrieved=False,  # not observable through the chat API; the answer is
        contains=any(p in answer for p in case.phrases),
        cites=any(matches(c["document_id"], case) for c in body["citations"]),
    )


def summary(outcomes: Sequence[Outcome], chosen: Sequence[bool]) -> dict[str, Any]:
    """Rates over the cases `chosen` marks."""
    picked = [o for o, keep in zip(outcomes, chosen, strict=True) if keep]
    n = len(picked)
    return {
        "cases": n,
        "retrieval_hit_at_5": sum(o.retrieved for o in picked) / n,
        "answer_contains_expected": sum(o.contains for o in picked) / n,
        "answer_cites_document": sum(o.cites for o in picked) / n,
    }


GROUPS = {
    "all": lambda c: True,
    "follow-ups": lambda c: c.kind == "follow-up",
    "follow-ups, handbook": lambda c: c.kind == "follow-up" and c.tenant == "demo",
    "follow-ups, SciFact": lambda c: c.kind == "follow-up" and c.tenant == "globex",
    "topic switches": lambda c: c.kind != "follow-up",
}


def report(results: dict[str, list[Outcome]]) -> dict[str, Any]:
    """Print one table per group; return everything as JSON-ready data."""
    out: dict[str, Any] = defaultdict(dict)
    for group, keep in GROUPS.items():
        chosen = [keep(c) for c in CASES]
        print(f"\n{group} ({sum(chosen)} conversations)")
        print(f"| strategy | retrieval hit@{TOP_K} | answer contains expected | answer cites it |")
        print("|---|---|---|---|")
        for strategy, outcomes in results.items():
            row = summary(outcomes, chosen)
            out[group][strategy] = row
            hit = "n/a" if strategy == "/v1" else f"{row['retrieval_hit_at_5']:.2f}"
            print(
                f"| {strategy} | {hit} | {row['answer_contains_expected']:.2f}"
                f" | {row['answer_cites_document']:.2f} |"
            )
    return dict(out)


async def measure(config: Settings) -> dict[str, list[Outcome]]:
    """Every strategy in process, then the default one through /v1."""
    results: dict[str, list[Outcome]] = {}
    for strategy in STRATEGIES:
        results[strategy] = await run_strategy(config, strategy)
    results["/v1"] = await run_v1(config)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    config = settings()
    prepare(config)
    results = asyncio.run(measure(config))
    data = report(results)
    per_case = {
        " / ".join(c.turns): {s: vars(results[s][i]) for s in results} for i, c in enumerate(CASES)
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"default": DEFAULT_STRATEGY, "top_k": TOP_K, "groups": data, "cases": per_case}
        args.out.write_text(json.dumps(payload, indent=2))
        print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
