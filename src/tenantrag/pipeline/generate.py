"""Stage 5, generation: the prompt within the model's budget, then the model's answer.

With a delta sink on the context (a streamed request), the answer is streamed: text is released
a sentence at a time and redacted first, so PII never leaves split across two deltas. A piece
is never cut inside a Markdown link or image, or an HTML tag, still open: each piece is then
neutralised whole (governance/exfiltration.py), so a link split across the model's chunks, or
across sentences in its alt text, is defused like one written at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from tenantrag.backends.llm import LLM, Completion, ContextBlock, Delta, Done, Prompt
from tenantrag.backends.llm.prompt import build_prompt
from tenantrag.backends.llm.tokens import shared_count
from tenantrag.governance.exfiltration import neutralize_exfiltration
from tenantrag.governance.injection import quote_untrusted
from tenantrag.governance.pii import redact
from tenantrag.observability import metrics
from tenantrag.observability.tracing import gen_ai_attributes, span
from tenantrag.pipeline.context import DeltaSink, QueryContext
from tenantrag.settings import LLMSettings

# (tenant id, chunk rowids) -> {rowid: that chunk's sentence vectors}
SentenceVectors = Callable[[str, Sequence[int]], dict[int, np.ndarray]]
_BOUNDARY = re.compile(r"[.!?]\s|\n")
# A link, image or tag opened but not closed by the end of the text (none spans a line break).
_STILL_OPEN = re.compile(r"!?\[[^\]\n]*(?:\](?:\([^)\n]*|\[[^\]\n]*)?)?\Z|<[^>\n]*\Z")


def release_point(pending: str) -> int:
    """How much of `pending` may be sent now (0: wait for more).

    Up to its last sentence end, but never into a link, image or tag still open there.
    """
    cut = last_boundary(pending)
    if not cut:
        return 0
    opened = _STILL_OPEN.search(pending, 0, cut)
    return opened.start() if opened else cut


def last_boundary(text: str) -> int:
    """The index just after the last sentence end (`.`, `!` or `?` and a space) or newline, or 0."""
    last = 0
    for match in _BOUNDARY.finditer(text):
        last = match.end()
    return last


def blocks(ctx: QueryContext, stored: SentenceVectors | None = None) -> list[ContextBlock]:
    """The governed hits as numbered context blocks; instruction-bearing ones quoted as data.

    With `stored`, each block carries its chunk's sentence vectors, read for the caller's
    tenant only.
    """
    vectors = stored(ctx.tenant.id, [h.chunk.rowid for h in ctx.hits]) if stored else {}
    out = []
    for i, hit in enumerate(ctx.hits, start=1):
        untrusted = hit.chunk.chunk_id in ctx.untrusted
        block = ContextBlock.from_hit(
            i, hit, untrusted=untrusted, sentence_vectors=vectors.get(hit.chunk.rowid)
        )
        if untrusted:
            block = replace(block, text=quote_untrusted(block.text))
        out.append(block)
    return out


def _redacted_question(ctx: QueryContext, question: str) -> str:
    """The question with its personal data replaced, counted (the sources are, in stage 4)."""
    result = redact(question)
    if result.counts:
        counts = {str(kind): n for kind, n in result.counts.items()}
        metrics.count_redactions(counts)
        ctx.count_redactions(counts)
    return result.text


@dataclass(frozen=True, slots=True)
class Generate:
    """Builds the prompt from the governed hits and asks the model, whole or streamed."""

    llm: LLM
    settings: LLMSettings
    count_tokens: Callable[[str], int] | None = None
    allowed_hosts: tuple[str, ...] = ()  # whose links and images answers keep (settings)
    # The chunks' stored sentence vectors (CorpusReader.sentence_vectors), for the extractive
    # answerer: it then embeds no sentence while the question waits.
    sentence_vectors: SentenceVectors | None = None
    _count: Callable[[str], int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # The system prompt and the no-sources text are counted every query, and popular sources
        # come back: counts are remembered by text, in the cache the extractive answerer shares.
        if self.count_tokens is not None:
            object.__setattr__(self, "_count", shared_count(self.count_tokens))

    async def __call__(self, ctx: QueryContext) -> QueryContext:
        # A chat follow-up is answered as asked, from the sources the completed question found.
        question = ctx.asked or ctx.question
        if self.settings.provider != "extractive" and ctx.tenant.redact_search_pii:
            question = _redacted_question(ctx, question)  # it leaves for a model outside
        # Read for an external model too: when it fails, the extractive fallback answers from
        # the same prompt, and with the stored rows it weighs every sentence (one local read).
        ctx.prompt = build_prompt(
            question,
            blocks(ctx, self.sentence_vectors),
            model=self.llm.model,
            context_window=self.settings.context_window,
            max_completion_tokens=self.settings.max_completion_tokens,
            count_tokens=self._count,
        )
        name = "llm.stream" if ctx.deltas is not None else "llm.complete"
        attributes = gen_ai_attributes(system=self.settings.provider, model=self.llm.model)
        with span(name, attributes) as current:
            if ctx.deltas is None:
                ctx.completion = await self.llm.complete(ctx.prompt, tenant=ctx.tenant.id)
            else:
                ctx.completion = await self._stream(ctx, ctx.prompt, ctx.deltas)
            current.set_attributes(
                {
                    "gen_ai.usage.input_tokens": ctx.completion.prompt_tokens,
                    "gen_ai.usage.output_tokens": ctx.completion.completion_tokens,
                    "gen_ai.response.model": ctx.completion.model,
                }
            )
        ctx.answer = ctx.completion.text
        return ctx

    async def _stream(self, ctx: QueryContext, prompt: Prompt, sink: DeltaSink) -> Completion:
        """Send the answer to `sink` a defused, redacted sentence at a time; the completion.

        Only what is sent is defused here; stage 6 defuses and counts the whole answer, which
        is what the reply's end, the cache and the audit see.
        """
        pending = ""
        completion: Completion | None = None

        async def release(text: str) -> None:
            defused = neutralize_exfiltration(text, allowed_hosts=self.allowed_hosts).text
            await sink(redact(defused).text)

        async for event in self.llm.stream(prompt, tenant=ctx.tenant.id):
            if isinstance(event, Delta):
                pending += event.text
                cut = release_point(pending)
                if cut:
                    await release(pending[:cut])
                    pending = pending[cut:]
            elif isinstance(event, Done):
                completion = event.completion
        if pending:
            await release(pending)
        if completion is None:
            raise RuntimeError("the model's stream ended without its completion")
        return completion
