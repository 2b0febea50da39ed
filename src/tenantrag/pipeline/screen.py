"""Stage 2's injection screen over a chat's other turns: system messages, earlier user turns.

A chat request carries text besides its question. System messages never reach the model (our
own system prompt is the only one), and earlier user turns reach it only as the terms a
follow-up borrows; both are still the client's text, so both are screened by stage 2's own
`DetectInjection`, under the tenant's policy: blocked, the request fails naming the turn;
flagged, the answer carries the flag.

Earlier user turns are questions, and are screened exactly as one: normalised, embedded
through the same cache (the tokens are billed with the request), patterns and classifier.
System and developer turns get the patterns only. The classifier tells questions from
instructions, and a system message is an instruction by design: "You are a helpful assistant.
Answer concisely." scores 0.70 against a threshold below that, and would be refused on every
request of the clients that send it (tests/api/v1/test_openai_conversation.py lists such
prompts). The patterns still catch the override phrasings ("ignore all previous instructions",
"reveal your system prompt", in English and German).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tenantrag.backends.embedding.cache import CachingEmbedder
from tenantrag.errors import PromptInjection
from tenantrag.governance.injection import normalize_query
from tenantrag.pipeline.context import QueryContext
from tenantrag.pipeline.embed import DetectInjection, Embed

INSTRUCTION_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True, slots=True)
class Turn:
    """A client-written text and where the request holds it (OpenAI's `param`, e.g. messages[0])."""

    where: str
    role: str
    text: str


@dataclass(frozen=True, slots=True)
class ScreenTurns:
    """Screens each turn as stage 2 screens a question; adds its tokens and flags to `ctx`."""

    embeddings: CachingEmbedder
    max_chars: int

    async def __call__(self, ctx: QueryContext, turns: Sequence[Turn]) -> None:
        embed, detect = Embed(self.embeddings), DetectInjection()
        for turn in turns:
            if not turn.text.strip():
                continue
            probe = replace(
                ctx,
                question=normalize_query(turn.text, max_chars=self.max_chars),
                vector=None,  # without a vector, DetectInjection runs the patterns only
                flags=[],
                embedding_tokens=0,
                deltas=None,
            )
            if turn.role not in INSTRUCTION_ROLES:
                probe = await embed(probe)
            try:
                probe = await detect(probe)
            except PromptInjection as exc:
                raise PromptInjection(
                    f"The {turn.role} message {turn.where} looks like an attempt to override the"
                    " assistant's instructions; remove it, or rephrase it as a question about"
                    " your documents.",
                    param=turn.where,
                ) from exc
            ctx.embedding_tokens += probe.embedding_tokens
            for flag in probe.flags:
                ctx.flag(flag)
