"""Stage 2's injection screen over a chat's other turns: system messages, earlier user turns.

A chat request carries text besides its question. System messages never reach the model (our
own system prompt is the only one), and earlier user turns reach it only as the terms a
follow-up borrows; both are still the client's text, so both are screened exactly as a question
is: normalised, embedded through the same cache, then `DetectInjection` under the tenant's
policy. Blocked, the request fails naming the turn; flagged, the answer carries the flag. The
embedding tokens are the request's, billed with its question's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tenantrag.backends.embedding.cache import CachingEmbedder
from tenantrag.errors import PromptInjection
from tenantrag.governance.injection import normalize_query
from tenantrag.pipeline.context import QueryContext
from tenantrag.pipeline.embed import DetectInjection, Embed


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
                vector=None,
                flags=[],
                embedding_tokens=0,
                deltas=None,
            )
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
