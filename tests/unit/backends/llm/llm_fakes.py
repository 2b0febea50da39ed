"""Helpers for the LLM tests: sample blocks, prompts, a fake clock and a scripted upstream."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from tenantrag.backends.llm import Completion, ContextBlock, Delta, Done, Prompt, StreamEvent
from tenantrag.backends.llm.prompt import build_prompt
from tenantrag.backends.llm.tokens import TokenCounter, counter_for_model

LEAVE_BLOCKS = (
    ContextBlock(
        1,
        "leave#0",
        "leave",
        "Leave policy",
        "## Annual leave\n\nFull-time employees earn 13 days of annual leave each year. "
        "Annual leave requests go to your supervisor two weeks ahead.\n\n"
        "Sick leave is earned at four hours per pay period.",
        0.9,
    ),
    ContextBlock(
        2,
        "travel#3",
        "travel",
        "Travel",
        "Book all travel through the agency portal. Per diem rates follow the GSA tables.",
        0.5,
    ),
)


def make_prompt(
    question: str,
    blocks: tuple[ContextBlock, ...] = LEAVE_BLOCKS,
    count: TokenCounter | None = None,
) -> Prompt:
    """A prompt over `blocks` with a roomy budget."""
    return build_prompt(
        question,
        blocks,
        model="gpt-4o-mini",
        context_window=8192,
        max_completion_tokens=512,
        count_tokens=count or counter_for_model("gpt-4o-mini"),
    )


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ScriptedLLM:
    """An in-process upstream model: each call raises or answers as scripted, then answers.

    It stands in for the external API where the behaviour under test is ours alone (breaker
    and retry state); the adapter itself is tested against OpenAIStandIn over real HTTP.
    """

    model = "scripted"

    def __init__(self, *outcomes: BaseException | str) -> None:
        self.outcomes: deque[BaseException | str] = deque(outcomes)
        self.calls = 0
        self.gate: asyncio.Event | None = None  # when set, calls wait for it

    def script(self, *outcomes: BaseException | str) -> None:
        self.outcomes.extend(outcomes)

    async def _next(self) -> str:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.outcomes.popleft() if self.outcomes else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def complete(self, prompt: Prompt, *, tenant: str) -> Completion:
        text = await self._next()
        return Completion(text, self.model, 10, len(text.split()))

    async def stream(self, prompt: Prompt, *, tenant: str) -> AsyncIterator[StreamEvent]:
        text = await self._next()
        yield Delta(text)
        yield Done(Completion(text, self.model, 10, len(text.split())))
